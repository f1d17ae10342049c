"""`make explore`: write the run explorer of an analysed run, <run>/report/explorer.html.

Reads <run>/report/analysis.json (written by `make analyze`, which also writes the explorer; this
entry point redraws it without analysing again). The page is self-contained: open it from disk.
"""
from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from glassbox import explorer, fileio
from glassbox.analyze import REPORT_DIR
from glassbox.errors import GlassboxError, exits_cleanly
from glassbox.paths import CONF_DIR
from glassbox.snapshots import resolve_run_dir


def explore(run_dir: Path) -> Path:
    """Write <run>/report/explorer.html from the run's analysis.json; return its path."""
    source = run_dir / REPORT_DIR / "analysis.json"
    if not source.exists():
        raise GlassboxError(f"{source} does not exist: analyse the run first (make analyze)")
    page = run_dir / REPORT_DIR / explorer.FILE_NAME
    fileio.write_text(page, explorer.explorer_html(fileio.read_json(source)))
    return page


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="explore")
@exits_cleanly
def main(cfg: DictConfig) -> None:
    page = explore(resolve_run_dir(cfg.paths.output_dir, cfg.name, cfg.run))
    print(f"explorer: {page}")


if __name__ == "__main__":
    main()
