"""The terminal text of a trace (glassbox/analysis/trace.py computes it): one section per stage.

Each `format_*` function turns the trace into the text of one stage; `show` prints them, one at
a time when someone is at the terminal.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path

import torch
from torch import Tensor

from glassbox import hooks
from glassbox.model import GPT, NORM_NAMES, describe_heads
from glassbox.run.snapshots import Snapshot
from glassbox.text.vocab import Vocab

SHOW_DIMS = 3  # embedding dimensions printed per vector
SHOW_POSITIONS = 16  # a longer prompt shows only its last positions in the per-position tables
SHOW_PAIRS = 3  # RoPE: the first dimension pairs shown, then the last one
BAR_WIDTH = 30


def display_width(text: str) -> int:
    """Terminal columns: CJK characters take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def visible(ch: str) -> str:
    """A character as a table cell: escapes for newlines and tabs, ␣ for a space."""
    if ch == " ":
        return "␣"
    return ch if ch.isprintable() else repr(ch)[1:-1]


def table(header: list[str], rows: list[list[str]], align: str) -> str:
    """Columns padded to their widest cell; align has one letter per column, l or r."""
    widths = [max(display_width(cell) for cell in column) for column in zip(header, *rows)]

    def line(cells: list[str]) -> str:
        padded = (
            f"{' ' * (w - display_width(c))}{c}" if a == "r" else f"{c}{' ' * (w - display_width(c))}"
            for c, w, a in zip(cells, widths, align)
        )
        return "  " + "  ".join(padded).rstrip()

    return "\n".join(line(cells) for cells in [header, *rows])


