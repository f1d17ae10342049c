"""The analysis report: claims judged against chance, this run's tables beside the article's, plots.

Everything here is a function of the `analysis` dict that glassbox.analyze builds and saves as
report/analysis.json (plain data), so a report can be redrawn from that file alone, without W&B
and without the model. Tables are built by glassbox.markdown, plots through glassbox.plotting.

A claim is worded by the numbers only: "held" where the pair's z against its frequency-matched
null (zf) reaches analysis.claims.z_min in the expected direction AND its permutation p-value is
at most analysis.claims.p_max; "not yet" where it moved the expected way without getting there;
"did not" where it moved the other way. The global z is shown, never used to judge: drift of all
frequent characters fools it (see probes/baselines.py).
"""
from __future__ import annotations

import math
import re
from typing import Any

import matplotlib
import numpy as np

from glassbox.markdown import escape, num, quoted, table, visible_char
from glassbox.plotting import COLOURS, CharLabels, figure, png

HELD, NOT_YET, DID_NOT, NO_DIRECTION = "held", "not yet", "did not", "no direction expected"
GROUP_CLAIM = "within − cross"  # the group statistic: mean within-group minus mean cross-group cosine


# ---------------------------------------------------------------- claims

def verdict(zf: float, p: float, expect: str, z_min: float, p_max: float) -> str:
    """held / not yet / did not for a claim expected to go "up" or "down"; NaN never holds."""
    if expect == "none":
        return NO_DIRECTION
    toward_expected = zf if expect == "up" else -zf
    if toward_expected >= z_min and p <= p_max:
        return HELD
    return NOT_YET if toward_expected > 0 else DID_NOT


def claims(analysis: dict[str, Any]) -> list[dict[str, Any]]:
    """One claim per probe pair, plus the group statistic, judged at the last snapshot.

    first_held is the first step at which the claim held, if any: a pair that held early and
    faded (the common drift of frequent characters) reads differently from one still rising.
    """
    snapshots = analysis["snapshots"]
    if not snapshots or "baseline/mean" not in snapshots[0]["scalars"]:
        return []  # the embeddings suite did not run
    thresholds = analysis["thresholds"]
    rows = [(p["name"], p["a"], p["b"], p["kind"], p["expect"], f"cos/{p['name']}", f"z/{p['name']}",
             f"zf/{p['name']}", f"p/{p['name']}") for p in analysis["probes"]["pairs"]]
    if "stat/within_minus_cross" in snapshots[0]["scalars"]:
        rows.append((GROUP_CLAIM, None, None, "groups", "up", "stat/within_minus_cross", None,
                     "zf/within_minus_cross", "p/within_minus_cross"))
    result = []
    for name, a, b, kind, expect, value_key, z_key, zf_key, p_key in rows:
        judged = [(s["step"], verdict(s["scalars"][zf_key], s["scalars"][p_key], expect, **thresholds))
                  for s in snapshots]
        final = snapshots[-1]["scalars"]
        result.append({
            "claim": name, "a": a, "b": b, "kind": kind, "expect": expect, "step": snapshots[-1]["step"],
            "value": final[value_key], "z": final[z_key] if z_key else None, "zf": final[zf_key],
            "p": final[p_key], "verdict": judged[-1][1],
            "first_held": next((step for step, v in judged if v == HELD), None),
        })
    return result


def claim_sentence(claim: dict[str, Any], z_min: float, p_max: float) -> str:
    """The verdict of one claim in words, with the numbers that decided it."""
    zf, p, step, expect = claim["zf"], claim["p"], claim["step"], claim["expect"]
    needed = f"zf {'≥' if expect == 'up' else '≤'} {z_min if expect == 'up' else -z_min:+g} and p ≤ {p_max:g}"
    numbers = f"zf {zf:+.2f}, p {p:.3f}"
    if claim["verdict"] == NO_DIRECTION:
        apart = abs(zf) >= z_min and p <= p_max
        return f"no direction expected; {numbers}: {'differs from' if apart else 'indistinguishable from'} chance"
    if claim["verdict"] == HELD:
        since = claim["first_held"]
        earlier = f"; first held at step {since}" if since != step else ""
        return f"**held** at step {step}: {numbers} ({needed}){earlier}"
    earlier = f"; it held at step {claim['first_held']} but no longer does" if claim["first_held"] is not None else ""
    if claim["verdict"] == NOT_YET:
        return (f"**not yet** at step {step}: {numbers}, moving the expected way ({expect}) "
                f"but short of {needed}{earlier}")
    return f"**did not** hold at step {step}: {numbers}, against the expected direction ({expect}){earlier}"


