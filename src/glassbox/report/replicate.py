"""A replicate (analysis/replicates.py) in words, tables and figures: per claim, in how many seeds it
held at the end, its zf as mean ± sd, the step it first held at in each seed and whether it stayed
held, and its zf against step with a band over seeds. The stage glassbox.replicate writes these
into the sweep directory.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib.figure import Figure

from glassbox import fileio
from glassbox.analysis.claims import GROUP_CLAIM, HELD, LEVEL, MOVING_APART, NO_ASSOCIATION
from glassbox.analysis.replicates import REPLICATE_JSON
from glassbox.report import explorer
from glassbox.report.claims import MECHANISM_LABELS
from glassbox.report.markdown import escape, num, p_text, table, visible_char
from glassbox.report.plotting import COLOURS, CharLabels, figure, missing_font_notice, png
from glassbox.report.sweep_summary import mean_sd_cell
from glassbox.run.tracking import ReportLog

log = logging.getLogger(__name__)


def claim_label(claim: dict[str, Any], chars: Callable[[str], str] = str) -> str:
    """`说–道`, `说–山 moving apart`, or the group statistic's name; chars: how to write the characters
    (CharLabels in plots: a code point where no font draws one)."""
    if claim["a"] is None:
        return GROUP_CLAIM
    pair = chars(f"{claim['a']}–{claim['b']}")
    return pair if claim["test"] == LEVEL else f"{pair} {claim['test']}"


def replicate_markdown(data: dict[str, Any], explorer: str | None) -> str:
    """replicate.md: the verdicts over seeds in words, the table, every seed, the plots; explorer: the
    sweep's explorer page beside it, if there is one."""
    n, asked = data["n_seeds"], len(data["seeds_asked"])
    seeds = f"{n} seed{'s' if n != 1 else ''}" if data["finished"] else f"{n} of {asked} seeds, unfinished"
    directional = [c for c in data["claims"] if c["expect"] != "none"]
    in_all = sum(c["n_held"] == c["n_seeds"] for c in directional)
    in_most = sum(c["n_held"] > c["n_seeds"] / 2 for c in directional)
    return (
        "\n\n".join(
            part
            for part in [
                f"# Replicate: {escape(data['experiment'])}, {seeds}",
                _intro(data, explorer),
                "## Verdicts over seeds",
                "\n".join(_verdict_line(c, n) for c in data["claims"]),
                f"{in_all} of {len(directional)} directional claims held in every seed, {in_most} in more than half.",
                _mechanisms_over_seeds(data),
                "## The claims, mean ± sd over seeds",
                _claims_table(data),
                "## Every seed at the last step",
                _seeds_table(data, directional),
                f"Final validation loss {mean_sd_cell(data['loss_val'], 3)}; training took "
                f"{mean_sd_cell(data['train_minutes'], 1) if data['train_minutes']['n'] else '—'} minutes a seed (wall "
                "clock of the training loop, snapshots and their metrics included, on the machine that ran it).",
                "## Plots",
                "![zf against step, mean ± sd over seeds](replicate_zf.png)",
                "![final zf of every seed](replicate_final.png)",
            ]
            if part
        )
        + "\n"
    )


def _mechanisms_over_seeds(data: dict[str, Any]) -> str:
    """Each mechanism: held in k of n seeds, and per seed its onset step (and best head) or "not yet"."""
    lines = []
    for m in data.get("mechanisms", []):
        per_seed = ", ".join(
            f"seed {s['seed']}: "
            + (f"from step {s['onset']}" if s["onset"] is not None else "not yet")
            + (f" ({s['head']})" if s["head"] else "")
            for s in m["seeds"]
        )
        lines.append(f"- {MECHANISM_LABELS[m['mechanism']]}: {m['over_seeds']} ({per_seed})")
    return "## Mechanisms over seeds\n\n" + "\n".join(lines) if lines else ""


def _intro(data: dict[str, Any], explorer: str | None) -> str:
    """What was trained, how the claims are judged, what is missing, where to see every seed."""
    t = data["thresholds"]
    trained = f" (`{' '.join(data['overrides'])}`)" if data["overrides"] else ""
    intro = (
        f"Experiment `{data['experiment']}`{trained} trained once per seed "
        f"({', '.join(map(str, data['seeds']))}), {data['step']} steps each, every claim judged in every seed "
        f"as the single-run report judges it: held = zf ≥ {t['z_min']:g} in the expected direction and "
        f"permutation p ≤ {t['p_max']:g}; a cross pair's *no association* must hold at every snapshot from "
        f"{t['early_drift']:.0%} of the steps on, its *moving apart* compares its cosine's change since step 0 "
        f"with that of random pairs from the same frequency bands. W&B group `{data['wandb_group']}`."
    )
    if not data["finished"]:
        intro += " " + _unfinished_text(data)
    if data["steps_differ"]:
        intro += " **The seeds did not all end at the same step.**"
    if explorer:
        intro += f" Every seed side by side: [{explorer}]({explorer})."
    return intro