def bar(fraction: float) -> str:
    eighths = round(fraction * BAR_WIDTH * 8)
    return "█" * (eighths // 8) + " ▏▎▍▌▋▊▉"[eighths % 8].strip()


def last_positions(count: int) -> tuple[range, str]:
    """Positions the per-position tables show, and a note when early ones are left out."""
    start = max(0, count - SHOW_POSITIONS)
    return range(start, count), (f"  (positions 0 to {start - 1} not shown)\n" if start else "")


def binary(value: int, bits: int) -> str:
    digits = f"{value:0{bits}b}"
    return " ".join(digits[i : i + 4] for i in range(0, bits, 4))


def vector(values: Tensor) -> str:
    return "[" + " ".join(f"{v:+.4f}" for v in values[:SHOW_DIMS].tolist()) + " …]"


def percent(p: float) -> str:
    return f"{100 * p:.2f} %"


def shape(dims: list[int] | torch.Size) -> str:
    return "[" + ", ".join(map(str, dims)) + "]"


def format_bytes(trace: dict) -> str:
    chars = trace["bytes"]
    positions, note = last_positions(len(chars))
    rows = [
        [
            visible(c["char"]),
            f"U+{c['codepoint']:04X}",
            " ".join(f"{b:02X}" for b in c["utf8"]),
            " ".join(f"{b:08b}" for b in c["utf8"]),
        ]
        for c in (chars[i] for i in positions)
    ]
    n_bytes = sum(len(c["utf8"]) for c in chars)
    return f"A computer stores text as bytes: {len(chars)} characters, {n_bytes} bytes of UTF-8.\n{note}" + table(
        ["char", "code point", "UTF-8 (hex)", "UTF-8 (binary)"], rows, "llll"
    )


def format_tokens(trace: dict) -> str:
    tokens = trace["tokens"]
    positions, note = last_positions(len(tokens["ids"]))
    rows = [[visible(tokens["chars"][i]), "→", str(tokens["ids"][i])] for i in positions]
    return (
        f"stoi looks each character up in the vocabulary: the corpus's {tokens['vocab_size']:,} distinct "
        f"characters, sorted.\n{note}" + table(["char", "", "id"], rows, "llr") + f"\ntoken ids: {tokens['ids']}"
    )


def format_input(trace: dict) -> str:
    ids, bits = trace["tokens"]["ids"], trace["input"]["id_bits"]
    positions, note = last_positions(len(ids))
    rows = [[str(ids[i]), "→", binary(ids[i], bits)] for i in positions]
    idx = trace["input"]["idx"]
    return (
        f"Each id is a {bits}-bit integer (as stored in train.bin):\n{note}"
        + table(["id", "", f"{bits}-bit binary"], rows, "rll")
        + f"\ninput tensor: {idx.tolist()}   shape {shape(idx.shape)} = [batch, positions]"
    )


POSITION_VECTORS = {
    "learned": "a row of wpe, a table learned in training",
    "sinusoidal": "a row of wpe, the fixed table PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(…)",
}


def format_embedding(trace: dict) -> str:
    emb, chars, ids = trace["embedding"], trace["tokens"]["chars"], trace["tokens"]["ids"]
    positions, note = last_positions(len(ids))
    d, pos_encoding = emb["sum"].shape[-1], emb["pos_encoding"]
    if pos_encoding in POSITION_VECTORS:
        rows = [
            [
                str(t),
                visible(chars[t]),
                str(ids[t]),
                vector(emb["token"][0, t]),
                vector(emb["position"][0, t]),
                vector(emb["sum"][0, t]),
            ]
            for t in positions
        ]
        return (
            f"Each id picks a row of wte (what the character is); each position adds a vector that says where\n"
            f"it is ({POSITION_VECTORS[pos_encoding]}).\n"
            f"Their sum is the vector block 0 reads. First {SHOW_DIMS} of {d} dimensions:\n{note}"
            + table(["pos", "char", "id", "token (wte)", "+ position (wpe)", "= input"], rows, "rlrlll")
            + f"\nshape {shape(emb['sum'].shape)} = [batch, positions, n_embd]"
        )
    rows = [[str(t), visible(chars[t]), str(ids[t]), vector(emb["token"][0, t])] for t in positions]
    text = (
        f"Each id picks a row of wte (what the character is). First {SHOW_DIMS} of {d} dimensions:\n{note}"
        + table(["pos", "char", "id", "token (wte) = input"], rows, "rlrl")
        + f"\nshape {shape(emb['sum'].shape)} = [batch, positions, n_embd]\n\n"
    )
    if pos_encoding == "none":
        return text + (
            "pos_encoding=none: nothing tells the model where a token is. Only the causal mask does:\n"
            "position t attends to t + 1 tokens, so the model can still infer order from that."
        )
    return text + format_rope(emb["angles"], chars, positions)


def format_rope(angles: Tensor, chars: list[str], positions: range) -> str:
    """RoPE's angles (radians) per position and dimension pair: the first few pairs and the last."""
    n_pairs = angles.shape[-1]
    pairs = sorted({*range(min(SHOW_PAIRS, n_pairs)), n_pairs - 1})
    rows = [[str(t), visible(chars[t])] + [f"{angles[t, i]:.4f}" for i in pairs] for t in positions]
    header = ["pos", "char"] + [f"pair {i} (dims {2 * i},{2 * i + 1})" for i in pairs]
    return (
        f"pos_encoding=rope: nothing is added to the input. Instead, in every layer, each head's query and\n"
        f"key vectors are rotated: pair i of dimensions (2i, 2i+1) turns by pos / 10000^(2i/{2 * n_pairs}) "
        f"radians.\nSo q at position m and k at position n score q·k by the angle between them, which depends "
        f"only on\nm - n: attention sees relative positions. The angles for this prompt "
        f"({n_pairs} pairs per head):\n"
        + table(header, rows, "rl" + "r" * len(pairs))
        + "\n(the rotated q and k are the hook points blocks.{i}.attn.q_rot and blocks.{i}.attn.k_rot)"
    )


MLP_NAMES = {
    "gelu": "an MLP (widen to 4·n_embd, GELU, project back)",
    "swiglu": "a SwiGLU MLP (a SiLU gate times a linear layer, project back)",
}


def format_transformer(trace: dict) -> str:
    stage, chars, model = trace["transformer"], trace["tokens"]["chars"], trace["model"]
    layer_rows = [
        [name, shape(s["shape"]), f"{s['mean']:+.4f}", f"{s['std']:.4f}", f"{s['max']:.4f}"]
        for name, s in stage["layers"].items()
    ]
    attention = stage["attention"]
    positions, note = last_positions(attention.shape[0])
    matrix_rows = [
        [visible(chars[q])] + [f"{attention[q, k]:.2f}" if k <= q else "·" for k in positions] for q in positions
    ]
    rotated = "; q and k rotated by position, stage 4" if model["pos_encoding"] == "rope" else ""
    return (
        f"Each block adds attention (mixing in earlier positions{rotated})\n"
        f"and {MLP_NAMES[model['mlp']]} to the residual stream;\n"
        f"each of the two reads a copy of the stream normalised by {NORM_NAMES[model['norm']]}.\n"
        "The stream after each block (mean, std and largest |x| over all positions and dimensions):\n"
        + table(["layer", "shape", "mean", "std", "max |x|"], layer_rows, "llrrr")
        + f"\n\nAttention of layer {stage['layer']}, head {stage['head']}: how much each position (row) "
        "reads from\n"
        f"each earlier one (column); · = the future, masked out. Each row sums to 1.\n{note}"
        + table([""] + [visible(chars[k]) for k in positions], matrix_rows, "l" + "r" * len(positions))
    )


def format_output(trace: dict) -> str:
    out, d = trace["output"], trace["transformer"]["layers"][hooks.STREAM_FINAL]["shape"]
    rows = [
        [
            str(rank),
            visible(c["char"]),
            str(c["id"]),
            f"{c['logit']:+.3f}",
            f"{c['scaled']:+.3f}",
            percent(c["softmax"]),
            percent(c["prob"]) if c["prob"] else "—",
            bar(c["prob"]),
        ]
        for rank, c in enumerate(out["top"], start=1)
    ]
    keep = "every character" if out["top_k"] is None else f"the {out['top_k']} largest"
    nucleus = "" if out["top_p"] is None else f",\ntop_p keeps the fewest whose probability reaches {out['top_p']}"
    return (
        f"lm_head scores every character from the final {NORM_NAMES[trace['model']['norm']]}'s output "
        f"{shape(d)}: logits {shape(out['logits_shape'])}.\nThe last position's logits score the next "
        f"character: ÷ temperature {out['temperature']} → softmax,\nthen top_k keeps {keep}{nucleus}; "
        f"what is left is renormalised\n(the distribution sampling draws from):\n"
        + table(["#", "char", "id", "logit", f"÷ {out['temperature']}", "softmax", "sampled p", ""], rows, "rlrrrrrl")
    )


def format_sample(trace: dict) -> str:
    s, bits = trace["sample"], trace["input"]["id_bits"]
    return (
        f"torch.multinomial draws one id from that distribution (seed {s['seed']}):\n"
        f"  id {s['id']} → {binary(s['id'], bits)} → itos[{s['id']}] = {visible(s['char'])}"
        f"   (p = {percent(s['prob'])})\n"
        f"  {s['before']} → {s['text']}"
    )


def format_generation(trace: dict) -> str:
    gen = trace["generation"]
    if not gen["steps"]:
        return "gen_tokens=0: nothing to generate."

    def tail(text: str) -> str:
        shown = "".join(map(visible, text[-11:]))
        return shown if len(text) <= 11 else "…" + shown

    rows = [
        [
            str(n),
            s["phase"],
            str(s["n_in"]),
            str(s["n_keys"]),
            milliseconds(s["seconds"]),
            tail(s["context"]),
            "→",
            visible(s["char"]),
            percent(s["prob"]),
            visible(s["best_char"]),
            percent(s["best_prob"]),
        ]
        for n, s in enumerate(gen["steps"], start=1)
    ]
    kv_rows = [[str(i), shape(k), shape(v)] for i, (k, v) in enumerate(gen["prefill_kv"])]
    first = gen["steps"][0]
    scores, positions, seconds = gen["scores"], gen["positions"], gen["seconds"]
    re_encoded = any(s["phase"] == "re-encode" for s in gen["steps"])
    return (
        f"Generation runs in two phases, as LLM servers run it. Prefill: the prompt's {first['n_in']} tokens\n"
        f"go through the model at once, and every layer keeps their keys and values, the KV cache\n"
        f"([batch, key/value heads, tokens, head size]):\n"
        + table(["layer", "K", "V"], kv_rows, "rll")
        + f"\n{format_kv_sharing(gen['kv_groups'])}\n"
        + f"The cache holds {gen['kv_bytes']['prefill']:,} bytes after the prefill and "
        f"{gen['kv_bytes']['largest']:,} at its largest\n(float32: 2 × layers × key/value heads × head size × "
        f"tokens × 4 bytes).\n"
        + "\nDecode: each later step runs only the newest token. Its query reads every cached key, and its "
        "own key\nand value join the cache, which grows by one (keys = the cache's length after the step).\n"
        + (
            "Once the cache holds block_size tokens it cannot grow: each step re-encodes the last block_size\n"
            "tokens (a new prefill), because every position has moved by one.\n"
            if re_encoded
            else ""
        )
        + "Step 1 is stage 7's draw.\n"
        + table(
            ["step", "phase", "in", "keys", "time", "context", "", "drawn", "p", "most likely", "p"],
            rows,
            "rlrrrlllrlr",
        )
        + f"\n\nWhat the cache saved, per layer and head: {scores['cached']:,} attention scores (query × key) "
        f"computed with it,\n{scores['uncached']:,} without it, where every step scores its whole context "
        f"against itself (T·T): {scores['uncached'] / scores['cached']:.1f}x as many.\n"
        f"Token positions run through the model: {positions['cached']:,} with the cache, "
        f"{positions['uncached']:,} without.\n"
        f"Timed here: {milliseconds(seconds['cached'])} for the {len(rows)} steps with the cache, "
        f"{milliseconds(seconds['uncached'])} without"
        + ("" if gen["uncached_same_text"] else " (float rounding changed a draw: the texts differ)")
        + (
            ".\n"
            if seconds["cached"] < seconds["uncached"]
            else ";\nat this size each step's fixed overhead outweighs the saving "
            "(make benchmark times long generations).\n"
        )
        + f"\ntext: {gen['text']}"
    )


def format_kv_sharing(groups: list[list[int]]) -> str:
    """Which query heads read which key/value head (model.n_kv_head), and what that saves."""
    if all(len(group) == 1 for group in groups):
        return "Every query head has its own key/value head (model.n_kv_head = n_head)."
    n_head = sum(len(group) for group in groups)
    kind = "multi-query" if len(groups) == 1 else "grouped-query"
    shared = "; ".join(
        f"query heads {', '.join(map(str, group))} read key/value head {kv}" for kv, group in enumerate(groups)
    )
    return (
        f"{kind.capitalize()} attention: {shared}.\nThe cache stores {len(groups)} key/value head"
        f"{'s' if len(groups) > 1 else ''} instead of {n_head}: {n_head // len(groups)}x smaller;\n"
        "the attention patterns stay one per query head."
    )


def milliseconds(seconds: float) -> str:
    return f"{1000 * seconds:.2f} ms"


STAGES = [
    ("1. Raw text → UTF-8 bytes", format_bytes),
    ("2. Tokenization: characters → token ids", format_tokens),
    ("3. Token ids → the input tensor", format_input),
    ("4. Embedding: token and position", format_embedding),
    ("5. Transformer blocks", format_transformer),
    ("6. Output layer: logits → probabilities", format_output),
    ("7. Sampling: probabilities → the next character", format_sample),
    ("8. The autoregressive loop", format_generation),
]


def format_snapshot(
    path: Path, snapshot: Snapshot, model: GPT, vocab: Vocab, steps: list[int], crop_notice: str | None
) -> str:
    cfg = model.config
    step = snapshot.step
    lines = [
        f"snapshot {path}",
        f"  step {step}" + (f" (the run has snapshots at steps {', '.join(map(str, steps))})" if steps else ""),
        f"  model: {cfg.n_layer} layers × {describe_heads(cfg.n_head, cfg.n_kv_head)}, n_embd {cfg.n_embd}, "
        f"block_size {cfg.block_size}, "
        f"{model.num_params() / 1e6:.2f}M parameters",
        f"  variant: pos_encoding={cfg.pos_encoding}, norm={cfg.norm}, mlp={cfg.mlp}",
        f"  vocabulary: {vocab.size:,} characters of corpus {snapshot.config['corpus']['name']}",
    ]
    if step == 0:
        lines.append("  step 0 is the untrained model: random weights, so expect an almost flat distribution.")
    if crop_notice:
        lines.append(f"  notice: {crop_notice}")
    return "\n".join(lines)


def show(sections: list[tuple[str, str]], interactive: bool) -> None:
    """Print each section; interactively, wait for Enter between them (q quits)."""
    for number, (title, text) in enumerate(sections):
        print(f"\n── {title} " + "─" * max(3, 72 - display_width(title)))
        print(text, flush=True)
        if interactive and number < len(sections) - 1:
            try:
                answer = input("\n[Enter] next stage, q quit: ")
            except EOFError:
                return
            if answer.strip().lower() == "q":
                return
