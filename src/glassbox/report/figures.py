"""The report's plots: PNG bytes drawn from the `analysis` dict alone (see sections.py)."""

from __future__ import annotations

import math
from typing import Any

import matplotlib
import numpy as np

from glassbox import metric_keys as keys
from glassbox.report.plotting import COLOURS, CharLabels, figure, png

FIGURE_CAPTIONS = {
    "loss.png": "Loss vs step (from the training run's metrics.jsonl)",
    "cosine.png": "Probe-pair cosine vs step, with the random-pair baseline (mean ± sd)",
    "z_scores.png": "z-scores vs step: global and frequency-matched baselines",
    "embedding_scale.png": "Token embedding std and mean row L2 norm vs step",
    "residual_std.png": "Residual stream std per layer vs step (fixed validation windows)",
    "mechanisms.png": (
        "Head roles (best head's score, dashed: chance) and in-context learning vs step, the validation loss "
        "dotted on the right axis"
    ),
    "attention_first.png": "Attention patterns at the first snapshot",
    "attention_final.png": "Attention patterns at the last snapshot",
    "pca.png": "PCA of the probe characters' embeddings, first and last snapshot",
    "context.png": "Context gap per layer vs step",
    "linear_probes.png": "Linear probe accuracy and selectivity per layer vs step (fixed validation windows)",
    "layer_settling.png": "Linear CKA of each layer with itself at the last snapshot vs step",
}


def plotted_chars(analysis: dict[str, Any]) -> set[str]:
    """Every character a plot may label: the probe characters and the prompts."""
    probes = analysis["probes"]
    chars = {c for chars in probes["groups"].values() for c in chars}
    chars |= {c for p in probes["pairs"] for c in (p["a"], p["b"])}
    return chars | {c for prompt in probes["prompts"] for c in prompt}


def _against_step(
    ax, steps: list[int], series: dict[str, list[float]], ylabel: str, styles=None, legend: bool = True
) -> None:
    """Lines vs training step; symlog x because snapshots are log-spaced early (0, 1, 2, 4, ...)."""
    for i, (name, values) in enumerate(series.items()):
        ax.plot(steps, values, marker=".", label=name, color=COLOURS[i % len(COLOURS)], **(styles or {}).get(name, {}))
    ax.set_xscale("symlog", linthresh=1, linscale=0.5)
    ax.set_xlabel("training step")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if legend and len(series) > 4:
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1))
    elif legend:
        ax.legend(fontsize="small")


def _series(snapshots: list[dict[str, Any]], key: str) -> list[float]:
    return [s["scalars"].get(key, math.nan) for s in snapshots]


PAIR_STYLE = {"within": {"linestyle": "-"}, "cross": {"linestyle": "--"}, "other": {"linestyle": ":"}}


def _pair_series(a: dict[str, Any], labels: CharLabels, prefix: str) -> tuple[dict, dict]:
    series, styles = {}, {}
    for p in a["probes"]["pairs"]:
        name = f"{labels(p['a'])}–{labels(p['b'])}"
        series[name] = _series(a["snapshots"], keys.pair(prefix, p["name"]))
        styles[name] = PAIR_STYLE[p["kind"]]
    return series, styles


def _cosine_figure(a: dict[str, Any], labels: CharLabels) -> bytes:
    snapshots = a["snapshots"]
    steps = [s["step"] for s in snapshots]
    fig, axes = figure(size=(8, 4.5))
    ax = axes[0, 0]
    mean, sd = np.array(_series(snapshots, keys.BASELINE_MEAN)), np.array(_series(snapshots, keys.BASELINE_STD))
    ax.fill_between(steps, mean - sd, mean + sd, color="0.85", label="random pairs, mean ± sd")
    ax.plot(steps, mean, color="0.5", linewidth=1)
    series, styles = _pair_series(a, labels, "cos")
    _against_step(ax, steps, series, "cosine similarity", styles)
    ax.set_title("probe pairs (solid: within a group, dashed: across groups)")
    return png(fig)


