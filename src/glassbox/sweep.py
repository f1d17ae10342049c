"""The summary of a sweep (`make sweep`): final loss and probe-pair emergence against model size.

A sweep is a Hydra multirun of the train stage: outputs/<experiment>/sweeps/<time>/ holds one run
directory per job (0/, 1/, ...). This module reads each job's .hydra/ files (overrides, config),
run.json, first snapshot (for the model's size) and last metrics.jsonl record; jobs that differ
only by `seed` form one configuration. It writes into the sweep directory

    summary.json   every job, and every configuration's final numbers as mean ± sd over its seeds
    summary.md     the same as tables
    val_loss.png   final validation loss against parameter count
    pair_z.png     every probe pair's final z (global baseline) and zf (frequency-matched baseline)
                   against parameter count

and logs them as one W&B run (job_type sweep-summary) in the sweep's group. Only complete jobs
enter the means; failed ones are listed as failed.

Hydra runs it through `SweepSummary` (conf/hydra/callbacks/sweep_summary.yaml); by hand:
    python -m glassbox.sweep outputs/<experiment>/sweeps/<time>
"""
from __future__ import annotations

import argparse
import json
import logging
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
from hydra.core.utils import JobReturn
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from matplotlib.figure import Figure
from omegaconf import DictConfig, OmegaConf

from glassbox import fileio
from glassbox.errors import GlassboxError, exits_cleanly
from glassbox.markdown import escape, num, table
from glassbox.plotting import COLOURS, CharLabels, figure, png
from glassbox.probes.probe_set import ProbeSet
from glassbox.snapshots import read_run_state
from glassbox.tracking import JsonlFile, Tracker

log = logging.getLogger(__name__)

SEED = "seed"  # the override that repeats a configuration
PAIR_STATS = ("cos", "z", "zf")  # per-pair metric prefixes summarized (probes/emergence.py)


@dataclass(frozen=True)
class Job:
    """One job of a sweep, as far as the summary needs it."""

    num: int
    run_dir: Path
    overrides: list[str]     # its command-line overrides, e.g. ["experiment=tiny", "model=tiny", "seed=1"]
    seed: int
    status: str              # run.json's: complete | running | interrupted | failed; "failed" without one
    n_params: int | None     # None when the job failed before its run began
    final: dict[str, float]  # its last metrics.jsonl record; {} when it logged none
    expect: dict[str, str]   # probe pair name -> the direction its cosine should take: up | down | none


def read_jobs(sweep_dir: str | Path) -> list[Job]:
    """Every job Hydra started in sweep_dir, in job order."""
    return sorted((read_job(hydra_dir.parent) for hydra_dir in Path(sweep_dir).glob("*/.hydra")),
                  key=lambda job: job.num)


def read_job(run_dir: Path) -> Job:
    hydra_dir = run_dir / ".hydra"
    cfg = OmegaConf.load(hydra_dir / "config.yaml")
    state = read_run_state(run_dir)  # train records n_params there when the run starts
    try:
        records = JsonlFile(run_dir / "metrics.jsonl").read()
    except json.JSONDecodeError:  # killed in the middle of a line: it cannot count as complete anyway
        records = []
    return Job(
        num=OmegaConf.load(hydra_dir / "hydra.yaml").hydra.job.num,
        run_dir=run_dir,
        overrides=list(OmegaConf.load(hydra_dir / "overrides.yaml")),
        seed=cfg.seed,
        status=state.get("status", "failed"),
        n_params=state.get("n_params"),
        final=records[-1] if records else {},
        expect=pair_expectations(cfg.corpus.probes),
    )


def pair_expectations(probes: DictConfig) -> dict[str, str]:
    """{pair name: expected direction} of a corpus's probe pairs, decided as training decides it.

    The direction depends on the groups alone, not on token ids, so each character gets any id.
    """
    groups = OmegaConf.to_container(probes.groups, resolve=True)
    pairs = OmegaConf.to_container(probes.pairs, resolve=True)
    chars = {char for members in groups.values() for char in members} | {char for pair in pairs for char in pair[:2]}
    stoi = {char: i for i, char in enumerate(sorted(chars))}
    return {pair.name: pair.expect for pair in ProbeSet.build(groups, pairs, stoi).pairs}


def mean_sd(values: list[float]) -> dict[str, Any]:
    """mean (None without values), sample sd (None below two values) and n."""
    return {"mean": statistics.fmean(values) if values else None,
            "sd": statistics.stdev(values) if len(values) > 1 else None,
            "n": len(values)}