# ---------------------------------------------------------------- markdown

def _pair_label(pair: dict[str, Any]) -> str:
    """`说 – 道` for a pair (claim or probe pair), the statistic's name for the group claim."""
    return GROUP_CLAIM if pair["a"] is None else f"{visible_char(pair['a'])} – {visible_char(pair['b'])}"


def _header(a: dict[str, Any]) -> str:
    snapshots, model, reference = a["snapshots"], a["model"], a["reference"]
    t = a["thresholds"]
    rows = [
        ["run", f"`{a['run_dir']}` (status: {a['status'] or 'unknown'})"],
        ["snapshots", f"{len(snapshots)}, steps {snapshots[0]['step']} … {snapshots[-1]['step']}"],
        ["model", f"{model['n_layer']} layers × {model['n_head']} heads, {model['n_embd']} dims, block "
                  f"{model['block_size']}, {model['n_params'] / 1e6:.2f}M parameters"],
        ["corpus", f"{a['corpus']}, {a['vocab_size']} characters"
                   + (f" (article: {reference['vocab_size']})" if "vocab_size" in reference else "")],
        ["suites", ", ".join(a["suites"])],
        ["claims", f"judged against the frequency-matched baseline: held = zf ≥ {t['z_min']:g} in the "
                   f"expected direction and permutation p ≤ {t['p_max']:g}"],
    ]
    if "source" in reference:
        rows.append(["article figures", escape(reference["source"])])
    text = f"# glassbox analysis: {a['experiment']}\n\n" + table(["", ""], rows)
    if a["status"] != "complete":
        text += (f"\n\n> The run's status is {a['status'] or 'unknown'}: every number is as of step "
                 f"{snapshots[-1]['step']}, not of a finished run.")
    missing = a.get("plot_labels", {}).get("as_code_points")
    if missing:
        text += (f"\n\n> No installed font draws {''.join(missing[:12])}{'…' if len(missing) > 12 else ''}: the "
                 f"plots label those characters by code point ({missing[0]} = U+{ord(missing[0]):04X}). Install "
                 "a CJK font (Noto Sans CJK, WenQuanYi, Source Han Sans) and analyse again to see them.")
    return text


def _claims_section(a: dict[str, Any]) -> str | None:
    if not a["claims"]:
        return None
    t = a["thresholds"]
    lines = [f"## Claims at step {a['snapshots'][-1]['step']}", ""]
    for c in a["claims"]:
        what = ("mean within-group minus mean cross-group cosine, expected up" if c["kind"] == "groups"
                else f"{c['kind']}, expected {c['expect']}")
        lines.append(f"- {_pair_label(c)} ({what}): {claim_sentence(c, **t)}.")
    held = sum(c["verdict"] == HELD for c in a["claims"])
    judged = sum(c["verdict"] != NO_DIRECTION for c in a["claims"])
    lines += ["", f"{held} of {judged} directional claims held."]
    return "\n".join(lines)


def _embedding_section(a: dict[str, Any]) -> str | None:
    first, final = a["snapshots"][0]["scalars"], a["snapshots"][-1]["scalars"]
    if "emb/std" not in first:
        return None
    article = a["reference"].get("embedding", {})
    stats = [("std", "std", ".4f"), ("min", "min", "+.3f"), ("max", "max", "+.3f"),
             ("mean row L2 norm", "l2_mean", ".3f")]
    rows = [[label, num(article.get("init", {}).get(key), spec), num(first[f"emb/{key}"], spec),
             num(article.get("trained", {}).get(key), spec), num(final[f"emb/{key}"], spec)]
            for label, key, spec in stats]
    header = ["token embedding", "article, random init", f"this run, step {a['snapshots'][0]['step']}",
              "article, trained", f"this run, step {a['snapshots'][-1]['step']}"]
    return "## Token embedding, random init vs trained\n\n" + table(header, rows)


