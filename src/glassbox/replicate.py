"""Replicates (`make replicate`): every claim judged over seeds, at the end of a sweep over the seed.

`make replicate` is a sweep of the train stage over `seed` alone (default 1,2,3; SEEDS=...), with
this stage's `ReplicateReport` beside the sweep summary (conf/hydra/callbacks/replicate.yaml).
When jobs end it writes into the sweep directory outputs/<experiment>/sweeps/<time>/

    replicate.json        per claim: in how many seeds it held at the end, zf mean ± sd, every seed's
                          verdict, first step held and whether it stayed held, zf against step
    replicate.md          the same in words and tables, the article's figures beside
    replicate_zf.png      every claim's zf against step: each seed, and the mean ± sd band
    replicate_final.png   every claim's final zf: one dot per seed, mean ± sd

logs them as one W&B run (job_type replicate) in the sweep's group and, once every seed asked for
has completed, points outputs/<experiment>/replicate/latest at the sweep directory, which the single-run
report (make analyze) quotes for every claim. The claims are judged from the metrics training logged at
every snapshot (analysis/replicates.py), so no seed needs `make analyze`. The sweep summary (summary.md,
explorer.html with every seed side by side) is written as for any sweep.

By hand, on any sweep whose jobs differ only by their seed:
    python -m glassbox.replicate outputs/<experiment>/sweeps/<time>
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from glassbox import fileio
from glassbox.analysis import replicates
from glassbox.command_line import exits_cleanly
from glassbox.config import check
from glassbox.config.groups import Claims
from glassbox.errors import GlassboxError
from glassbox.report.replicate import report_log, write_replicate
from glassbox.run.layout import read_run_state, replicate_link
from glassbox.run.tracking import sweep_report_tracker

log = logging.getLogger(__name__)


def replicate(sweep_dir: str | Path, to_wandb: bool = True) -> dict[str, Any]:
    """Judge every claim in every seed of the sweep, write the replicate files, link them, log them."""
    sweep_dir = Path(sweep_dir)
    jobs = replicates.replicate_jobs(sweep_dir)
    # the config this stage reads: the first job's (analysis.claims and .chance, the corpus's probes, W&B)
    cfg = OmegaConf.load(jobs[0].run_dir / ".hydra" / "config.yaml")
    check(Claims, settings := OmegaConf.to_container(cfg.analysis.claims), where="analysis.claims")
    complete = [job for job in jobs if job.status == "complete" and job.rows]
    if not complete:
        raise GlassboxError(f"no job of {sweep_dir} has completed yet: a replicate needs at least one finished seed")
    data = replicates.summarize_replicate(
        replicates.seed_runs(jobs),
        replicates.asked_seeds(sweep_dir, jobs),
        pairs=read_run_state(complete[0].run_dir).get("probe_pairs", []),
        groups=OmegaConf.to_container(cfg.corpus.probes.groups),
        settings=settings,
        chance=OmegaConf.to_container(cfg.analysis.chance),
        reference=OmegaConf.to_container(cfg.corpus.reference) if cfg.corpus.get("reference") else {},
        held=OmegaConf.to_container(cfg.analysis.mechanisms.held) if cfg.analysis.get("mechanisms") else None,
    )
    where = {"experiment": cfg.name, "sweep_dir": str(sweep_dir), "wandb_group": cfg.wandb.group}
    data = where | {"overrides": replicates.trained_overrides(complete[0]), **data}
    write_replicate(sweep_dir, data)
    if data["finished"]:  # the single-run report quotes only a replicate of every seed asked for
        fileio.point_link(replicate_link(cfg.paths.output_dir, cfg.name), sweep_dir)
    if to_wandb:
        about = {"dir": str(sweep_dir), "seeds": data["seeds"], "step": data["step"], "claims": data["thresholds"]}
        with sweep_report_tracker(cfg, sweep_dir, "replicate", "replicate", {"replicate": about}) as tracker:
            tracker.log_report(report_log(data, sweep_dir))
    return data


class ReplicateReport(Callback):
    """Hydra callback: rewrites the replicate files after every job (Hydra skips on_multirun_end once a job
    has failed; such a replicate lists the failure), and logs them to W&B at the end."""

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if config.hydra.mode == RunMode.MULTIRUN:
            self._report(Path(config.hydra.sweep.dir), to_wandb=False)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._report(Path(config.hydra.sweep.dir), to_wandb=True)

    @staticmethod
    def _report(sweep_dir: Path, to_wandb: bool) -> None:
        try:
            replicate(sweep_dir, to_wandb)
        except GlassboxError as err:
            log.error("no replicate report: %s", err)
        except Exception:  # noqa: BLE001 - a broken report must not stop the training jobs
            log.exception(
                "could not write the replicate report; retry with: python -m glassbox.replicate %s", sweep_dir
            )


@exits_cleanly
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m glassbox.replicate", description="Write (again) the replicate report of a sweep over seeds."
    )
    parser.add_argument("sweep_dir", type=Path, help="outputs/<experiment>/sweeps/<time>")
    sweep_dir = parser.parse_args(argv).sweep_dir
    data = replicate(sweep_dir)
    directional = [c for c in data["claims"] if c["expect"] != "none"]
    held = sum(c["n_held"] == c["n_seeds"] for c in directional)
    seeds = f"{data['n_seeds']} of {len(data['seeds_asked'])} seeds finished"
    print(f"{seeds}; {held} of {len(directional)} directional claims held in every seed")
    print(f"report: {sweep_dir / 'replicate.md'}")


if __name__ == "__main__":
    main()
