"""report.md: the claims in words, the reference article's tables with this run beside them.

Every section is a function of the `analysis` dict that analysis/replay.py builds and glassbox.analyze saves as
report/analysis.json (plain data), so a report can be redrawn from that file alone, without W&B
and without the model. A section returns None when the suite it shows did not run.
"""

from __future__ import annotations

from typing import Any

from glassbox import metric_keys as keys
from glassbox.analysis.claims import GROUP_CLAIM, HELD, MOVING_APART, NO_ASSOCIATION, NO_DIRECTION, Claim, claim_list
from glassbox.model import NORM_NAMES, GPTConfig, describe_heads
from glassbox.report.claims import MECHANISM_LABELS, claim_sentence, mechanism_rule, mechanism_verdict
from glassbox.report.figures import FIGURE_CAPTIONS
from glassbox.report.markdown import escape, lens_table, num, p_text, quoted, table, visible_char
from glassbox.report.plotting import missing_font_notice


def _pair_label(pair: dict[str, Any]) -> str:
    """`说 – 道` for a pair (claim or probe pair), the statistic's name for the group claim."""
    return GROUP_CLAIM if pair["a"] is None else f"{visible_char(pair['a'])} – {visible_char(pair['b'])}"


def _variant(model: dict[str, Any], key: str) -> str:
    """An architecture option of the analysed model; an analysis from before the option existed had its default."""
    return model.get(key, getattr(GPTConfig, key))


def _header(a: dict[str, Any]) -> str:
    snapshots, model, reference = a["snapshots"], a["model"], a["reference"]
    t = a["thresholds"]
    training_now, skipped = a.get("training_now"), a.get("skipped_snapshots", [])
    status = f"still training, pid {training_now}" if training_now else a["status"] or "unknown"
    rows = [
        ["run", f"`{a['run_dir']}` (status: {status})"],
        ["snapshots", f"{len(snapshots)}, steps {snapshots[0]['step']} … {snapshots[-1]['step']}"],
        [
            "model",
            f"{model['n_layer']} layers × {describe_heads(model['n_head'], model.get('n_kv_head'))}, "
            f"{model['n_embd']} dims, block "
            f"{model['block_size']}, {model['n_params'] / 1e6:.2f}M parameters; "
            + ", ".join(f"{key}={_variant(model, key)}" for key in ("pos_encoding", "norm", "mlp"))
            + (f"; trained in {a['dtype']}" if a.get("dtype") else "")
            + (", compiled" if a.get("compiled") else ""),
        ],
        [
            "corpus",
            f"{a['corpus']}, {a['vocab_size']} characters"
            + (f" (article: {reference['vocab_size']})" if "vocab_size" in reference else ""),
        ],
        ["suites", ", ".join(a["suites"])],
        [
            "claims",
            f"judged against the frequency-matched baseline: held = zf ≥ {t['z_min']:g} in the "
            f"expected direction and permutation p ≤ {t['p_max']:g}",
        ],
    ]
    if "source" in reference:
        rows.append(["article figures", escape(reference["source"])])
    text = f"# glassbox analysis: {a['experiment']}\n\n" + table(["", ""], rows)
    if training_now:
        text += (
            f"\n\n> The run is still training (pid {training_now}): this analysis covers the snapshots it had "
            f"saved, steps {', '.join(str(s['step']) for s in snapshots)}. Analyse it again when it has finished."
        )
    elif a["status"] != "complete":
        text += (
            f"\n\n> The run's status is {a['status'] or 'unknown'}: every number is as of step "
            f"{snapshots[-1]['step']}, not of a finished run."
        )
    if skipped:
        text += (
            "\n\n> Snapshots left out, as they could not be used: "
            + "; ".join(f"step {s['step']} ({escape(s['reason'])})" for s in skipped)
            + "."
        )
    missing = a.get("plot_labels", {}).get("as_code_points")
    if missing:
        notice = missing_font_notice(missing)
        text += f"\n\n> {notice[0].upper()}{notice[1:]}"
    return text