def _cosine_section(a: dict[str, Any]) -> str | None:
    if not a["claims"]:
        return None
    first, final = a["snapshots"][0], a["snapshots"][-1]
    article = a["reference"].get("cosine", {})
    rows = []
    for c in a["claims"]:
        key = "stat/within_minus_cross" if c["kind"] == "groups" else f"cos/{c['claim']}"
        ref = article.get(c["claim"], {})
        rows.append([_pair_label(c), c["kind"], c["expect"], num(ref.get("init")), num(first["scalars"][key]),
                     num(ref.get("trained")), num(c["value"]), num(c["z"], "+.2f"), num(c["zf"], "+.2f"),
                     num(c["p"], ".3f"), c["verdict"]])
    header = ["pair", "kind", "expected", "article, init", f"step {first['step']}", "article, trained",
              f"step {final['step']}", "z (global)", "zf (matched)", "p", "verdict"]
    return ("## Cosine similarity of probe pairs, random init vs trained\n\n" + table(header, rows)
            + "\n\nz is against random pairs of frequent characters, zf against random pairs from the pair's own "
              "frequency bands; only zf and p decide the verdict.")


def _emergence_section(a: dict[str, Any]) -> str | None:
    if not a["claims"]:
        return None
    t = a["thresholds"]
    losses = {r["step"]: r.get("loss/val") for r in a["losses"]}
    pairs = a["probes"]["pairs"]
    rows = []
    for s in a["snapshots"]:
        cells = []
        for p in pairs:
            zf, pv = s["scalars"][f"zf/{p['name']}"], s["scalars"][f"p/{p['name']}"]
            mark = " ✓" if verdict(zf, pv, p["expect"], **t) == HELD else ""
            cells.append(f"{num(s['scalars']['cos/' + p['name']], '+.2f')} ({num(zf, '+.1f')}){mark}")
        rows.append([s["step"], num(losses.get(s["step"]), ".3f"), *cells])
    header = ["step", "val loss", *(_pair_label(p) for p in pairs)]
    return ("## Emergence over training\n\nCells: cosine (zf); ✓ where the claim held at that step.\n\n"
            + table(header, rows))


def _residual_section(a: dict[str, Any]) -> str | None:
    first, final = a["snapshots"][0], a["snapshots"][-1]
    if "activations" not in final or not final["activations"]["residual"]:
        return None
    article = a["reference"].get("residual", {})
    prompt = final["activations"]["residual"][0]["prompt"]

    def cell(row: dict[str, float]) -> str:
        return f"{row['mean']:+.4f} / {row['std']:.4f} / {row['max']:.4f}"

    rows = []
    for start, end in zip(first["activations"]["residual"][0]["layers"], final["activations"]["residual"][0]["layers"]):
        ref = article.get(end["layer"])
        rows.append([end["layer"], str(end["shape"]), f"{ref[0]:+.4f} / {ref[1]:.4f} / {ref[2]:.4f}" if ref else "—",
                     cell(start), cell(end)])
    header = ["layer", "shape", "article, trained", f"step {first['step']}", f"step {final['step']}"]
    return (f"## Residual stream per layer, prompt {quoted(prompt)}\n\nCells: mean / std / max |x|.\n\n"
            + table(header, rows))


def _entropy_section(a: dict[str, Any]) -> str | None:
    first, final = a["snapshots"][0], a["snapshots"][-1]
    if "activations" not in final:
        return None
    rows = [[layer, *(f"{h0:.2f} → {h1:.2f}" for h0, h1 in zip(first["activations"]["entropy"][layer], heads))]
            for layer, heads in final["activations"]["entropy"].items()]
    n_heads = len(rows[0]) - 1
    return (f"## Attention entropy per layer and head (nats), step {first['step']} → {final['step']}\n\n"
            "Measured on the fixed validation windows; lower = each query attends to fewer positions.\n\n"
            + table(["layer", *(f"head {h}" for h in range(n_heads))], rows))