def direction_matches(zf: list[float], expect: str) -> float | None:
    """Share of seeds whose matched z has the sign the pair's expectation names; None for "none".

    The sign alone: whether a claim *held* (zf and p past conf analysis.claims) is the report's call.
    """
    if expect == "none" or not zf:
        return None
    return sum(z > 0 if expect == "up" else z < 0 for z in zf) / len(zf)


def override_key(override: str) -> str:
    return override.split("=", 1)[0]


def sweep_axes(jobs: list[Job]) -> list[str]:
    """The override keys whose value differs between jobs, in command-line order (e.g. model, seed)."""
    keys = list(dict.fromkeys(override_key(o) for job in jobs for o in job.overrides))

    def value(job: Job, key: str) -> str | None:
        return next((o for o in job.overrides if override_key(o) == key), None)

    return [key for key in keys if len({value(job, key) for job in jobs}) > 1]


def summarize(jobs: list[Job]) -> dict[str, Any]:
    """The sweep as plain data: its axes, every job, and every configuration's numbers over seeds."""
    axes = sweep_axes(jobs)
    members: dict[tuple[str, ...], list[Job]] = {}
    for job in jobs:
        members.setdefault(tuple(o for o in job.overrides if override_key(o) != SEED), []).append(job)
    labels = {job.num: " ".join(o for o in job.overrides if override_key(o) in axes and override_key(o) != SEED)
              or "all jobs" for job in jobs}
    configurations = [summarize_configuration(labels[group[0].num], group) for group in members.values()]
    configurations.sort(key=lambda c: (c["n_params"] is None, c["n_params"] or 0, c["label"]))
    return {
        "axes": axes,
        "n_jobs": len(jobs),
        "n_complete": sum(job.status == "complete" for job in jobs),
        "configurations": configurations,
        "jobs": [{"job": job.num, "configuration": labels[job.num], "seed": job.seed, "status": job.status,
                  "n_params": job.n_params, "step": job.final.get("step"), "loss_val": job.final.get("loss/val"),
                  "overrides": job.overrides} for job in jobs],
    }


def summarize_configuration(label: str, jobs: list[Job]) -> dict[str, Any]:
    """Final val loss and per-pair cos, z, zf (mean ± sd) over the complete jobs of one configuration."""
    complete = [job for job in jobs if job.status == "complete"]
    pairs = {}
    for name, expect in (complete[0].expect.items() if complete else ()):
        if not all(f"zf/{name}" in job.final for job in complete):
            continue  # trained with analysis.at_snapshots=false, or another probe set
        per_stat = {stat: [job.final[f"{stat}/{name}"] for job in complete] for stat in PAIR_STATS}
        pairs[name] = {"expect": expect, **{stat: mean_sd(values) for stat, values in per_stat.items()},
                       "direction": direction_matches(per_stat["zf"], expect)}
    return {
        "label": label,
        "n_params": next((job.n_params for job in jobs if job.n_params is not None), None),
        "seeds": [job.seed for job in complete],
        "incomplete_jobs": [job.num for job in jobs if job.status != "complete"],
        "loss_val": mean_sd([job.final["loss/val"] for job in complete]),
        "pairs": pairs,
    }