def _unfinished_text(data: dict[str, Any]) -> str:
    """What is missing from a replicate: the seeds asked for and finished, each one stopped, failed or
    never started; and that outputs/<experiment>/replicate/latest did not move to it."""
    left_out = [
        f"seed {r['seed']} (job {r['job']}) "
        + (f"stopped at step {r['step']}" if r.get("step") is not None else r["status"])
        for r in data["not_complete"]
    ] + [f"seed {seed} never started" for seed in data["not_started"]]
    return (
        f"**Unfinished: {data['n_seeds']} of the {len(data['seeds_asked'])} seeds asked for "
        f"({', '.join(map(str, data['seeds_asked']))}) finished; {'; '.join(left_out)}.** The numbers below are "
        "of the finished seeds alone, and replicate/latest (which `make analyze` quotes) was not moved here."
    )


def _verdict_line(c: dict[str, Any], n: int) -> str:
    """One claim over seeds in words: how many held, its zf, when it first held (or where it failed)."""
    held_words = f"**{c['over_seeds']}**" if c["expect"] != "none" else c["over_seeds"]
    line = f"- {_pair_text(c)} ({_what(c)}): {held_words}; zf {mean_sd_cell(c['zf'])}"
    if c["test"] == NO_ASSOCIATION:
        broke = ", ".join(_step(s["broke_at"]) for s in c["seeds"])
        line += f"; the first snapshot it failed at, seed by seed: {broke}"
    elif c["expect"] != "none":
        first = ", ".join(_step(s["first_held"]) for s in c["seeds"])
        stayed = sum(s["stayed"] for s in c["seeds"])
        line += f"; first held at step {first} (seed by seed), stayed held to the end in {stayed} of {n}"
    return line + "."


def _claims_table(data: dict[str, Any]) -> str:
    rows = []
    for c in data["claims"]:
        article = c["article"]
        rows.append(
            [
                _pair_text(c),
                _test_text(c),
                c["expect"],
                c["over_seeds"],
                mean_sd_cell(c["zf"]),
                mean_sd_cell(c["value"], 3),
                f"{num(article.get('init'))} → {num(article.get('trained'))}" if article else "—",
                mean_sd_cell(c["change"], 3) if "change" in c else "—",
            ]
        )
    return table(
        [
            "claim",
            "kind",
            "expected",
            "over seeds",
            "zf",
            "cosine (group: statistic)",
            f"article, init → trained ({escape(data['reference_source'] or 'none')})",
            "change since step 0",
        ],
        rows,
    )


def _seeds_table(data: dict[str, Any], directional: list[dict[str, Any]]) -> str:
    """Every claim's verdict in every seed, then each seed's count of claims held, loss and minutes."""
    rows = [[_pair_text(c), _test_text(c), *(_seed_cell(s) for s in c["seeds"])] for c in data["claims"]]
    held = [sum(c["seeds"][i]["verdict"] == HELD for c in directional) for i in range(data["n_seeds"])]
    rows += [
        ["**directional claims held**", "", *(f"{k} of {len(directional)}" for k in held)],
        ["**final validation loss**", "", *(f"{loss:.3f}" for loss in data["seed_losses"])],
        ["**training minutes**", "", *(num(m, ".1f") for m in data["seed_minutes"])],
    ]
    return table(["claim", "kind", *(f"seed {seed}" for seed in data["seeds"])], rows)


def _pair_text(c: dict[str, Any]) -> str:
    """`说 – 道` in markdown, as the single-run report writes it; the group statistic's name."""
    return GROUP_CLAIM if c["a"] is None else f"{visible_char(c['a'])} – {visible_char(c['b'])}"


def _test_text(c: dict[str, Any]) -> str:
    """The kind of claim, with a cross pair's test: `within`, `cross, moving apart`."""
    return c["kind"] if c["test"] == LEVEL else f"{c['kind']}, {c['test']}"


def _step(step: int | None) -> str:
    return "—" if step is None else str(step)


def _seed_cell(s: dict[str, Any]) -> str:
    """One seed's verdict and numbers at the last step; where "no association" failed, the step it did."""
    where = f" (step {s['broke_at']})" if s.get("broke_at") is not None else ""
    return f"{s['verdict']}{where}: zf {s['zf']:+.2f}, p {p_text(s['p'], s['p_floor'])}"


def _what(c: dict[str, Any]) -> str:
    if c["kind"] == "groups":
        return "mean within-group minus mean cross-group cosine, expected up"
    if c["test"] != LEVEL:
        return f"cross, {c['test']}"
    return f"{c['kind']}, expected {c['expect']}" if c["expect"] != "none" else f"{c['kind']}, no direction expected"