def _z_figure(a: dict[str, Any], labels: CharLabels) -> bytes:
    steps = [s["step"] for s in a["snapshots"]]
    z_min = a["thresholds"]["z_min"]
    fig, axes = figure(1, 2, size=(12, 4.5))
    for ax, prefix, title in (
        (axes[0, 0], "z", "z against random frequent pairs (global)"),
        (axes[0, 1], "zf", "zf against frequency-matched pairs (decides claims)"),
    ):
        series, styles = _pair_series(a, labels, prefix)
        _against_step(ax, steps, series, "z", styles, legend=prefix == "zf")
        for level in (z_min, -z_min):
            ax.axhline(level, color="0.4", linestyle="--", linewidth=0.8)
        ax.set_title(title)
    axes[0, 1].sharey(axes[0, 0])
    return png(fig)


def _embedding_figure(a: dict[str, Any]) -> bytes:
    snapshots = a["snapshots"]
    steps = [s["step"] for s in snapshots]
    subsets = [None, *keys.embedding_subsets(snapshots[0]["scalars"])]
    fig, axes = figure(1, 2, size=(12, 4))
    for ax, stat, label in ((axes[0, 0], "std", "std of all entries"), (axes[0, 1], "l2_mean", "mean row L2 norm")):
        series = {
            ("all characters" if subset is None else f"{subset} by frequency"): _series(
                snapshots, keys.emb(stat, subset)
            )
            for subset in subsets
        }
        _against_step(ax, steps, series, label)
        ax.set_title(f"token embedding: {label}")
    return png(fig)


def _residual_figure(a: dict[str, Any]) -> bytes:
    snapshots = a["snapshots"]
    layers = keys.residual_layers(snapshots[0]["scalars"])
    fig, axes = figure(size=(8, 4.5))
    _against_step(
        axes[0, 0],
        [s["step"] for s in snapshots],
        {layer: _series(snapshots, keys.residual(layer, "std")) for layer in layers},
        "std",
    )
    axes[0, 0].set_title("residual stream std per layer (fixed validation windows)")
    return png(fig)


def _mechanisms_figure(a: dict[str, Any]) -> bytes:
    snapshots = a["snapshots"]
    steps = [s["step"] for s in snapshots]
    fig, axes = figure(1, 2, size=(12, 4.5))
    roles = list(keys.HEAD_MECHANISMS.values())
    _against_step(axes[0, 0], steps, {role: _series(snapshots, keys.head_max(role)) for role in roles}, "attention")
    for i, role in enumerate(roles):
        axes[0, 0].plot(steps, _series(snapshots, keys.head_chance(role)), color=COLOURS[i], linestyle="--", lw=0.8)
    axes[0, 0].set_title("best head per role (dashed: uniform causal attention)")
    icl = {"late − early": keys.ICL_SCORE, "2nd − 1st occurrence": keys.REPEAT_SCORE}
    _against_step(
        axes[0, 1], steps, {name: _series(snapshots, key) for name, key in icl.items()}, "loss difference (nats)"
    )
    axes[0, 1].axhline(0, color="0.4", linestyle="--", linewidth=0.8)
    axes[0, 1].set_title("in-context learning (negative: the context helped)")
    # The loss beside the ICL scores: when an induction head forms, its drop lines up with theirs.
    val_loss = [(r["step"], r[keys.LOSS_VAL]) for r in a.get("losses", []) if keys.LOSS_VAL in r]
    if val_loss:
        loss_axis = axes[0, 1].twinx()
        loss_axis.plot(*zip(*val_loss), color="0.35", linewidth=1.2, linestyle=":")
        loss_axis.set_ylabel("validation loss (nats, dotted)", color="0.4")
    return png(fig)


