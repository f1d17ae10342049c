"""A sweep's summary as data, markdown and plots: final loss and probe-pair emergence per configuration.

Reads each job's .hydra/ files (overrides, config), run.json (size, status, probe pairs) and last
metrics.jsonl record; jobs that differ only by `seed` form one configuration. The stage
glassbox.sweep writes these into the sweep directory and logs them to W&B.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from omegaconf import OmegaConf

from glassbox import metric_keys as keys
from glassbox.report.explorer import sweep_html
from glassbox.report.markdown import escape, num, table
from glassbox.report.plotting import COLOURS, CharLabels, figure
from glassbox.run.layout import METRICS, read_run_state
from glassbox.run.tracking import JsonlFile

SEED = "seed"  # the override that repeats a configuration
PAIR_STATS = ("cos", "z", "zf")  # the per-pair metrics summarized


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
    expect: dict[str, str]   # probe pair name -> the direction its cosine should take (run.json's probe_pairs)
    labels: dict[str, str]   # probe pair name -> how people read it (说–道)


def read_jobs(sweep_dir: str | Path) -> list[Job]:
    """Every job Hydra started in sweep_dir, in job order."""
    return sorted((read_job(hydra_dir.parent) for hydra_dir in Path(sweep_dir).glob("*/.hydra")),
                  key=lambda job: job.num)


def read_job(run_dir: Path) -> Job:
    hydra_dir = run_dir / ".hydra"
    cfg = OmegaConf.load(hydra_dir / "config.yaml")
    state = read_run_state(run_dir)  # train records n_params there when the run starts
    try:
        records = JsonlFile(run_dir / METRICS).read()
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
        expect={pair["name"]: pair["expect"] for pair in state.get("probe_pairs", [])},
        labels={pair["name"]: pair["label"] for pair in state.get("probe_pairs", [])},
    )


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
                  "n_params": job.n_params, "step": job.final.get("step"), "loss_val": job.final.get(keys.LOSS_VAL),
                  "overrides": job.overrides} for job in jobs],
    }


def summarize_configuration(label: str, jobs: list[Job]) -> dict[str, Any]:
    """Final val loss and per-pair cos, z, zf (mean ± sd) over the complete jobs of one configuration."""
    complete = [job for job in jobs if job.status == "complete"]
    pairs = {}
    for name, expect in (complete[0].expect.items() if complete else ()):
        if not all(keys.pair("zf", name) in job.final for job in complete):
            continue  # trained with analysis.at_snapshots=false, or another probe set
        per_stat = {stat: [job.final[keys.pair(stat, name)] for job in complete] for stat in PAIR_STATS}
        pairs[name] = {"label": complete[0].labels[name], "expect": expect,
                       **{stat: mean_sd(values) for stat, values in per_stat.items()},
                       "direction": direction_matches(per_stat["zf"], expect)}
    return {
        "label": label,
        "n_params": next((job.n_params for job in jobs if job.n_params is not None), None),
        "seeds": [job.seed for job in complete],
        "incomplete_jobs": [job.num for job in jobs if job.status != "complete"],
        "loss_val": mean_sd([job.final[keys.LOSS_VAL] for job in complete]),
        "pairs": pairs,
    }


def plotted(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The configurations that can be placed on a plot: a known size and at least one complete job."""
    return [c for c in summary["configurations"] if c["n_params"] is not None and c["seeds"]]


def plot_labels(summary: dict[str, Any]) -> CharLabels:
    """How the plots write configurations and probe pairs: 说–道, or by code point without a CJK font."""
    configs = summary["configurations"]
    texts = [text for config in configs for text in (config["label"], *(p["label"] for p in config["pairs"].values()))]
    return CharLabels({c for text in texts for c in text})


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
                        label=f"{labels(pair['label'])} ({pair['expect']})")
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
        rows = [[escape(p["label"]), p["expect"], mean_sd_cell(p["cos"]), mean_sd_cell(p["z"]), mean_sd_cell(p["zf"]),
                 "—" if p["direction"] is None else f"{round(p['direction'] * p['zf']['n'])}/{p['zf']['n']}"]
                for p in c["pairs"].values()]
        parts += [f"### {escape(c['label'])} (seeds {', '.join(map(str, c['seeds']))})",
                  table(["pair", "expect", "cos", "z", "zf", "direction"], rows)]
    rows = [[j["job"], escape(j["configuration"]), j["seed"], j["status"], num(j["n_params"], ","),
             num(j["step"], "d"), num(j["loss_val"], ".3f")] for j in summary["jobs"]]
    parts += ["![final probe-pair z against parameters](pair_z.png)", "## Jobs",
              table(["job", "configuration", "seed", "status", "parameters", "step", "val loss"], rows)]
    return "\n\n".join(parts) + "\n"


def _records(run_dir: Path) -> list[dict[str, Any]]:
    """A job's metrics.jsonl records; none when a kill cut its last line short (it cannot be complete)."""
    try:
        return JsonlFile(run_dir / METRICS).read()
    except json.JSONDecodeError:
        return []


def explorer_page(sweep_dir: Path, jobs: list[Job], summary: dict[str, Any]) -> str:
    """The sweep's explorer page (report/explorer.py) from its jobs and their summary."""
    config = OmegaConf.load(jobs[0].run_dir / ".hydra" / "config.yaml")
    claims = OmegaConf.select(config, "analysis.claims")
    thresholds = OmegaConf.to_container(claims) if claims is not None else {}
    axes = [axis for axis in summary["axes"] if axis != SEED]
    records = {job.num: _records(job.run_dir) for job in jobs}
    return sweep_html(sweep_dir.name, summary, records, axes, thresholds)