def plot_curves(data: dict[str, Any], labels: CharLabels) -> Figure:
    """One panel per claim: each seed's zf against step (thin), their mean ± sd (line and band)."""
    claims = data["claims"]
    n_cols = min(3, max(len(claims), 1))
    n_rows = max(math.ceil(len(claims) / n_cols), 1)
    fig, axes = figure(n_rows, n_cols, size=(4.2 * n_cols, 3.2 * n_rows))
    z_min = data["thresholds"]["z_min"]
    for index, c in enumerate(claims):
        ax = axes[index // n_cols, index % n_cols]
        curve = c["curve"]
        steps, mean, sd = curve["steps"], curve["mean"], curve["sd"]
        for n, values in enumerate(curve["per_seed"]):
            ax.plot(
                steps,
                values,
                color=COLOURS[n % len(COLOURS)],
                linewidth=0.8,
                alpha=0.6,
                label=f"seed {data['seeds'][n]}",
            )
        ax.plot(steps, mean, color="black", linewidth=1.8, label="mean")
        if all(s is not None for s in sd):
            ax.fill_between(
                steps,
                [m - s for m, s in zip(mean, sd)],
                [m + s for m, s in zip(mean, sd)],
                color="0.6",
                alpha=0.3,
                label="mean ± sd",
            )
        for level in (z_min, -z_min):
            ax.axhline(level, color="0.4", linestyle="--", linewidth=0.8)
        ax.set_xscale("symlog", linthresh=1, linscale=0.5)
        ax.set_title(f"{claim_label(c, labels)}: {c['over_seeds']}", fontsize=9)
        ax.set_xlim(0, max(steps, default=1))
        ax.set(xlabel="training step", ylabel="zf (change)" if c["test"] == MOVING_APART else "zf")
        ax.grid(alpha=0.3)
    for index in range(len(claims), n_rows * n_cols):
        axes[index // n_cols, index % n_cols].set_visible(False)
    if claims:
        axes[0, 0].legend(fontsize="x-small")
    fig.suptitle("zf against step, every seed and their mean ± sd (dashed: ± z_min)")
    return fig


def plot_final(data: dict[str, Any], labels: CharLabels) -> Figure:
    """Every claim's final zf: one dot per seed, the mean ± sd beside, the thresholds as lines."""
    claims = data["claims"]
    fig, axes = figure(size=(max(6.0, 0.9 * len(claims) + 2), 4.5))
    ax = axes[0, 0]
    for x, c in enumerate(claims):
        zfs = [s["zf"] for s in c["seeds"]]
        colours = ["C2" if s["verdict"] == HELD else "0.5" for s in c["seeds"]]
        ax.scatter([x - 0.1] * len(zfs), zfs, c=colours, s=18, zorder=3)
        ax.errorbar(x + 0.1, c["zf"]["mean"], yerr=c["zf"]["sd"] or 0, fmt="o", color="black", capsize=3)
    z_min = data["thresholds"]["z_min"]
    for level in (z_min, -z_min):
        ax.axhline(level, color="0.4", linestyle="--", linewidth=0.8)
    ax.axhline(0, color="grey", linewidth=0.6)
    ax.set_xticks(range(len(claims)), [claim_label(c, labels) for c in claims], rotation=30, ha="right")
    ax.set(
        ylabel="final zf (moving apart: of the change since step 0)",
        title="final zf of every seed (green: held) and mean ± sd over seeds",
    )
    return fig


def plot_labels(data: dict[str, Any]) -> CharLabels:
    return CharLabels({ch for c in data["claims"] if c["a"] is not None for ch in (c["a"], c["b"])})


def write_replicate(sweep_dir: Path, data: dict[str, Any]) -> None:
    """replicate.json, replicate.md (linking the sweep's explorer page where there is one) and the two plots."""
    fileio.write_json(sweep_dir / REPLICATE_JSON, data)
    page = explorer.FILE_NAME if (sweep_dir / explorer.FILE_NAME).exists() else None
    fileio.write_text(sweep_dir / "replicate.md", replicate_markdown(data, page))
    labels = plot_labels(data)
    if labels.as_code_points:
        log.warning("%s", missing_font_notice(labels.as_code_points))
    with matplotlib.rc_context({"font.family": labels.families}):
        fileio.write_bytes(sweep_dir / "replicate_zf.png", png(plot_curves(data, labels)))
        fileio.write_bytes(sweep_dir / "replicate_final.png", png(plot_final(data, labels)))


def report_log(data: dict[str, Any], sweep_dir: Path) -> ReportLog:
    """The replicate as W&B shows it: two tables, two plots, its files as the report artifact."""
    claims = data["claims"]
    tables = {
        "replicate/claims": (
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
        ),
        "replicate/seeds": (
            ["claim", "test", "seed", "verdict", "zf", "p", "first_held", "stayed"],
            [
                [claim_label(c), c["test"], s["seed"], s["verdict"], s["zf"], s["p"], s["first_held"], s["stayed"]]
                for c in claims
                for s in c["seeds"]
            ],
        ),
    }
    images = [
        (f"replicate/{name}", (sweep_dir / f"replicate_{name}.png").read_bytes(), f"replicate_{name}.png", 0)
        for name in ("zf", "final")
    ]
    files = ("replicate.md", REPLICATE_JSON, "replicate_zf.png", "replicate_final.png")
    return ReportLog(
        tables,
        step=0,
        images=images,
        artifact=f"{data['wandb_group']}-replicate",
        files=[sweep_dir / name for name in files],
        metadata={"experiment": data["experiment"], "seeds": data["seeds"]},
    )