def _loss_figure(a: dict[str, Any]) -> bytes:
    losses = a["losses"]
    fig, axes = figure(size=(8, 4))
    ax = axes[0, 0]
    for key, name in ((keys.LOSS_VAL, "validation"), (keys.LOSS_TRAIN, "train (mean of recent batches)")):
        points = [(r["step"], r[key]) for r in losses if key in r]
        if points:
            ax.plot(*zip(*points), marker=".", label=name)
    ax.set_xscale("symlog", linthresh=1, linscale=0.5)
    ax.set(xlabel="training step", ylabel="cross-entropy (nats)", title="loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return png(fig)


def attention_figure(snapshot: dict[str, Any], labels: CharLabels) -> bytes:
    prompt = snapshot["attention"]["prompts"][0]
    pattern = np.array(prompt["pattern"])  # [layer, head, query, key]
    n_layer, n_head, T, _ = pattern.shape
    ticks = [labels(t) for t in prompt["tokens"]]
    fig, axes = figure(n_layer, n_head, size=(2.4 * n_head + 1, 2.4 * n_layer + 0.8))
    fig.set_layout_engine(None)  # a regular grid needs no constrained layout, which costs more than the drawing
    fig.subplots_adjust(left=0.06, right=0.86, bottom=0.07, top=0.9, wspace=0.15, hspace=0.3)
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="0.88")
    future = np.triu(np.ones((T, T), dtype=bool), k=1)
    for layer in range(n_layer):
        for head in range(n_head):
            ax = axes[layer, head]
            image = ax.imshow(np.ma.masked_array(pattern[layer, head], future), cmap=cmap, vmin=0, vmax=1)
            # characters along the outer edges only: the grid shares its axes, and every label costs the layout time
            ax.set_xticks(range(T), ticks if layer == n_layer - 1 else [""] * T, fontsize=7)
            ax.set_yticks(range(T), ticks if head == 0 else [""] * T, fontsize=7)
            ax.set_title(f"layer {layer} · head {head}", fontsize=9)
            if T <= 8:
                for q in range(T):
                    for k in range(q + 1):
                        w = pattern[layer, head, q, k]
                        ax.text(
                            k,
                            q,
                            f"{w:.2f}",
                            ha="center",
                            va="center",
                            fontsize=6,
                            color="white" if w < 0.5 else "black",
                        )
    fig.colorbar(image, ax=axes, shrink=0.6, label="attention weight (grey: masked future)")
    fig.suptitle(f"attention, prompt {labels(prompt['prompt'])}, step {snapshot['step']} (rows: query, columns: key)")
    return png(fig)


def _pca_figure(a: dict[str, Any], labels: CharLabels) -> bytes:
    fig, axes = figure(1, 2, size=(11, 5))
    for ax, snapshot in zip(axes[0], (a["snapshots"][0], a["snapshots"][-1])):
        pca = snapshot["embeddings"]["pca"]
        coords = np.array(pca["coords"])
        for index, group in enumerate(dict.fromkeys(pca["groups"])):
            rows = [i for i, g in enumerate(pca["groups"]) if g == group]
            ax.scatter(
                coords[rows, 0],
                coords[rows, 1],
                s=40,
                color=f"C{index}" if group else "0.5",
                label=group or "in pairs only",
            )
            for i in rows:
                ax.annotate(labels(pca["chars"][i]), coords[i], xytext=(4, 4), textcoords="offset points", fontsize=11)
        ax.set(
            xlabel=f"PC1 ({pca['explained'][0]:.0%} of variance)",
            ylabel=f"PC2 ({pca['explained'][1]:.0%})",
            title=f"step {snapshot['step']}",
        )
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    fig.suptitle("probe characters' token embeddings, first two principal components")
    return png(fig)