def _claims_section(a: dict[str, Any]) -> str | None:
    if not a["claims"]:
        if "embeddings" in a["snapshots"][-1] and not (a["probes"]["pairs"] or a["probes"]["groups"]):
            return (
                "## Claims\n\nThe corpus config names no probe pairs or groups (corpus.probes), so there is no "
                "claim to judge. Give some and analyze again: every snapshot is measured anew, no retraining."
            )
        return None
    t = a["thresholds"]
    labels = _pair_labels(a)
    over_seeds = _replicate_verdicts(a.get("replicate"))
    lines = [f"## Claims at step {a['snapshots'][-1]['step']}", ""]
    for c in a["claims"]:
        line = f"- {_pair_label(c)} ({_claim_kind(c)}): {claim_sentence(c, t['z_min'], t['p_max'], labels.get)}."
        if over_seeds is not None:
            line += f" Over seeds: {over_seeds.get((c['claim'], c['test']), 'not in the replicate')}."
        lines.append(line)
    held = sum(c["verdict"] == HELD for c in a["claims"])
    judged = sum(c["verdict"] != NO_DIRECTION for c in a["claims"])
    lines += ["", f"{held} of {judged} directional claims held.", "", _replicate_note(a)]
    return "\n".join(lines)


def _claim_kind(c: dict[str, Any]) -> str:
    """What a claim line says the claim is, e.g. "within, expected up" or "cross, moving apart"."""
    if c["kind"] == "groups":
        return "mean within-group minus mean cross-group cosine, expected up"
    if c["test"] == NO_ASSOCIATION:
        return "cross, no association: stays within chance and below its groups' within pairs"
    if c["test"] == MOVING_APART:
        return "cross, moving apart: falls further than random pairs of its frequency bands"
    return f"{c['kind']}, expected {c['expect']}"


def _pair_labels(a: dict[str, Any]) -> dict[str, str]:
    """{pair name: `说 – 道`} for every probe pair."""
    return {p["name"]: _pair_label(p) for p in a["probes"]["pairs"]}


def _replicate_verdicts(replicate: dict[str, Any] | None) -> dict[tuple[str, str], str] | None:
    """{(claim, test): "held in 2 of 3 seeds"} from the experiment's replicate; None without one."""
    if not replicate:
        return None
    return {(c["claim"], c["test"]): c["over_seeds"] for c in replicate["claims"]}


def _replicate_note(a: dict[str, Any]) -> str:
    """Whether the experiment has a replicate (make replicate) and what it was."""
    replicate = a.get("replicate")
    if not replicate:
        return (
            f"One run is one seed. No replicate of experiment {a['experiment']} yet: "
            f"`make replicate EXPERIMENT={a['experiment']}` trains it over 3 seeds and says which claims hold in "
            "how many (each claim above then says it)."
        )
    steps = f"{replicate['step']} steps each"
    if replicate["step"] != a["snapshots"][-1]["step"]:
        steps += f", not this run's {a['snapshots'][-1]['step']}"
    return (
        f'"Over seeds": the replicate of experiment {a["experiment"]} in `{replicate["dir"]}` '
        f"({replicate['n_seeds']} seeds: {', '.join(map(str, replicate['seeds']))}; {steps}; "
        f"`{' '.join(replicate['overrides'])}`); its replicate.md has the curves and every seed."
    )


def _embedding_section(a: dict[str, Any]) -> str | None:
    first, final = a["snapshots"][0]["scalars"], a["snapshots"][-1]["scalars"]
    if keys.emb("std") not in first:
        return None
    article = a["reference"].get("embedding", {})
    stats = [
        ("std", "std", ".4f"),
        ("min", "min", "+.3f"),
        ("max", "max", "+.3f"),
        ("mean row L2 norm", "l2_mean", ".3f"),
    ]
    rows = [
        [
            label,
            num(article.get("init", {}).get(key), spec),
            num(first[keys.emb(key)], spec),
            num(article.get("trained", {}).get(key), spec),
            num(final[keys.emb(key)], spec),
        ]
        for label, key, spec in stats
    ]
    header = [
        "token embedding",
        "article, random init",
        f"this run, step {a['snapshots'][0]['step']}",
        "article, trained",
        f"this run, step {a['snapshots'][-1]['step']}",
    ]
    return "## Token embedding, random init vs trained\n\n" + table(header, rows)