def plotted(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The configurations that can be placed on a plot: a known size and at least one complete job."""
    return [c for c in summary["configurations"] if c["n_params"] is not None and c["seeds"]]


def plot_labels(summary: dict[str, Any]) -> CharLabels:
    """How the plots write configurations and probe pairs: 说-道, or by code point without a CJK font."""
    configs = summary["configurations"]
    return CharLabels({c for config in configs for text in (config["label"], *config["pairs"]) for c in text})


def plot_val_loss(summary: dict[str, Any], labels: CharLabels) -> Figure:
    fig, axes = figure(size=(6.5, 4.5))
    ax = axes[0, 0]
    for config in plotted(summary):
        loss = config["loss_val"]
        ax.errorbar(config["n_params"], loss["mean"], yerr=loss["sd"] or 0, fmt="o", capsize=4)
        ax.annotate(labels(config["label"]), (config["n_params"], loss["mean"]), xytext=(6, 6),
                    textcoords="offset points", fontsize=8)
    seeds = [(job["n_params"], job["loss_val"]) for job in summary["jobs"] if job["status"] == "complete"
             and job["n_params"] is not None]
    if seeds:
        ax.scatter(*zip(*seeds), s=12, color="grey", alpha=0.5, label="one seed", zorder=3)
        ax.legend(loc="upper right")
    ax.margins(x=0.2)  # room for the labels
    ax.set(xscale="log", xlabel="parameters", ylabel="final validation loss",
           title="Final validation loss (mean ± sd over seeds)")
    return fig


def plot_pair_z(summary: dict[str, Any], labels: CharLabels) -> Figure:
    """Two panels, z and zf; one line per probe pair (dashed: no expected direction)."""
    configs = plotted(summary)
    fig, grid = figure(1, 2, size=(11, 4.5))
    axes = grid[0]
    axes[1].sharey(axes[0])
    titles = {"z": "z against random frequent pairs", "zf": "zf against frequency-matched pairs"}
    for ax, stat in zip(axes, titles):
        ax.set_prop_cycle(color=COLOURS)  # a colour per pair
        for name, pair in (configs[0]["pairs"].items() if configs else ()):
            points = [(c["n_params"], c["pairs"][name][stat]) for c in configs if name in c["pairs"]]
            ax.errorbar([x for x, _ in points], [s["mean"] for _, s in points],
                        yerr=[s["sd"] or 0 for _, s in points], marker="o", capsize=3,
                        linestyle="--" if pair["expect"] == "none" else "-",
                        label=f"{labels(name)} ({pair['expect']})")
        ax.axhline(0, color="grey", linewidth=0.8)
        ax.set(xscale="log", xlabel="parameters", title=titles[stat])
    axes[0].set_ylabel("final z (mean ± sd over seeds)")
    if configs and configs[0]["pairs"]:
        fig.legend(*axes[0].get_legend_handles_labels(), loc="outside right upper", title="pair (expect)",
                   fontsize=8)
    return fig


def mean_sd_cell(stat: dict[str, Any], digits: int = 2) -> str:
    """`2.100 ± 0.141`; the mean alone from one seed, — from none."""
    spec = f".{digits}f"
    return num(stat["mean"], spec) + (f" ± {num(stat['sd'], spec)}" if stat["sd"] is not None else "")


def summary_markdown(summary: dict[str, Any], title: str) -> str:
    """summary.md: the loss table, per-configuration pair tables and the job list."""
    n_failed = summary["n_jobs"] - summary["n_complete"]
    parts = [
        f"# Sweep {title}",
        f"{summary['n_jobs']} jobs, {summary['n_complete']} complete"
        + (f", **{n_failed} not complete**" if n_failed else "")
        + f"; swept: {', '.join(summary['axes']) or 'nothing'}; W&B group `{summary['wandb_group']}`. "
        "Final-step values, mean ± sd over the seeds of each configuration (complete jobs only).",
    ]
    rows = []
    for c in summary["configurations"]:
        seeds = ", ".join(map(str, c["seeds"])) or "—"
        if c["incomplete_jobs"]:
            seeds += f" (not complete: job {', '.join(map(str, c['incomplete_jobs']))})"
        rows.append([escape(c["label"]), num(c["n_params"], ","), seeds, mean_sd_cell(c["loss_val"], 3)])
    parts += ["## Final validation loss", table(["configuration", "parameters", "seeds", "val loss"], rows),
              "![final validation loss against parameters](val_loss.png)",
              "## Probe pairs at the final step",
              "z: against random pairs of frequent characters. zf: against random pairs from the same "
              "frequency bands, the baseline that frequency drift cannot fool. direction: seeds whose zf has "
              "the expected sign."]
    for c in summary["configurations"]:
        if not c["pairs"]:
            continue
        rows = [[escape(name), p["expect"], mean_sd_cell(p["cos"]), mean_sd_cell(p["z"]), mean_sd_cell(p["zf"]),
                 "—" if p["direction"] is None else f"{round(p['direction'] * p['zf']['n'])}/{p['zf']['n']}"]
                for name, p in c["pairs"].items()]
        parts += [f"### {escape(c['label'])} (seeds {', '.join(map(str, c['seeds']))})",
                  table(["pair", "expect", "cos", "z", "zf", "direction"], rows)]
    rows = [[j["job"], escape(j["configuration"]), j["seed"], j["status"], num(j["n_params"], ","),
             num(j["step"], "d"), num(j["loss_val"], ".3f")] for j in summary["jobs"]]
    parts += ["![final probe-pair z against parameters](pair_z.png)", "## Jobs",
              table(["job", "configuration", "seed", "status", "parameters", "step", "val loss"], rows)]
    return "\n\n".join(parts) + "\n"


def write_summary_files(sweep_dir: Path, summary: dict[str, Any]) -> None:
    fileio.write_json(sweep_dir / "summary.json", summary)
    fileio.write_text(sweep_dir / "summary.md", summary_markdown(summary, str(sweep_dir)))
    labels = plot_labels(summary)
    if labels.as_code_points:
        log.warning("no installed font draws %s: the sweep's plots label them by code point; install a CJK "
                    "font (Noto Sans CJK, WenQuanYi, Source Han Sans) to see them", "".join(labels.as_code_points))
    with matplotlib.rc_context({"font.family": labels.families}):
        fileio.write_bytes(sweep_dir / "val_loss.png", png(plot_val_loss(summary, labels)))
        fileio.write_bytes(sweep_dir / "pair_z.png", png(plot_pair_z(summary, labels)))


def log_summary(job_cfg: DictConfig, sweep_dir: Path, summary: dict[str, Any]) -> None:
    """The summary as one W&B run in the jobs' group (their W&B settings): three tables, two plots."""
    cfg = OmegaConf.create({
        "name": job_cfg.name,
        "wandb": OmegaConf.to_container(job_cfg.wandb, resolve=True),
        "sweep": {"dir": str(sweep_dir), "axes": summary["axes"], "n_jobs": summary["n_jobs"],
                  "n_complete": summary["n_complete"]},
    })
    with Tracker(cfg, sweep_dir, job_type="sweep-summary", name=f"{cfg.wandb.group}-summary") as tracker:
        if tracker.wandb_run is None:
            return
        import wandb

        configs = summary["configurations"]
        tracker.log_media({
            "sweep/configurations": wandb.Table(
                columns=["configuration", "parameters", "seeds", "val_loss_mean", "val_loss_sd"],
                data=[[c["label"], c["n_params"], ", ".join(map(str, c["seeds"])), c["loss_val"]["mean"],
                       c["loss_val"]["sd"]] for c in configs]),
            "sweep/pairs": wandb.Table(
                columns=["configuration", "parameters", "pair", "expect",
                         *[f"{stat}_{part}" for stat in PAIR_STATS for part in ("mean", "sd")], "direction"],
                data=[[c["label"], c["n_params"], name, p["expect"],
                       *[p[stat][part] for stat in PAIR_STATS for part in ("mean", "sd")], p["direction"]]
                      for c in configs for name, p in c["pairs"].items()]),
            "sweep/jobs": wandb.Table(
                columns=["job", "configuration", "seed", "status", "parameters", "step", "val_loss"],
                data=[[j["job"], j["configuration"], j["seed"], j["status"], j["n_params"], j["step"],
                       j["loss_val"]] for j in summary["jobs"]]),
            "sweep/val_loss": wandb.Image(str(sweep_dir / "val_loss.png")),
            "sweep/pair_z": wandb.Image(str(sweep_dir / "pair_z.png")),
        }, step=0)


def summarize_sweep(sweep_dir: str | Path, to_wandb: bool = True) -> dict[str, Any]:
    """Read every job of the sweep, write the summary files into sweep_dir, optionally log to W&B."""
    sweep_dir = Path(sweep_dir)
    jobs = read_jobs(sweep_dir)
    if not jobs:
        raise GlassboxError(f"{sweep_dir} holds no sweep jobs (no */.hydra folders); pass a sweep directory, "
                            "outputs/<experiment>/sweeps/<time>")
    job_cfg = OmegaConf.load(jobs[0].run_dir / ".hydra" / "config.yaml")
    summary = {"wandb_group": job_cfg.wandb.group, **summarize(jobs)}
    write_summary_files(sweep_dir, summary)
    from glassbox.explore import write_sweep_page  # imported here: glassbox.explore imports this module

    write_sweep_page(sweep_dir, jobs, summary)
    if to_wandb:
        log_summary(job_cfg, sweep_dir, summary)
    return summary


class SweepSummary(Callback):
    """Hydra callback: rewrites the sweep's summary files as jobs end, and logs them to W&B at the end.

    Once a job has failed Hydra skips on_multirun_end, so the files are rewritten after every job:
    such a sweep still leaves a summary that lists the failure (`python -m glassbox.sweep` logs it).
    """

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if config.hydra.mode == RunMode.MULTIRUN:
            self._summarize(Path(config.hydra.sweep.dir), to_wandb=False)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._summarize(Path(config.hydra.sweep.dir), to_wandb=True)

    @staticmethod
    def _summarize(sweep_dir: Path, to_wandb: bool) -> None:
        try:
            summarize_sweep(sweep_dir, to_wandb)
        except Exception:  # noqa: BLE001 - a broken summary must not stop the training jobs
            log.exception("could not summarize the sweep; retry with: python -m glassbox.sweep %s", sweep_dir)


@exits_cleanly
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m glassbox.sweep",
                                     description="Write (again) the summary of a sweep and log it to W&B.")
    parser.add_argument("sweep_dir", type=Path, help="outputs/<experiment>/sweeps/<time>")
    sweep_dir = parser.parse_args(argv).sweep_dir
    summary = summarize_sweep(sweep_dir)
    print(f"{summary['n_complete']}/{summary['n_jobs']} jobs complete; summary: {sweep_dir / 'summary.md'}")


if __name__ == "__main__":
    main()