def _attention_section(a: dict[str, Any]) -> str | None:
    final = a["snapshots"][-1]
    if "attention" not in final or not final["attention"]["prompts"]:
        return None
    prompt = final["attention"]["prompts"][0]
    tokens = [visible_char(t) for t in prompt["tokens"]]
    pattern = prompt["pattern"][0][0]
    rows = [[tokens[q], *(f"{w:.2f}" if k <= q else "·" for k, w in enumerate(weights))]
            for q, weights in enumerate(pattern)]
    return (f"## Attention, layer 0 head 0, prompt {quoted(prompt['prompt'])}, step {final['step']}\n\n"
            "Rows: the query position; · = the future, which the causal mask hides.\n\n" + table(["", *tokens], rows))


def _predictions_section(a: dict[str, Any]) -> str | None:
    final = a["snapshots"][-1]
    if "predictions" not in final:
        return None
    s = a["sampling"]
    reference = a["reference"].get("next_char")
    parts = [f"## Next character, step {final['step']} (temperature {s['temperature']:g})"]
    for prompt in final["predictions"]["prompts"]:
        rows = [[rank, visible_char(char), f"{prob:.1%}"] for rank, (char, prob) in enumerate(prompt["next"], 1)]
        parts.append(f"After {quoted(prompt['prompt'])}:\n\n" + table(["rank", "char", "probability"], rows))
        if reference and reference.get("prompt") == prompt["prompt"]:
            ranks = {char: (rank, prob) for rank, (char, prob) in enumerate(prompt["next"], 1)}
            ours = ranks.get(reference["char"])
            here = (f"{visible_char(reference['char'])} at {ours[1]:.1%} (rank {ours[0]})" if ours
                    else f"{visible_char(reference['char'])} is not among the top {len(prompt['next'])}")
            parts.append(f"Article: {visible_char(reference['char'])} at {reference['prob']:.1%} (temperature "
                         f"{reference['temperature']:g}); this run: {here}.")
    samples = [[snap["step"], escape(p["sample"])] for snap in a["snapshots"] for p in snap["predictions"]["prompts"]]
    parts.append(f"Samples ({s['gen_tokens']} characters, temperature {s['temperature']:g}, top-k {s['top_k']}, "
                 f"seed {s['seed']}), one per snapshot:\n\n" + table(["step", "sample"], samples))
    return "\n\n".join(parts)


def _lens_section(a: dict[str, Any]) -> str | None:
    final = a["snapshots"][-1]
    if "logit_lens" not in final:
        return None
    parts = [f"## Logit lens, step {final['step']}\n\nEach layer's residual read out through the final "
             f"LayerNorm and lm_head (temperature {a['sampling']['temperature']:g}); the last block's row is the "
             "model's own prediction."]
    for prompt in final["logit_lens"]["prompts"]:
        rows = [[layer["layer"], ", ".join(f"{visible_char(char)} {prob:.0%}" for char, prob in layer["top"])]
                for layer in prompt["layers"]]
        parts.append(f"After {quoted(prompt['prompt'])}:\n\n" + table(["layer", "top characters"], rows))
    return "\n\n".join(parts)


def _context_section(a: dict[str, Any]) -> str | None:
    first, final = a["snapshots"][0], a["snapshots"][-1]
    if "context" not in final:
        return None
    c = final["context"]
    senses = "; ".join(f"{escape(sense)}: {', '.join(quoted(t) for t in texts)}"
                       for sense, texts in c["senses"].items())
    rows = [[start["layer"], num(end["within"]), num(end["across"]), num(start["gap"]), num(end["gap"])]
            for start, end in zip(first["context"]["layers"], c["layers"])]
    header = ["layer", f"within, step {final['step']}", f"across, step {final['step']}",
              f"gap, step {first['step']}", f"gap, step {final['step']}"]
    return (f"## The same character in different contexts: {quoted(c['char'])}\n\n"
            f"Senses ({senses}). Cosine of the character's residual vectors within a sense and across senses; "
            "a positive gap means the layer tells the senses apart.\n\n" + table(header, rows))


def _neighbours_section(a: dict[str, Any]) -> str | None:
    final = a["snapshots"][-1]
    if "embeddings" not in final:
        return None
    rows = [[visible_char(row["char"]), ", ".join(f"{visible_char(char)} {cos:+.2f}" for char, cos in row["neighbours"])]
            for row in final["embeddings"]["neighbours"]]
    return (f"## Nearest neighbours by cosine, step {final['step']}\n\n"
            + table(["char", "neighbours (cosine)"], rows))


