"""A sweep's summary as data, markdown and plots: final loss and probe-pair emergence per configuration.

Reads each job's .hydra/ files (overrides, config), run.json (size, status, probe pairs) and
metrics.jsonl records; jobs that differ only by `seed` form one configuration. The plots put the
swept key on their x-axis (the first one other than the seed; the seed when nothing else was swept),
as numbers or as categories as its values are, with mean ± sd over seeds. The stage glassbox.sweep
writes these into the sweep directory and logs them to W&B.
"""

from __future__ import annotations

import json
import math
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
UNSET = "unset"  # a swept key's value in a job that did not set it
PAIR_STATS = ("cos", "z", "zf")  # the per-pair metrics summarized


@dataclass(frozen=True)
class Job:
    """One job of a sweep, as far as the summary needs it."""

    num: int
    run_dir: Path
    overrides: list[str]  # its command-line overrides, e.g. ["experiment=tiny", "model=tiny", "seed=1"]
    seed: int
    status: str  # run.json's: complete | running | interrupted | failed; "failed" without one
    n_params: int | None  # None when the job failed before its run began
    rows: list[dict[str, float]]  # its metrics.jsonl records, one per snapshot; [] when it logged none
    expect: dict[str, str]  # probe pair name -> the direction its cosine should take (run.json's probe_pairs)
    pair_labels: dict[str, str]  # probe pair name -> how plots write it, e.g. 说–道

    @property
    def final(self) -> dict[str, float]:
        """Its last metrics.jsonl record; {} when it logged none."""
        return self.rows[-1] if self.rows else {}


def read_jobs(sweep_dir: str | Path) -> list[Job]:
    """Every job Hydra started in sweep_dir, in job order."""
    return sorted(
        (read_job(hydra_dir.parent) for hydra_dir in Path(sweep_dir).glob("*/.hydra")), key=lambda job: job.num
    )


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
        rows=records,
        expect={pair["name"]: pair["expect"] for pair in state.get("probe_pairs", [])},
        pair_labels={pair["name"]: pair["label"] for pair in state.get("probe_pairs", [])},
    )


def mean_sd(values: list[float]) -> dict[str, Any]:
    """mean (None without values), sample sd (None below two values) and n."""
    return {
        "mean": statistics.fmean(values) if values else None,
        "sd": statistics.stdev(values) if len(values) > 1 else None,
        "n": len(values),
    }


def over_steps(runs: list[dict[int, float]]) -> dict[str, list]:
    """A value against step over seeds ({step: value} per run), at the steps every run logged:
    steps, mean, sd (None from one run) and each run's values (per_seed, in the order given)."""
    steps = sorted(set.intersection(*(set(run) for run in runs))) if runs else []
    stats = [mean_sd([run[step] for run in runs]) for step in steps]
    return {
        "steps": steps,
        "mean": [m["mean"] for m in stats],
        "sd": [m["sd"] for m in stats],
        "per_seed": [[run[step] for step in steps] for run in runs],
    }


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


def axis_values(overrides: list[str], axes: list[str]) -> dict[str, str]:
    """{swept key: its value} of one job, e.g. {"model.pos_encoding": "rope"}, for the keys in `axes`."""
    return {override_key(o): o.split("=", 1)[1] for o in overrides if "=" in o and override_key(o) in axes}


def summarize(jobs: list[Job]) -> dict[str, Any]:
    """The sweep as plain data: its axes, the x-axis of its plots, every job, every configuration over seeds."""
    axes = sweep_axes(jobs)
    varied = [axis for axis in axes if axis != SEED]
    members: dict[tuple[str, ...], list[Job]] = {}
    for job in jobs:
        members.setdefault(tuple(o for o in job.overrides if override_key(o) != SEED), []).append(job)
    labels = {job.num: " ".join(o for o in job.overrides if override_key(o) in varied) or "all jobs" for job in jobs}
    configurations = [
        summarize_configuration(labels[group[0].num], axis_values(group[0].overrides, varied), group)
        for group in members.values()
    ]
    configurations.sort(key=lambda c: (c["n_params"] is None, c["n_params"] or 0, c["label"]))
    return {
        "axes": axes,
        "x_axis": x_axis(jobs, varied),
        "n_jobs": len(jobs),
        "n_complete": sum(job.status == "complete" for job in jobs),
        "configurations": configurations,
        "jobs": [
            {
                "job": job.num,
                "configuration": labels[job.num],
                "seed": job.seed,
                "status": job.status,
                "n_params": job.n_params,
                "step": job.final.get("step"),
                "loss_val": job.final.get(keys.LOSS_VAL),
                "overrides": job.overrides,
                "values": axis_values(job.overrides, varied),
                "pairs": {
                    name: {stat: job.final[keys.pair(stat, name)] for stat in PAIR_STATS}
                    for name in job.expect
                    if keys.pair("zf", name) in job.final
                },
            }
            for job in jobs
        ],
    }