def _cosine_section(a: dict[str, Any]) -> str | None:
    if not a["claims"]:
        return None
    first, final = a["snapshots"][0], a["snapshots"][-1]
    article = a["reference"].get("cosine", {})
    rows = []
    for name, tests in _claims_by_pair(a["claims"]).items():
        c = tests[0]  # the level test, or a cross pair's "no association" (same cosine, zf and p)
        ref = article.get(name, {})
        verdicts = "; ".join(f"{t['test']}: {t['verdict']}" if len(tests) > 1 else t["verdict"] for t in tests)
        rows.append(
            [
                _pair_label(c),
                c["kind"],
                c["expect"],
                num(ref.get("init")),
                num(first["scalars"][keys.GROUP_STAT if c["kind"] == "groups" else keys.pair("cos", name)]),
                num(ref.get("trained")),
                num(c["value"]),
                num(c["z"], "+.2f"),
                num(c["zf"], "+.2f"),
                p_text(c["p"], c.get("p_floor")),
                verdicts,
            ]
        )
    header = [
        "pair",
        "kind",
        "expected",
        "article, init",
        f"step {first['step']}",
        "article, trained",
        f"step {final['step']}",
        "z (global)",
        "zf (matched)",
        "p",
        "verdict",
    ]
    return (
        "## Cosine similarity of probe pairs, random init vs trained\n\n"
        + table(header, rows)
        + "\n\nz is against random pairs of frequent characters, zf against random pairs from the pair's own "
        "frequency bands; only zf and p decide the verdict. A cross pair has two verdicts (see the claims)."
    )


