"""`make explore`: write the explorer page of an analysed run, or of a sweep.

    python -m glassbox.explore experiment=tiny                 <run>/report/explorer.html of the latest run
    python -m glassbox.explore experiment=tiny run=<run dir>   ... of that run
    python -m glassbox.explore sweep=<sweep dir>               <sweep>/explorer.html

A run's page is drawn from its <run>/report/analysis.json (`make analyze` writes the page too; this
redraws it without analysing again). A sweep's page is drawn from its jobs' run directories (the sweep
summary writes it too). Both are self-contained: open them from disk.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from glassbox import explorer, fileio, sweep
from glassbox.analyze import REPORT_DIR
from glassbox.errors import GlassboxError, exits_cleanly
from glassbox.paths import CONF_DIR
from glassbox.snapshots import resolve_run_dir
from glassbox.tracking import JsonlFile


def explore(run_dir: Path) -> Path:
    """Write <run>/report/explorer.html from the run's analysis.json; return its path."""
    source = run_dir / REPORT_DIR / "analysis.json"
    if not source.exists():
        raise GlassboxError(f"{source} does not exist: analyse the run first (make analyze)")
    page = run_dir / REPORT_DIR / explorer.FILE_NAME
    fileio.write_text(page, explorer.explorer_html(fileio.read_json(source)))
    return page


def _records(run_dir: Path) -> list[dict[str, Any]]:
    """A job's metrics.jsonl records; none when a kill cut its last line short (it cannot be complete)."""
    try:
        return JsonlFile(run_dir / "metrics.jsonl").read()
    except json.JSONDecodeError:
        return []


def write_sweep_page(sweep_dir: Path, jobs: list[sweep.Job], summary: dict[str, Any]) -> Path:
    """Write <sweep>/explorer.html from the sweep's jobs and their summary (glassbox.sweep); return its path."""
    config = OmegaConf.load(jobs[0].run_dir / ".hydra" / "config.yaml")
    claims = OmegaConf.select(config, "analysis.claims")
    thresholds = OmegaConf.to_container(claims) if claims is not None else {}
    axes = [axis for axis in summary["axes"] if axis != sweep.SEED]
    records = {job.num: _records(job.run_dir) for job in jobs}
    page = sweep_dir / explorer.FILE_NAME
    fileio.write_text(page, explorer.sweep_html(sweep_dir.name, summary, records, axes, thresholds))
    return page


def explore_sweep(sweep_dir: Path) -> Path:
    jobs = sweep.read_jobs(sweep_dir)
    if not jobs:
        raise GlassboxError(f"{sweep_dir} holds no sweep jobs (no */.hydra folders); pass a sweep directory, "
                            "outputs/<experiment>/sweeps/<time>")
    return write_sweep_page(sweep_dir, jobs, sweep.summarize(jobs))


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="explore")
@exits_cleanly
def main(cfg: DictConfig) -> None:
    if cfg.sweep:
        page = explore_sweep(Path(cfg.sweep))
    else:
        page = explore(resolve_run_dir(cfg.paths.output_dir, cfg.name, cfg.run))
    print(f"explorer: {page}")


if __name__ == "__main__":
    main()
