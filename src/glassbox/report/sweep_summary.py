"""A sweep's summary (analysis/sweeps.py) as markdown and plots: final loss and probe-pair emergence
per configuration, the swept key on the plots' x-axis with mean ± sd over seeds. The stage
glassbox.sweep writes these into the sweep directory and logs them to W&B.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib.figure import Figure
from omegaconf import OmegaConf

from glassbox import fileio
from glassbox.analysis.sweeps import PAIR_STATS, SEED, UNSET, Job
from glassbox.report.explorer import sweep_html
from glassbox.report.markdown import escape, num, table
from glassbox.report.plotting import COLOURS, CharLabels, figure, missing_font_notice, png
from glassbox.run.tracking import ReportLog

log = logging.getLogger(__name__)


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


def write_summary(sweep_dir: Path, summary: dict[str, Any], z_min: float | None) -> None:
    """summary.json, summary.md and the three plots, into the sweep directory."""
    fileio.write_json(sweep_dir / "summary.json", summary)
    fileio.write_text(sweep_dir / "summary.md", summary_markdown(summary, str(sweep_dir)))
    labels = plot_labels(summary)
    if labels.as_code_points:
        log.warning("%s", missing_font_notice(labels.as_code_points))
    with matplotlib.rc_context({"font.family": labels.families}):
        for name, fig in (
            ("val_loss", plot_val_loss(summary, labels)),
            ("pair_z", plot_pair_z(summary, labels)),
            ("pair_zf_steps", plot_pair_curves(summary, labels, z_min)),
        ):
            fileio.write_bytes(sweep_dir / f"{name}.png", png(fig))


def report_log(summary: dict[str, Any], sweep_dir: Path) -> ReportLog:
    """The summary as W&B shows it: three tables, the three plots."""
    configs = summary["configurations"]
    stats = [f"{stat}_{part}" for stat in PAIR_STATS for part in ("mean", "sd")]
    tables = {
        "sweep/configurations": (
            ["configuration", "parameters", "seeds", "val_loss_mean", "val_loss_sd"],
            [
                [c["label"], c["n_params"], ", ".join(map(str, c["seeds"])), c["loss_val"]["mean"], c["loss_val"]["sd"]]
                for c in configs
            ],
        ),
        "sweep/pairs": (
            ["configuration", "parameters", "pair", "pair_id", "expect", *stats, "direction"],
            [
                [
                    c["label"],
                    c["n_params"],
                    p["label"],
                    name,
                    p["expect"],
                    *[p[stat][part] for stat in PAIR_STATS for part in ("mean", "sd")],
                    p["direction"],
                ]
                for c in configs
                for name, p in c["pairs"].items()
            ],
        ),
        "sweep/jobs": (
            ["job", "configuration", "seed", "status", "parameters", "step", "val_loss"],
            [
                [j["job"], j["configuration"], j["seed"], j["status"], j["n_params"], j["step"], j["loss_val"]]
                for j in summary["jobs"]
            ],
        ),
    }
    images = [
        (f"sweep/{name}", (sweep_dir / f"{name}.png").read_bytes(), name, 0)
        for name in ("val_loss", "pair_z", "pair_zf_steps")
    ]
    return ReportLog(tables, step=0, images=images)