def x_axis(jobs: list[Job], varied: list[str]) -> dict[str, Any]:
    """What the plots put on their x-axis: the first swept key other than the seed, its values in the
    order the sweep ran them, and whether they are numbers; the seed when nothing else was swept."""
    key = varied[0] if varied else SEED
    values = list(
        dict.fromkeys(
            str(job.seed) if key == SEED else axis_values(job.overrides, [key]).get(key, UNSET) for job in jobs
        )
    )
    numeric = all(_is_number(v) for v in values)
    if numeric:
        values.sort(key=float)
    return {"key": key, "values": values, "numeric": numeric}


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def summarize_configuration(label: str, values: dict[str, str], jobs: list[Job]) -> dict[str, Any]:
    """Final val loss and per-pair cos, z, zf (mean ± sd) over the complete jobs of one configuration,
    and every pair's zf against step (mean ± sd over those seeds)."""
    complete = [job for job in jobs if job.status == "complete"]
    pairs = {}
    for name, expect in complete[0].expect.items() if complete else ():
        if not all(keys.pair("zf", name) in job.final for job in complete):
            continue  # trained with analysis.at_snapshots=false, or another probe set
        per_stat = {stat: [job.final[keys.pair(stat, name)] for job in complete] for stat in PAIR_STATS}
        zf_key = keys.pair("zf", name)
        pairs[name] = {
            "expect": expect,
            "label": complete[0].pair_labels[name],
            **{stat: mean_sd(values) for stat, values in per_stat.items()},
            "direction": direction_matches(per_stat["zf"], expect),
            "zf_curve": over_steps([{r["step"]: r[zf_key] for r in job.rows if zf_key in r} for job in complete]),
        }
    return {
        "label": label,
        "values": values,
        "n_params": next((job.n_params for job in jobs if job.n_params is not None), None),
        "seeds": [job.seed for job in complete],
        "incomplete_jobs": [job.num for job in jobs if job.status != "complete"],
        "loss_val": mean_sd([job.final[keys.LOSS_VAL] for job in complete]),
        "pairs": pairs,
    }