FIGURE_CAPTIONS = {
    "loss.png": "Loss vs step (from the training run's metrics.jsonl)",
    "cosine.png": "Probe-pair cosine vs step, with the random-pair baseline (mean ± sd)",
    "z_scores.png": "z-scores vs step: global and frequency-matched baselines",
    "embedding_scale.png": "Token embedding std and mean row L2 norm vs step",
    "residual_std.png": "Residual stream std per layer vs step (fixed validation windows)",
    "attention_first.png": "Attention patterns at the first snapshot",
    "attention_final.png": "Attention patterns at the last snapshot",
    "pca.png": "PCA of the probe characters' embeddings, first and last snapshot",
    "context.png": "Context gap per layer vs step",
}


def render(analysis: dict[str, Any], figure_names: list[str]) -> str:
    """report.md: the claims in words, the article's tables with this run beside them, the plots."""
    sections = [section(analysis) for section in (
        _header, _claims_section, _embedding_section, _cosine_section, _emergence_section, _residual_section,
        _entropy_section, _attention_section, _predictions_section, _lens_section, _context_section,
        _neighbours_section)]
    plots = [f"### {FIGURE_CAPTIONS[name]}\n\n![{name}]({name})" for name in FIGURE_CAPTIONS if name in figure_names]
    if plots:
        sections.append("## Plots\n\n" + "\n\n".join(plots))
    return "\n\n".join(s for s in sections if s) + "\n"


# ---------------------------------------------------------------- plots

def plotted_chars(analysis: dict[str, Any]) -> set[str]:
    """Every character a plot may label: the probe characters and the prompts."""
    probes = analysis["probes"]
    chars = {c for chars in probes["groups"].values() for c in chars}
    chars |= {c for p in probes["pairs"] for c in (p["a"], p["b"])}
    return chars | {c for prompt in probes["prompts"] for c in prompt}


def _against_step(ax, steps: list[int], series: dict[str, list[float]], ylabel: str, styles=None,
                  legend: bool = True) -> None:
    """Lines vs training step; symlog x because snapshots are log-spaced early (0, 1, 2, 4, ...)."""
    for i, (name, values) in enumerate(series.items()):
        ax.plot(steps, values, marker=".", label=name, color=COLOURS[i % len(COLOURS)],
                **(styles or {}).get(name, {}))
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
        series[name] = _series(a["snapshots"], f"{prefix}/{p['name']}")
        styles[name] = PAIR_STYLE[p["kind"]]
    return series, styles


def _cosine_figure(a: dict[str, Any], labels: CharLabels) -> bytes:
    snapshots = a["snapshots"]
    steps = [s["step"] for s in snapshots]
    fig, axes = figure(size=(8, 4.5))
    ax = axes[0, 0]
    mean, sd = np.array(_series(snapshots, "baseline/mean")), np.array(_series(snapshots, "baseline/std"))
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
    for ax, prefix, title in ((axes[0, 0], "z", "z against random frequent pairs (global)"),
                              (axes[0, 1], "zf", "zf against frequency-matched pairs (decides claims)")):
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
    by_frequency = {m.group(0) for key in snapshots[0]["scalars"] if (m := re.match(r"emb/(top|bottom)\d+", key))}
    groups = ["emb", *sorted(by_frequency)]
    fig, axes = figure(1, 2, size=(12, 4))
    for ax, stat, label in ((axes[0, 0], "std", "std of all entries"), (axes[0, 1], "l2_mean", "mean row L2 norm")):
        series = {("all characters" if g == "emb" else g.removeprefix("emb/") + " by frequency"):
                  _series(snapshots, f"{g}/{stat}") for g in groups}
        _against_step(ax, steps, series, label)
        ax.set_title(f"token embedding: {label}")
    return png(fig)


def _residual_figure(a: dict[str, Any]) -> bytes:
    snapshots = a["snapshots"]
    layers = [k.split("/")[1] for k in snapshots[0]["scalars"] if k.startswith("resid/") and k.endswith("/std")]
    fig, axes = figure(size=(8, 4.5))
    _against_step(axes[0, 0], [s["step"] for s in snapshots],
                  {layer: _series(snapshots, f"resid/{layer}/std") for layer in layers}, "std")
    axes[0, 0].set_title("residual stream std per layer (fixed validation windows)")
    return png(fig)


