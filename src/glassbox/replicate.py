"""Replicates (`make replicate`): every claim judged over seeds, at the end of a sweep over the seed.

`make replicate` is a sweep of the train stage over `seed` alone (default 1,2,3; SEEDS=...), with
this stage's `ReplicateReport` beside the sweep summary (conf/hydra/callbacks/replicate.yaml).
When jobs end it writes into the sweep directory outputs/<experiment>/sweeps/<time>/

    replicate.json        per claim: in how many seeds it held at the end, zf mean ± sd, every seed's
                          verdict, first step held and whether it stayed held, zf against step
    replicate.md          the same in words and tables, the article's figures beside
    replicate_zf.png      every claim's zf against step: each seed, and the mean ± sd band
    replicate_final.png   every claim's final zf: one dot per seed, mean ± sd

logs them as one W&B run (job_type replicate) in the sweep's group, and points
outputs/<experiment>/replicate/latest at the sweep directory: the single-run report of the
experiment (make analyze) quotes it for every claim. The claims are judged from the metrics
training logged at every snapshot (report/replicate.py), so no seed needs `make analyze`.
The sweep summary (summary.md, explorer.html with every seed side by side) is written as for any sweep.

By hand, on any sweep whose jobs differ only by their seed:
    python -m glassbox.replicate outputs/<experiment>/sweeps/<time>
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import matplotlib
from hydra.core.utils import JobReturn
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from glassbox import fileio
from glassbox.command_line import exits_cleanly
from glassbox.errors import GlassboxError
from glassbox.report import explorer
from glassbox.report.claims import check_settings
from glassbox.report.plotting import missing_font_notice, png
from glassbox.report.replicate import (
    REPLICATE_JSON,
    SeedRun,
    claim_label,
    plot_curves,
    plot_final,
    plot_labels,
    replicate_markdown,
    summarize_replicate,
)
from glassbox.report.sweep_summary import SEED, read_jobs, sweep_axes
from glassbox.run.layout import read_run_state, replicate_link
from glassbox.run.resume import QUIET_SETTINGS
from glassbox.run.tracking import Tracker

log = logging.getLogger(__name__)


def replicate(sweep_dir: str | Path, to_wandb: bool = True) -> dict[str, Any]:
    """Judge every claim in every seed of the sweep, write the replicate files, link them, log them."""
    sweep_dir = Path(sweep_dir)
    jobs = read_jobs(sweep_dir)
    if not jobs:
        raise GlassboxError(
            f"{sweep_dir} holds no sweep jobs (no */.hydra folders); pass the sweep directory of a "
            "replicate, outputs/<experiment>/sweeps/<time>"
        )
    others = [axis for axis in sweep_axes(jobs) if axis != SEED]
    if others:
        raise GlassboxError(
            f"the jobs of {sweep_dir} differ by {', '.join(others)}, not only by their seed: a "
            "replicate is one configuration over seeds. Its summary.md compares the configurations; "
            "run `make replicate` once per configuration."
        )
    cfg = OmegaConf.load(jobs[0].run_dir / ".hydra" / "config.yaml")
    settings = OmegaConf.to_container(cfg.analysis.claims)
    check_settings(settings)
    complete = [job for job in jobs if job.status == "complete" and job.rows]
    if not complete:
        raise GlassboxError(f"no job of {sweep_dir} has completed yet: a replicate needs at least one finished seed")
    data = summarize_replicate(
        [
            SeedRun(job.seed, job.num, job.status, job.rows, read_run_state(job.run_dir).get("train_seconds"))
            for job in jobs
        ],
        pairs=read_run_state(complete[0].run_dir).get("probe_pairs", []),
        groups=OmegaConf.to_container(cfg.corpus.probes.groups),
        settings=settings,
        chance=OmegaConf.to_container(cfg.analysis.chance),
        reference=OmegaConf.to_container(cfg.corpus.reference) if cfg.corpus.get("reference") else {},
    )
    # what was trained: the overrides but the seed and the settings that change no number (paths, W&B)
    overrides = [o for o in complete[0].overrides if o.split("=", 1)[0] != SEED and not o.startswith(QUIET_SETTINGS)]
    data = {
        "experiment": cfg.name,
        "sweep_dir": str(sweep_dir),
        "wandb_group": cfg.wandb.group,
        "overrides": overrides,
        **data,
    }
    write_replicate_files(sweep_dir, data)
    fileio.point_link(replicate_link(cfg.paths.output_dir, cfg.name), sweep_dir)
    if to_wandb:
        log_replicate(cfg, sweep_dir, data)
    return data


def write_replicate_files(sweep_dir: Path, data: dict[str, Any]) -> None:
    fileio.write_json(sweep_dir / REPLICATE_JSON, data)
    page = explorer.FILE_NAME if (sweep_dir / explorer.FILE_NAME).exists() else None
    fileio.write_text(sweep_dir / "replicate.md", replicate_markdown(data, page))
    labels = plot_labels(data)
    if labels.as_code_points:
        log.warning("%s", missing_font_notice(labels.as_code_points))
    with matplotlib.rc_context({"font.family": labels.families}):
        fileio.write_bytes(sweep_dir / "replicate_zf.png", png(plot_curves(data, labels)))
        fileio.write_bytes(sweep_dir / "replicate_final.png", png(plot_final(data, labels)))


def log_replicate(job_cfg: DictConfig, sweep_dir: Path, data: dict[str, Any]) -> None:
    """The replicate as one W&B run in the jobs' group (their W&B settings): two tables, two plots, the report."""
    cfg = OmegaConf.create(
        {
            "name": job_cfg.name,
            "wandb": OmegaConf.to_container(job_cfg.wandb, resolve=True),
            "replicate": {
                "dir": str(sweep_dir),
                "seeds": data["seeds"],
                "step": data["step"],
                "claims": data["thresholds"],
            },
        }
    )
    with Tracker(cfg, sweep_dir, job_type="replicate", name=f"{cfg.wandb.group}-replicate") as tracker:
        if tracker.wandb_run is None:
            return
        claims = data["claims"]
        tracker.log_table(
            "replicate/claims",
            ["claim", "test", "expect", "held", "seeds", "over_seeds", "zf_mean", "zf_sd"],
            [
                [
                    claim_label(c),
                    c["test"],
                    c["expect"],
                    c["n_held"],
                    c["n_seeds"],
                    c["over_seeds"],
                    c["zf"]["mean"],
                    c["zf"]["sd"],
                ]
                for c in claims
            ],
            step=0,
        )
        tracker.log_table(
            "replicate/seeds",
            ["claim", "test", "seed", "verdict", "zf", "p", "first_held", "stayed"],
            [
                [claim_label(c), c["test"], s["seed"], s["verdict"], s["zf"], s["p"], s["first_held"], s["stayed"]]
                for c in claims
                for s in c["seeds"]
            ],
            step=0,
        )
        for name in ("zf", "final"):
            png = (sweep_dir / f"replicate_{name}.png").read_bytes()
            tracker.log_image(f"replicate/{name}", png, f"replicate_{name}.png", step=0)
        tracker.log_artifact(
            f"{cfg.wandb.group}-replicate",
            "report",
            [sweep_dir / name for name in ("replicate.md", REPLICATE_JSON, "replicate_zf.png", "replicate_final.png")],
            metadata={"experiment": data["experiment"], "seeds": data["seeds"]},
        )


class ReplicateReport(Callback):
    """Hydra callback: rewrites the replicate files as jobs end, and logs them to W&B at the end.

    As for the sweep summary, the files are rewritten after every job, since Hydra skips
    on_multirun_end once a job has failed; such a replicate lists the failure.
    """

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
    held = sum(c["n_held"] == c["n_seeds"] for c in data["claims"] if c["expect"] != "none")
    directional = sum(c["expect"] != "none" for c in data["claims"])
    print(
        f"{data['n_seeds']} seeds; {held} of {directional} directional claims held in every seed; "
        f"report: {sweep_dir / 'replicate.md'}"
    )


if __name__ == "__main__":
    main()