def _per_layer_figure(snapshots: list[dict[str, Any]], layers: list[str], key, ylabel: str, title: str) -> bytes:
    """One curve per layer against step: the metric `key(layer)` of every snapshot."""
    fig, axes = figure(size=(8, 4.5))
    series = {layer: _series(snapshots, key(layer)) for layer in layers}
    _against_step(axes[0, 0], [s["step"] for s in snapshots], series, ylabel)
    axes[0, 0].set_title(title)
    return png(fig)


def _context_figure(a: dict[str, Any], labels: CharLabels) -> bytes:
    snapshots = a["snapshots"]
    layers = [row["layer"] for row in snapshots[0]["context"]["layers"]]
    char = labels(snapshots[0]["context"]["char"])
    return _per_layer_figure(
        snapshots, layers, keys.context_gap, "within − across cosine", f"{char} in different senses: gap per layer"
    )


def _layer_rows(snapshot: dict[str, Any], suite: str) -> list[str]:
    return [row["layer"] for row in snapshot[suite]["layers"]]


def _linear_probes_figure(a: dict[str, Any]) -> bytes:
    snapshots = a["snapshots"]
    steps = [s["step"] for s in snapshots]
    layers = _layer_rows(snapshots[-1], "linear_probes")
    fig, axes = figure(1, 2, size=(12, 4.5))
    accuracy = {layer: _series(snapshots, keys.probe_accuracy(layer)) for layer in layers}
    _against_step(axes[0, 0], steps, accuracy, "held-out accuracy", legend=False)
    axes[0, 0].plot(steps, _series(snapshots, keys.PROBE_MAJORITY), color="0.4", linestyle="--", label="majority class")
    axes[0, 0].legend(fontsize="small")
    axes[0, 0].set_title(f"probe for '{snapshots[-1]['linear_probes']['property']}'")
    selectivity = {layer: _series(snapshots, keys.probe_selectivity(layer)) for layer in layers}
    _against_step(axes[0, 1], steps, selectivity, "accuracy − control task accuracy")
    axes[0, 1].axhline(0, color="0.4", linestyle="--", linewidth=0.8)
    axes[0, 1].set_title("selectivity (above the control task)")
    return png(fig)


def _layer_settling_figure(a: dict[str, Any]) -> bytes:
    snapshots = a["snapshots"]
    final_step = snapshots[-1]["layer_settling"]["final_step"]
    layers = _layer_rows(snapshots[-1], "layer_settling")
    return _per_layer_figure(
        snapshots, layers, keys.cka_to_final, "linear CKA", f"each layer vs itself at step {final_step}"
    )


def figures(analysis: dict[str, Any], labels: CharLabels) -> dict[str, bytes]:
    """PNG bytes by file name, for the suites that ran (names as in FIGURE_CAPTIONS)."""
    a = analysis
    first, final = a["snapshots"][0], a["snapshots"][-1]
    out = {}
    with matplotlib.rc_context({"font.family": labels.families}):
        if a["losses"]:
            out["loss.png"] = _loss_figure(a)
        if "embeddings" in final:
            if a["probes"]["pairs"]:
                out["cosine.png"] = _cosine_figure(a, labels)
                out["z_scores.png"] = _z_figure(a, labels)
            out["embedding_scale.png"] = _embedding_figure(a)
            out["residual_std.png"] = _residual_figure(a)
            if keys.ICL_SCORE in final["scalars"]:
                out["mechanisms.png"] = _mechanisms_figure(a)
            if "pca" in final["embeddings"]:
                out["pca.png"] = _pca_figure(a, labels)
        if "attention" in final and final["attention"]["prompts"]:
            out["attention_first.png"] = attention_figure(first, labels)
            out["attention_final.png"] = attention_figure(final, labels)
        if "context" in final:
            out["context.png"] = _context_figure(a, labels)
        if "linear_probes" in final:
            out["linear_probes.png"] = _linear_probes_figure(a)
        if "layer_settling" in final:
            out["layer_settling.png"] = _layer_settling_figure(a)
    return out
