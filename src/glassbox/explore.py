"""`make explore`: write the explorer page of an analysed run, or of a sweep.

    python -m glassbox.explore experiment=tiny                 <run>/report/explorer.html of the latest run
    python -m glassbox.explore experiment=tiny run=<run dir>   ... of that run
    python -m glassbox.explore sweep=<sweep dir>               <sweep>/explorer.html

A run's page is drawn from its <run>/report/analysis.json (`make analyze` writes the page too; this
redraws it without analysing again). A sweep's page is drawn from its jobs' run directories (the sweep
summary writes it too). Both are self-contained: open them from disk.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from glassbox import command_line, fileio
from glassbox.analysis.sweeps import summarize, sweep_jobs
from glassbox.command_line import exits_cleanly
from glassbox.errors import GlassboxError
from glassbox.paths import CONF_DIR
from glassbox.report import explorer
from glassbox.report.sweep_summary import explorer_page
from glassbox.run.layout import REPORT_DIR, advice_for_writing, resolve_run_dir


def explore(run_dir: Path) -> Path:
    """Write <run>/report/explorer.html from the run's analysis.json; return its path."""
    source = run_dir / REPORT_DIR / "analysis.json"
    if not source.exists():
        raise GlassboxError(f"{source} does not exist: analyse the run first (make analyze)")
    page = run_dir / REPORT_DIR / explorer.FILE_NAME
    html = explorer.explorer_html(fileio.read_json(source))
    with fileio.explain_write_errors(page, advice_for_writing(run_dir)):  # a read-only run: said, not a traceback
        fileio.write_text(page, html)
    return page


def explore_sweep(sweep_dir: Path) -> Path:
    jobs = sweep_jobs(sweep_dir)
    page = sweep_dir / explorer.FILE_NAME
    html = explorer_page(sweep_dir, jobs, summarize(jobs))
    with fileio.explain_write_errors(page):
        fileio.write_text(page, html)
    return page


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="explore")
@exits_cleanly
def main(cfg: DictConfig) -> None:
    if cfg.sweep:
        page = explore_sweep(Path(cfg.sweep))
    else:
        page = explore(resolve_run_dir(cfg.paths.output_dir, cfg.name, cfg.run))
    print(f"explorer: {page}")


def cli() -> None:
    """The `glassbox-explore` command, as `python -m glassbox.explore` runs it."""
    command_line.run(main)


if __name__ == "__main__":
    cli()
