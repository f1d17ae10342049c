"""report.md of `make inspect-hf`: what the snapshot-free suites found in a Hugging Face model, in words and tables
(interop/hf_suites.py computes it)."""

from __future__ import annotations

from typing import Any

from glassbox import hooks
from glassbox import metric_keys as keys
from glassbox.report import modules
from glassbox.report.markdown import escape, lens_table, num, quoted, table, visible_char


def render(a: dict[str, Any]) -> str:
    sections = [
        _header(a),
        modules.render(a["modules"], "Modules and parameters").rstrip(),
        _tokenization(a),
        _emergence(a),
        _series(a),
        _neighbours(a),
        _lens(a),
        _context(a),
        _attention(a),
    ]
    return "\n\n".join(s for s in sections if s) + "\n"


def _header(a: dict[str, Any]) -> str:
    m = a["model"]
    source = (
        f"checkpoint series `{a['path']}`, steps {', '.join(map(str, a['steps']))}; the suites read the "
        f"last, `{a['checkpoint']}`"
        if a["steps"]
        else f"`{a['path']}`"
    )
    counts = (
        "Token counts from the export's vocab.json."
        if a["counts"] != "uniform"
        else "No token counts: every token counts as equally frequent, so emb/top*, emb/bottom* and the "
        "frequency-matched baselines (zf, p) order tokens by id."
    )
    return (
        f"# Inspection of a Hugging Face model\n\n{source}\n\n"
        f"{m['class']} ({m['model_type']}): {m['n_layer']} layers × {m['n_head']} heads, d_model {m['d_model']}, "
        f"{m['vocab_size']:,} tokens, {m['n_params']:,} parameters; logit lens through `{m['final_norm']}` and "
        f"the output embedding ({'tied to' if m['tied_embeddings'] else 'separate from'} the input embedding). "
        f"{counts}"
    )


def _tokens_cell(tokens: list[str]) -> str:
    return " · ".join(visible_char(t) for t in tokens)


def _tokenization(a: dict[str, Any]) -> str:
    rows = [[quoted(t["text"]), _tokens_cell(t["tokens"]), " ".join(map(str, t["ids"]))] for t in a["tokenization"]]
    return (
        "## How the probes tokenize\n\nTokens as the tokenizer spells them (Ġ or ▁ = a leading space in "
        "BPE / SentencePiece vocabularies).\n\n" + table(["text", "tokens", "ids"], rows)
    )


def _pair_rows(metrics: dict[str, float], pairs: list[dict[str, str]]) -> list[list[str]]:
    return [
        [
            escape(p["label"]),
            p["expect"],
            num(metrics.get(keys.pair("cos", p["name"]))),
            num(metrics.get(keys.pair("z", p["name"])), "+.2f"),
            num(metrics.get(keys.pair("zf", p["name"])), "+.2f"),
            num(metrics.get(keys.pair("p", p["name"])), ".3f"),
        ]
        for p in pairs
    ]


def _emergence(a: dict[str, Any]) -> str | None:
    pairs = a["probes"]["pairs"]
    if not pairs:
        return None
    e = a["emergence"]
    return (
        "## Probe pairs in the input embedding\n\nCosine, z against random frequent pairs, zf and p against "
        f"frequency-matched pairs (baseline mean {num(e[keys.BASELINE_MEAN])} ± "
        f"{num(e[keys.BASELINE_STD], '.3f')}).\n\n"
        + table(["pair", "expect", "cosine", "z", "zf", "p"], _pair_rows(e, pairs))
    )


def _series(a: dict[str, Any]) -> str | None:
    if not a["series"] or not a["probes"]["pairs"]:
        return None
    pairs = a["probes"]["pairs"]
    rows = [[row["step"], *(num(row.get(keys.pair("cos", p["name"]))) for p in pairs)] for row in a["series"]]
    return "## Pair cosines over the checkpoints\n\nEvery metric of every checkpoint is in metrics.jsonl.\n\n" + table(
        ["step", *(escape(p["label"]) for p in pairs)], rows
    )


def _neighbours(a: dict[str, Any]) -> str:
    rows = [
        [visible_char(r["char"]), ", ".join(f"{visible_char(t)} {c:+.2f}" for t, c in r["neighbours"])]
        for r in a["neighbours"]
    ]
    return "## Nearest neighbours in the input embedding (cosine)\n\n" + table(["token", "neighbours"], rows)


def _lens(a: dict[str, Any]) -> str:
    parts = [
        (
            f"## Logit lens\n\nEach layer's residual stream read out through the final norm and the output "
            f"embedding (temperature {a['sampling']['temperature']:g}); the last block's row is the model's own "
            "prediction."
        )
    ]
    parts += [lens_table(prompt, "next tokens") for prompt in a["logit_lens"]]
    return "\n\n".join(parts)


def _context(a: dict[str, Any]) -> str | None:
    c = a.get("context")
    if c is None:
        return None
    senses = "; ".join(
        f"{escape(sense)}: {', '.join(quoted(t) for t in texts)}" for sense, texts in c["senses"].items()
    )
    rows = [[layer["layer"], num(layer["within"]), num(layer["across"]), num(layer["gap"])] for layer in c["layers"]]
    return (
        f"## One token in different contexts: {quoted(c['char'])}\n\nSenses ({senses}). Cosine of the token's "
        "residual vectors within a sense and across senses; a positive gap means the layer tells them apart.\n\n"
        + table(["layer", "within", "across", "gap"], rows)
    )


def _attention(a: dict[str, Any]) -> str:
    parts = [
        (
            "## Attention entropy per layer and head (nats)\n\nLower = each query attends to fewer positions; "
            "every pattern [layer][head][query][key] is in analysis.json."
        )
    ]
    for prompt in a["attention"]:
        n_heads = len(prompt["entropy"][0])
        rows = [[hooks.layer_label(i), *(f"{h:.2f}" for h in heads)] for i, heads in enumerate(prompt["entropy"])]
        header = ["layer", *(f"head {h}" for h in range(n_heads))]
        parts.append(f"{quoted(prompt['prompt'])}:\n\n" + table(header, rows))
    return "\n\n".join(parts)