def plotted(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The configurations that can be placed on a plot: at least one complete job."""
    return [c for c in summary["configurations"] if c["seeds"]]


def plot_labels(summary: dict[str, Any]) -> CharLabels:
    """How the plots write configurations and probe pairs: 说–道, or by code point without a CJK font."""
    configs = summary["configurations"]
    texts = [text for config in configs for text in (config["label"], *(p["label"] for p in config["pairs"].values()))]
    return CharLabels({c for text in texts for c in text})


def _words(labels: CharLabels, text: str) -> str:
    """A configuration's label in a plot, word by word (its spaces stay spaces)."""
    return " ".join(labels(word) for word in text.split(" "))


class XAxis:
    """Where a job or a configuration sits on the plots' x-axis (summary["x_axis"]): at its value of
    the swept key, as a number or as one of the categories, in the order the sweep ran them."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.key, self.values, self.numeric = spec["key"], spec["values"], spec["numeric"]

    def of_job(self, job: dict[str, Any]) -> float:
        return self._at(str(job["seed"]) if self.key == SEED else job["values"].get(self.key, UNSET))

    def of_configuration(self, config: dict[str, Any]) -> float:
        return self._at(config["values"].get(self.key, UNSET))

    def _at(self, value: str) -> float:
        return float(value) if self.numeric else float(self.values.index(value))

    def draw(self, ax) -> None:
        """The key as the axis label; categories as tick labels, numbers on a log scale when they span 10×."""
        ax.set_xlabel(self.key)
        if not self.numeric:
            ax.set_xticks(range(len(self.values)), self.values)
            ax.set_xlim(-0.5, len(self.values) - 0.5)
            return
        numbers = [float(v) for v in self.values]
        if min(numbers) > 0 and max(numbers) >= 10 * min(numbers):
            ax.set_xscale("log")
        ax.set_xticks(numbers, self.values)
        ax.minorticks_off()


def _series(summary: dict[str, Any], axis: XAxis) -> dict[str, list[dict[str, Any]]]:
    """The plotted configurations by the values of the other swept keys (one line each), in x order."""
    series: dict[str, list[dict[str, Any]]] = {}
    for config in plotted(summary):
        others = " ".join(f"{k}={v}" for k, v in config["values"].items() if k != axis.key)
        series.setdefault(others or "mean ± sd over seeds", []).append(config)
    return {name: sorted(configs, key=axis.of_configuration) for name, configs in series.items()}


def _over_axis(
    ax,
    summary: dict[str, Any],
    axis: XAxis,
    stat_of,
    value_of_job,
    colour=None,
    name=None,
    linestyle="-",
    offset: float = 0.0,
) -> None:
    """One quantity against the swept key: mean ± sd over seeds per configuration and every seed as a
    dot. Numbers on the axis get a line through the means and a band between mean - sd and mean + sd;
    categories get error bars alone (offset moves them sideways, so that several quantities stay
    apart), since no line runs between two variants. Over a seed-only sweep the seeds are the x-axis
    and the mean ± sd a band across them.

    stat_of(configuration) -> mean_sd dict or None; value_of_job(job entry) -> float or None.
    """
    jobs = [j for j in summary["jobs"] if j["status"] == "complete" and value_of_job(j) is not None]
    dots = "grey" if colour is None else colour
    if axis.key == SEED:
        for config in plotted(summary):
            stat = stat_of(config)
            if stat is None or stat["mean"] is None:
                continue
            xs = [axis.of_job(j) for j in jobs]
            line = ax.plot([min(xs), max(xs)], [stat["mean"]] * 2, color=colour, label=name, linestyle=linestyle)[0]
            if stat["sd"] is not None:
                ax.fill_between(
                    [min(xs), max(xs)],
                    stat["mean"] - stat["sd"],
                    stat["mean"] + stat["sd"],
                    color=line.get_color(),
                    alpha=0.15,
                )
            ax.scatter(xs, [value_of_job(j) for j in jobs], color=line.get_color(), s=16, zorder=3)
        return
    for n, (series_name, configs) in enumerate(_series(summary, axis).items()):
        points = [(axis.of_configuration(c) + offset, stat_of(c)) for c in configs]
        points = [(x, stat) for x, stat in points if stat is not None and stat["mean"] is not None]
        if not points:
            continue
        xs, means = [x for x, _ in points], [stat["mean"] for _, stat in points]
        sds = [stat["sd"] or 0 for _, stat in points]
        label = series_name if name is None else name if n == 0 else None  # a named quantity: one legend entry
        line = ax.errorbar(
            xs,
            means,
            yerr=sds,
            marker="o",
            capsize=4,
            color=colour,
            label=label,
            linestyle=linestyle if axis.numeric else "none",
        )[0]
        if axis.numeric:
            ax.fill_between(
                xs,
                [m - s for m, s in zip(means, sds)],
                [m + s for m, s in zip(means, sds)],
                color=line.get_color(),
                alpha=0.12,
            )
    ax.scatter(
        [axis.of_job(j) + offset for j in jobs],
        [value_of_job(j) for j in jobs],
        s=10,
        color=dots,
        alpha=0.5,
        zorder=3,
        label="one seed" if name is None else None,
    )


def plot_val_loss(summary: dict[str, Any], labels: CharLabels) -> Figure:
    """Final validation loss against the swept key, mean ± sd over seeds."""
    axis = XAxis(summary["x_axis"])
    fig, axes = figure(size=(6.5, 4.5))
    ax = axes[0, 0]
    _over_axis(ax, summary, axis, lambda c: c["loss_val"], lambda j: j["loss_val"])
    axis.draw(ax)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small")
    ax.set(ylabel="final validation loss", title=f"Final validation loss by {axis.key} (mean ± sd over seeds)")
    return fig


def plot_pair_z(summary: dict[str, Any], labels: CharLabels) -> Figure:
    """Two panels, z and zf against the swept key; one line per probe pair (dashed: no expected direction)."""
    axis = XAxis(summary["x_axis"])
    configs = plotted(summary)
    pairs = configs[0]["pairs"] if configs else {}
    fig, grid = figure(1, 2, size=(11, 4.5))
    axes = grid[0]
    axes[1].sharey(axes[0])
    titles = {"z": "z against random frequent pairs", "zf": "zf against frequency-matched pairs"}
    for ax, stat in zip(axes, titles):
        for n, (name, pair) in enumerate(pairs.items()):
            _over_axis(
                ax,
                summary,
                axis,
                lambda c, name=name, stat=stat: c["pairs"].get(name, {}).get(stat),
                lambda j, name=name, stat=stat: j["pairs"].get(name, {}).get(stat),
                colour=COLOURS[n % len(COLOURS)],
                name=f"{labels(pair['label'])} ({pair['expect']})",
                linestyle="--" if pair["expect"] == "none" else "-",
                offset=0 if axis.numeric else 0.3 * (n - (len(pairs) - 1) / 2) / max(len(pairs), 1),
            )
        ax.axhline(0, color="grey", linewidth=0.8)
        axis.draw(ax)
        ax.set_title(titles[stat])
    axes[0].set_ylabel("final z (mean ± sd over seeds)")
    if pairs:
        fig.legend(*axes[0].get_legend_handles_labels(), loc="outside right upper", title="pair (expect)", fontsize=8)
    return fig


def plot_pair_curves(summary: dict[str, Any], labels: CharLabels, z_min: float | None) -> Figure:
    """One panel per probe pair: its zf against step, one line per configuration (mean ± sd band over seeds)."""
    configs = plotted(summary)
    names = list(configs[0]["pairs"]) if configs else []
    n_cols = min(3, max(len(names), 1))
    n_rows = max(math.ceil(len(names) / n_cols), 1)
    fig, axes = figure(n_rows, n_cols, size=(4.2 * n_cols, 3.2 * n_rows))
    for index, name in enumerate(names):
        ax = axes[index // n_cols, index % n_cols]
        for n, config in enumerate(configs):
            curve = config["pairs"].get(name, {}).get("zf_curve")
            if not curve or not curve["steps"]:
                continue
            colour = COLOURS[n % len(COLOURS)]
            ax.plot(curve["steps"], curve["mean"], color=colour, label=_words(labels, config["label"]))
            if all(sd is not None for sd in curve["sd"]):
                ax.fill_between(
                    curve["steps"],
                    [m - s for m, s in zip(curve["mean"], curve["sd"])],
                    [m + s for m, s in zip(curve["mean"], curve["sd"])],
                    color=colour,
                    alpha=0.15,
                )
        if z_min is not None:
            for level in (z_min, -z_min):
                ax.axhline(level, color="0.4", linestyle="--", linewidth=0.8)
        ax.set_xscale("symlog", linthresh=1, linscale=0.5)
        ax.set_xlim(left=0)
        pair = configs[0]["pairs"][name]
        ax.set(xlabel="training step", ylabel="zf", title=f"{labels(pair['label'])} ({pair['expect']})")
        ax.grid(alpha=0.3)
    for index in range(len(names), n_rows * n_cols):
        axes[index // n_cols, index % n_cols].set_visible(False)
    if names:
        fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside right upper", fontsize=8)
    fig.suptitle("zf against step per configuration, mean ± sd over seeds")
    return fig


def mean_sd_cell(stat: dict[str, Any], digits: int = 2) -> str:
    """`2.100 ± 0.141`; the mean alone from one seed, — from none."""
    spec = f".{digits}f"
    return num(stat["mean"], spec) + (f" ± {num(stat['sd'], spec)}" if stat["sd"] is not None else "")


def summary_markdown(summary: dict[str, Any], title: str) -> str:
    """summary.md: the comparison along the swept key, the loss table, per-configuration pair tables, the jobs."""
    n_failed = summary["n_jobs"] - summary["n_complete"]
    key = summary["x_axis"]["key"]
    parts = [
        f"# Sweep {title}",
        f"{summary['n_jobs']} jobs, {summary['n_complete']} complete"
        + (f", **{n_failed} not complete**" if n_failed else "")
        + f"; swept: {', '.join(summary['axes']) or 'nothing'}; W&B group `{summary['wandb_group']}`. "
        "Final-step values, mean ± sd over the seeds of each configuration (complete jobs only).",
    ]
    configs = plotted(summary)
    names = list(configs[0]["pairs"]) if configs else []
    if key != SEED and configs:
        rows = [
            [
                escape(c["label"]),
                mean_sd_cell(c["loss_val"], 3),
                *(mean_sd_cell(c["pairs"][name]["zf"]) if name in c["pairs"] else "—" for name in names),
            ]
            for c in sorted(configs, key=XAxis(summary["x_axis"]).of_configuration)
        ]
        parts += [
            f"## By {escape(key)}",
            f"Final validation loss and every probe pair's final zf (against its frequency-matched null), "
            f"mean ± sd over seeds, one row per value of {escape(key)}.",
            table(["configuration", "val loss", *(f"zf {escape(name)}" for name in names)], rows),
        ]
    rows = []
    for c in summary["configurations"]:
        seeds = ", ".join(map(str, c["seeds"])) or "—"
        if c["incomplete_jobs"]:
            seeds += f" (not complete: job {', '.join(map(str, c['incomplete_jobs']))})"
        rows.append([escape(c["label"]), num(c["n_params"], ","), seeds, mean_sd_cell(c["loss_val"], 3)])
    parts += [
        "## Final validation loss",
        table(["configuration", "parameters", "seeds", "val loss"], rows),
        f"![final validation loss by {escape(key)}](val_loss.png)",
        "## Probe pairs at the final step",
        "z: against random pairs of frequent characters. zf: against random pairs from the same "
        "frequency bands, the baseline that frequency drift cannot fool. direction: seeds whose zf has "
        "the expected sign.",
    ]
    for c in summary["configurations"]:
        if not c["pairs"]:
            continue
        rows = [
            [
                escape(p["label"]),
                p["expect"],
                mean_sd_cell(p["cos"]),
                mean_sd_cell(p["z"]),
                mean_sd_cell(p["zf"]),
                "—" if p["direction"] is None else f"{round(p['direction'] * p['zf']['n'])}/{p['zf']['n']}",
            ]
            for p in c["pairs"].values()
        ]
        parts += [
            f"### {escape(c['label'])} (seeds {', '.join(map(str, c['seeds']))})",
            table(["pair", "expect", "cos", "z", "zf", "direction"], rows),
        ]
    rows = [
        [
            j["job"],
            escape(j["configuration"]),
            j["seed"],
            j["status"],
            num(j["n_params"], ","),
            num(j["step"], "d"),
            num(j["loss_val"], ".3f"),
        ]
        for j in summary["jobs"]
    ]
    parts += [
        f"![final probe-pair z by {escape(key)}](pair_z.png)",
        "![probe-pair zf against step per configuration](pair_zf_steps.png)",
        "## Jobs",
        table(["job", "configuration", "seed", "status", "parameters", "step", "val loss"], rows),
    ]
    return "\n\n".join(parts) + "\n"


def explorer_page(sweep_dir: Path, jobs: list[Job], summary: dict[str, Any]) -> str:
    """The sweep's explorer page (report/explorer.py) from its jobs and their summary."""
    config = OmegaConf.load(jobs[0].run_dir / ".hydra" / "config.yaml")
    claims = OmegaConf.select(config, "analysis.claims")
    thresholds = OmegaConf.to_container(claims) if claims is not None else {}
    axes = [axis for axis in summary["axes"] if axis != SEED]
    return sweep_html(sweep_dir.name, summary, {job.num: job.rows for job in jobs}, axes, thresholds)