def _claims_by_pair(claims: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The claims grouped by pair (or group statistic), in order: a cross pair has two."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for c in claims:
        grouped.setdefault(c["claim"], []).append(c)
    return grouped


def _emergence_section(a: dict[str, Any]) -> str | None:
    if not a["claims"]:
        return None
    t_at = {"z_min": a["thresholds"]["z_min"], "p_max": a["thresholds"]["p_max"]}
    losses = {r["step"]: r.get(keys.LOSS_VAL) for r in a["losses"]}
    pairs = a["probes"]["pairs"]
    ticked: dict[str, Claim] = {}  # per pair its first test: its level, or a cross pair's "no association"
    for claim in claim_list(pairs, a["probes"]["groups"], a["snapshots"][-1]["scalars"]):
        ticked.setdefault(claim.name, claim)
    rows = []
    for s in a["snapshots"]:
        cells = []
        for p in pairs:
            claim, scalars = ticked.get(p["name"]), s["scalars"]
            held = claim is not None and claim.measured_in(scalars) and claim.at(scalars, **t_at) == HELD
            cos, zf = scalars[keys.pair("cos", p["name"])], scalars[keys.pair("zf", p["name"])]
            cells.append(f"{num(cos, '+.2f')} ({num(zf, '+.1f')}){' ✓' if held else ''}")
        rows.append([s["step"], num(losses.get(s["step"]), ".3f"), *cells])
    header = ["step", "val loss", *(_pair_label(p) for p in pairs)]
    return (
        "## Emergence over training\n\nCells: cosine (zf); ✓ where the claim held at that step (for a cross "
        "pair: no association, within chance and below its groups' within pairs).\n\n" + table(header, rows)
    )


def _mechanisms_section(a: dict[str, Any]) -> str | None:
    verdicts = a.get("mechanisms", {}).get("verdicts")
    if not verdicts:
        return None
    held = a["mechanisms"]["held"]
    steps = [p["step"] for p in verdicts[0]["points"]]
    shown = sorted({steps[0], steps[len(steps) // 2], steps[-1]})

    def cell(point: dict[str, Any]) -> str:
        where = f" ({point['head']})" if "head" in point else ""
        return f"{point['value']:+.3f}{where}{' ✓' if point['held'] else ''}"

    rows = []
    for result in verdicts:
        by_step = {p["step"]: p for p in result["points"]}
        chance = result["points"][-1].get("chance")
        rows.append(
            [
                MECHANISM_LABELS[result["mechanism"]],
                num(chance, ".3f") if chance is not None else "0",
                *(cell(by_step[step]) if step in by_step else "—" for step in shown),
                mechanism_verdict(result),
            ]
        )
    by_rule: dict[str, list[str]] = {}  # the head roles share one rule: say it once
    for result in verdicts:
        by_rule.setdefault(mechanism_rule(result["mechanism"], held), []).append(MECHANISM_LABELS[result["mechanism"]])
    rules = "; ".join(f"{', '.join(labels)}: {rule}" for rule, labels in by_rule.items())
    return (
        "## Mechanisms over training\n\nHead scores: the attention the best head (layer, head) puts on the role's "
        "target, on random characters repeated twice (the sink: on position 0 of the validation windows); chance is "
        "what a head attending evenly to every position it may see would score. ICL scores in nats, negative = the "
        "context helped. ✓ where it held at that step; held from step N: it held at every snapshot from N on.\n\n"
        + table(["mechanism", "chance", *(f"step {step}" for step in shown), "verdict"], rows)
        + f"\n\nHeld means: {rules}."
    )


def _offsets_section(a: dict[str, Any]) -> str | None:
    """Embedding arithmetic (probes/arithmetic.py): each offset set's claims in words, its scores over training."""
    claims_of = _claims_by_pair(a.get("offset_claims", []))
    if not claims_of:
        return None
    t, floor = a["thresholds"], 1 / (a["arithmetic"]["n_sets"] + 1)
    lines = [
        "## Embedding arithmetic: parallel offsets and analogies",
        "",
        "Offsets b − a between unit rows. Parallel offsets: the mean cosine between the offsets of every two pairs. "
        "Analogy: the rank of d among all characters by cosine to b − a + c (a, b, c left out) for every ordered "
        "couple of pairs, as a mean reciprocal rank (MRR); by c alone: the same without b − a, as antonyms are "
        "often each other's neighbours; the gain claim asks whether b − a beats c alone by more than it does for "
        f"random pairs. Chance: {a['arithmetic']['n_sets']} random sets of pairs from the same frequency bands.",
    ]
    for name, pairs in a["probes"]["offsets"].items():
        if name not in claims_of:
            continue
        lines += ["", f"### {name}: " + ", ".join(f"{visible_char(x)} → {visible_char(y)}" for x, y in pairs), ""]
        lines += [f"- {c['test']}: {claim_sentence(c, t['z_min'], t['p_max'])}." for c in claims_of[name]]
        rows = [_offset_row(s["step"], s["scalars"], name, floor) for s in a["snapshots"]]
        rows = [row for row in rows if row]
        header = ["step", "offset cos", "chance", "zf", "p", "analogy MRR", "chance", "zf", "p"]
        header += ["median rank (chance)", "MRR by c alone", "gain zf", "gain p"]
        lines += ["", table(header, rows)]
    return "\n".join(lines)


def _offset_row(step: int, scalars: dict[str, float], name: str, floor: float) -> list[Any] | None:
    """One snapshot's row of an offset set's table; None where it was not measured."""
    if keys.offset(name, "cos") not in scalars:
        return None

    def offset(stat: str) -> float:
        return scalars[keys.offset(name, stat)]

    def analogy(stat: str) -> float:
        return scalars[keys.analogy(name, stat)]

    return [
        step,
        num(offset("cos")),
        f"{num(offset('null_mean'))} ± {num(offset('null_std'), '.3f')}",
        num(offset("zf"), "+.2f"),
        p_text(offset("p"), floor),
        num(analogy("mrr"), ".3f"),
        f"{num(analogy('null_mrr'), '.3f')} ± {num(analogy('null_std'), '.3f')}",
        num(analogy("zf"), "+.2f"),
        p_text(analogy("p"), floor),
        f"{num(analogy('median_rank'), '.0f')} ({num(analogy('null_median_rank'), '.0f')})",
        num(analogy("c_only_mrr"), ".3f"),
        num(analogy("gain_zf"), "+.2f"),
        p_text(analogy("gain_p"), floor),
    ]


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
        rows.append(
            [
                end["layer"],
                str(end["shape"]),
                f"{ref[0]:+.4f} / {ref[1]:.4f} / {ref[2]:.4f}" if ref else "—",
                cell(start),
                cell(end),
            ]
        )
    header = ["layer", "shape", "article, trained", f"step {first['step']}", f"step {final['step']}"]
    return f"## Residual stream per layer, prompt {quoted(prompt)}\n\nCells: mean / std / max |x|.\n\n" + table(
        header, rows
    )


def _entropy_section(a: dict[str, Any]) -> str | None:
    first, final = a["snapshots"][0], a["snapshots"][-1]
    if "activations" not in final:
        return None
    rows = [
        [layer, *(f"{h0:.2f} → {h1:.2f}" for h0, h1 in zip(first["activations"]["entropy"][layer], heads))]
        for layer, heads in final["activations"]["entropy"].items()
    ]
    n_heads = len(rows[0]) - 1
    return (
        f"## Attention entropy per layer and head (nats), step {first['step']} → {final['step']}\n\n"
        "Measured on the fixed validation windows; lower = each query attends to fewer positions.\n\n"
        + table(["layer", *(f"head {h}" for h in range(n_heads))], rows)
    )


def _attention_section(a: dict[str, Any]) -> str | None:
    final = a["snapshots"][-1]
    if "attention" not in final or not final["attention"]["prompts"]:
        return None
    prompt = final["attention"]["prompts"][0]
    tokens = [visible_char(t) for t in prompt["tokens"]]
    pattern = prompt["pattern"][0][0]
    rows = [
        [tokens[q], *(f"{w:.2f}" if k <= q else "·" for k, w in enumerate(weights))]
        for q, weights in enumerate(pattern)
    ]
    return (
        f"## Attention, layer 0 head 0, prompt {quoted(prompt['prompt'])}, step {final['step']}\n\n"
        "Rows: the query position; · = the future, which the causal mask hides.\n\n" + table(["", *tokens], rows)
    )


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
            here = (
                f"{visible_char(reference['char'])} at {ours[1]:.1%} (rank {ours[0]})"
                if ours
                else f"{visible_char(reference['char'])} is not among the top {len(prompt['next'])}"
            )
            parts.append(
                f"Article: {visible_char(reference['char'])} at {reference['prob']:.1%} (temperature "
                f"{reference['temperature']:g}); this run: {here}."
            )
    samples = [[snap["step"], escape(p["sample"])] for snap in a["snapshots"] for p in snap["predictions"]["prompts"]]
    parts.append(
        f"Samples ({s['gen_tokens']} characters, temperature {s['temperature']:g}, top-k {s['top_k']}, "
        f"seed {s['seed']}), one per snapshot:\n\n" + table(["step", "sample"], samples)
    )
    return "\n\n".join(parts)


def _lens_section(a: dict[str, Any]) -> str | None:
    final = a["snapshots"][-1]
    if "logit_lens" not in final:
        return None
    norm = NORM_NAMES[_variant(a["model"], "norm")]
    parts = [
        f"## Logit lens, step {final['step']}\n\nEach layer's residual read out through the final "
        f"{norm} and lm_head (temperature {a['sampling']['temperature']:g}); the last block's row is the "
        "model's own prediction."
    ]
    parts += [lens_table(prompt, "characters") for prompt in final["logit_lens"]["prompts"]]
    return "\n\n".join(parts)


def _context_section(a: dict[str, Any]) -> str | None:
    first, final = a["snapshots"][0], a["snapshots"][-1]
    if "context" not in final:
        return None
    c = final["context"]
    senses = "; ".join(
        f"{escape(sense)}: {', '.join(quoted(t) for t in texts)}" for sense, texts in c["senses"].items()
    )
    rows = [
        [start["layer"], num(end["within"]), num(end["across"]), num(start["gap"]), num(end["gap"])]
        for start, end in zip(first["context"]["layers"], c["layers"])
    ]
    header = [
        "layer",
        f"within, step {final['step']}",
        f"across, step {final['step']}",
        f"gap, step {first['step']}",
        f"gap, step {final['step']}",
    ]
    return (
        f"## The same character in different contexts: {quoted(c['char'])}\n\n"
        f"Senses ({senses}). Cosine of the character's residual vectors within a sense and across senses; "
        "a positive gap means the layer tells the senses apart.\n\n" + table(header, rows)
    )


def _layer_probes_section(a: dict[str, Any]) -> str | None:
    snapshots = a["snapshots"]
    picked = [snapshots[0], snapshots[len(snapshots) // 2], snapshots[-1]]
    final = snapshots[-1]
    parts = ["## Linear probes and layers settling"]
    if "linear_probes" in final:
        probes = final["linear_probes"]
        positions = probes["positions"]
        rows = [
            [
                row["layer"],
                *(
                    "{accuracy:.3f} / {control:.3f} / {selectivity:+.3f}".format(**s["linear_probes"]["layers"][i])
                    for s in picked
                ),
            ]
            for i, row in enumerate(probes["layers"])
        ]
        parts.append(
            f"Can a logistic regression read {quoted(probes['property'])} off each layer's residual stream? Fit on "
            f"{positions['fit']} positions of the fixed validation windows, scored on {positions['scored']} others "
            f"(whole windows apart); {positions['share']:.1%} of all have the property, and always answering the "
            f"commoner class of the scored ones scores {probes['layers'][0]['baseline']:.3f}. The control task gives "
            "each character a random label with the same balance (Hewitt & Liang 2019): a probe that only "
            "recognises characters scores as well on it, so the selectivity "
            "(accuracy − control) is what the layer adds.\n\n"
            "Cells: accuracy / control / selectivity.\n\n"
            + table(["layer", *(f"step {s['step']}" for s in picked)], rows)
        )
    if "layer_settling" in final:
        rows = [
            [row["layer"], *(f"{s['layer_settling']['layers'][i]['cka']:.3f}" for s in picked)]
            for i, row in enumerate(final["layer_settling"]["layers"])
        ]
        parts.append(
            f"Linear CKA (Kornblith et al. 2019) of each layer's residual stream with the same layer's at step "
            f"{final['layer_settling']['final_step']}, on the same windows: 1 = it already represents them as it "
            "will at the end (up to rotation and scale). A layer that reaches 1 early settled early.\n\n"
            + table(["layer", *(f"step {s['step']}" for s in picked)], rows)
        )
    return "\n\n".join(parts) if len(parts) > 1 else None


def _neighbours_section(a: dict[str, Any]) -> str | None:
    final = a["snapshots"][-1]
    if "embeddings" not in final or not final["embeddings"]["neighbours"]:
        return None
    rows = [
        [visible_char(row["char"]), ", ".join(f"{visible_char(char)} {cos:+.2f}" for char, cos in row["neighbours"])]
        for row in final["embeddings"]["neighbours"]
    ]
    return f"## Nearest neighbours by cosine, step {final['step']}\n\n" + table(["char", "neighbours (cosine)"], rows)


def render(analysis: dict[str, Any], figure_names: list[str]) -> str:
    """report.md: the claims in words, the reference article's tables with this run beside them, the plots."""
    sections = [
        section(analysis)
        for section in (
            _header,
            _claims_section,
            _embedding_section,
            _cosine_section,
            _emergence_section,
            _mechanisms_section,
            _offsets_section,
            _residual_section,
            _entropy_section,
            _attention_section,
            _predictions_section,
            _lens_section,
            _context_section,
            _layer_probes_section,
            _neighbours_section,
        )
    ]
    plots = [f"### {FIGURE_CAPTIONS[name]}\n\n![{name}]({name})" for name in FIGURE_CAPTIONS if name in figure_names]
    if plots:
        sections.append("## Plots\n\n" + "\n\n".join(plots))
    return "\n\n".join(s for s in sections if s) + "\n"
