"""Sweeps (`make sweep`): the summary a Hydra multirun of train ends with, and its command.

A sweep is a Hydra multirun of the train stage: outputs/<experiment>/sweeps/<time>/ holds one run
directory per job (0/, 1/, ...). When jobs end, this stage writes into the sweep directory

    summary.json   every job, and every configuration's final numbers as mean ± sd over its seeds
    summary.md     the same as tables, and a comparison along the swept key
    val_loss.png   final validation loss against the swept key (mean ± sd over seeds)
    pair_z.png     every probe pair's final z (global baseline) and zf (frequency-matched baseline)
                   against the swept key
    pair_zf_steps.png  every probe pair's zf against step, one line per configuration (mean ± sd)

and logs them as one W&B run (job_type sweep-summary) in the sweep's group. Only complete jobs
enter the means; failed ones are listed as failed. The summary itself is analysis/sweeps.py, its
files report/sweep_summary.py.

Hydra runs it through `SweepSummary` (conf/hydra/callbacks/sweep_summary.yaml); by hand:
    python -m glassbox.sweep outputs/<experiment>/sweeps/<time>
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from glassbox import fileio
from glassbox.analysis.sweeps import summarize, sweep_jobs
from glassbox.command_line import exits_cleanly
from glassbox.errors import Stopped
from glassbox.report import explorer
from glassbox.report.sweep_summary import explorer_page, report_log, write_summary
from glassbox.run.tracking import sweep_report_tracker

log = logging.getLogger(__name__)


def summarize_sweep(sweep_dir: str | Path, to_wandb: bool = True) -> dict[str, Any]:
    """Read every job of the sweep, write the summary files into sweep_dir, optionally log to W&B."""
    sweep_dir = Path(sweep_dir)
    jobs = sweep_jobs(sweep_dir)
    # the config this stage reads: the first job's (its W&B settings and analysis.claims)
    job_cfg = OmegaConf.load(jobs[0].run_dir / ".hydra" / "config.yaml")
    summary = {"wandb_group": job_cfg.wandb.group, **summarize(jobs)}
    write_summary(sweep_dir, summary, OmegaConf.select(job_cfg, "analysis.claims.z_min"))
    fileio.write_text(sweep_dir / explorer.FILE_NAME, explorer_page(sweep_dir, jobs, summary))
    if to_wandb:
        about = {"sweep": {"dir": str(sweep_dir), **{k: summary[k] for k in ("axes", "n_jobs", "n_complete")}}}
        with sweep_report_tracker(job_cfg, sweep_dir, "sweep-summary", "summary", about) as tracker:
            tracker.log_report(report_log(summary, sweep_dir))
    return summary


class SweepSummary(Callback):
    """Hydra callback: rewrites the sweep's summary files as jobs end, and logs them to W&B at the end.

    Once a job has failed Hydra skips on_multirun_end, so the files are rewritten after every job:
    such a sweep still leaves a summary that lists the failure (`python -m glassbox.sweep` logs it).
    Where the summary is goes to the terminal with print: the jobs' logging writes into a job's log.
    """

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        """A job stopped by Ctrl-C ends the sweep here, once every summary lists it: Hydra calls the
        callbacks in reverse, and this one comes first in conf/hydra/callbacks (replicate.yaml's defaults)."""
        if config.hydra.mode == RunMode.MULTIRUN:
            summary = self._summarize(Path(config.hydra.sweep.dir), to_wandb=False)
            # the exception itself: the public return_value re-raises it
            stop = job_return._return_value if job_return.status == JobStatus.FAILED else None
            stopped = isinstance(stop, Stopped)
            if summary and stop:
                what = "stopped" if stopped else "failed"
                print(f"job {config.hydra.job.num} {what}; {where(summary, Path(config.hydra.sweep.dir))}")
            if stopped:
                print(f"\njob {config.hydra.job.num}: {stop} The sweep stops here.", file=sys.stderr)
                sys.exit(stop.exit_code)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        summary = self._summarize(Path(config.hydra.sweep.dir), to_wandb=True)
        if summary:
            print(where(summary, Path(config.hydra.sweep.dir)))

    @staticmethod
    def _summarize(sweep_dir: Path, to_wandb: bool) -> dict[str, Any] | None:
        try:
            return summarize_sweep(sweep_dir, to_wandb)
        except Exception:  # noqa: BLE001 - a broken summary must not stop the training jobs
            log.exception("could not summarize the sweep; retry with: python -m glassbox.sweep %s", sweep_dir)
            return None


def where(summary: dict[str, Any], sweep_dir: Path) -> str:
    """The line a sweep ends with: how many jobs completed and where their summary is."""
    return (
        f"{summary['n_complete']}/{summary['n_jobs']} jobs complete; sweep summary: {sweep_dir / 'summary.md'} "
        f"(plots and explorer.html beside it)"
    )


@exits_cleanly
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m glassbox.sweep", description="Write (again) the summary of a sweep and log it to W&B."
    )
    parser.add_argument("sweep_dir", type=Path, help="outputs/<experiment>/sweeps/<time>")
    sweep_dir = parser.parse_args(argv).sweep_dir
    print(where(summarize_sweep(sweep_dir), sweep_dir))


if __name__ == "__main__":
    main()