def _loss_figure(a: dict[str, Any]) -> bytes:
    losses = a["losses"]
    fig, axes = figure(size=(8, 4))
    ax = axes[0, 0]
    for key, name in (("loss/val", "validation"), ("loss/train", "train (mean of recent batches)")):
        points = [(r["step"], r[key]) for r in losses if key in r]
        if points:
            ax.plot(*zip(*points), marker=".", label=name)
    ax.set_xscale("symlog", linthresh=1, linscale=0.5)
    ax.set(xlabel="training step", ylabel="cross-entropy (nats)", title="loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return png(fig)


def _attention_figure(snapshot: dict[str, Any], labels: CharLabels) -> bytes:
    prompt = snapshot["attention"]["prompts"][0]
    pattern = np.array(prompt["pattern"])  # [layer, head, query, key]
    n_layer, n_head, T, _ = pattern.shape
    ticks = [labels(t) for t in prompt["tokens"]]
    fig, axes = figure(n_layer, n_head, size=(2.4 * n_head + 1, 2.4 * n_layer + 0.8))
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="0.88")
    future = np.triu(np.ones((T, T), dtype=bool), k=1)
    for layer in range(n_layer):
        for head in range(n_head):
            ax = axes[layer, head]
            image = ax.imshow(np.ma.masked_array(pattern[layer, head], future), cmap=cmap, vmin=0, vmax=1)
            ax.set_xticks(range(T), ticks, fontsize=7)
            ax.set_yticks(range(T), ticks, fontsize=7)
            ax.set_title(f"layer {layer} · head {head}", fontsize=9)
            if T <= 8:
                for q in range(T):
                    for k in range(q + 1):
                        w = pattern[layer, head, q, k]
                        ax.text(k, q, f"{w:.2f}", ha="center", va="center", fontsize=6,
                                color="white" if w < 0.5 else "black")
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
            ax.scatter(coords[rows, 0], coords[rows, 1], s=40, color=f"C{index}" if group else "0.5",
                       label=group or "in pairs only")
            for i in rows:
                ax.annotate(labels(pca["chars"][i]), coords[i], xytext=(4, 4), textcoords="offset points", fontsize=11)
        ax.set(xlabel=f"PC1 ({pca['explained'][0]:.0%} of variance)", ylabel=f"PC2 ({pca['explained'][1]:.0%})",
               title=f"step {snapshot['step']}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    fig.suptitle("probe characters' token embeddings, first two principal components")
    return png(fig)


def _context_figure(a: dict[str, Any], labels: CharLabels) -> bytes:
    snapshots = a["snapshots"]
    layers = [row["layer"] for row in snapshots[0]["context"]["layers"]]
    fig, axes = figure(size=(8, 4.5))
    _against_step(axes[0, 0], [s["step"] for s in snapshots],
                  {layer: _series(snapshots, f"context/{layer}/gap") for layer in layers}, "within − across cosine")
    axes[0, 0].set_title(f"{labels(snapshots[0]['context']['char'])} in different senses: gap per layer")
    return png(fig)


def figures(analysis: dict[str, Any], labels: CharLabels) -> dict[str, bytes]:
    """PNG bytes by file name, for the suites that ran (names as in FIGURE_CAPTIONS)."""
    a = analysis
    first, final = a["snapshots"][0], a["snapshots"][-1]
    out = {}
    with matplotlib.rc_context({"font.family": labels.families}):
        if a["losses"]:
            out["loss.png"] = _loss_figure(a)
        if "embeddings" in final:
            out["cosine.png"] = _cosine_figure(a, labels)
            out["z_scores.png"] = _z_figure(a, labels)
            out["embedding_scale.png"] = _embedding_figure(a)
            out["residual_std.png"] = _residual_figure(a)
            out["pca.png"] = _pca_figure(a, labels)
        if "attention" in final and final["attention"]["prompts"]:
            out["attention_first.png"] = _attention_figure(first, labels)
            out["attention_final.png"] = _attention_figure(final, labels)
        if "context" in final:
            out["context.png"] = _context_figure(a, labels)
    return out
