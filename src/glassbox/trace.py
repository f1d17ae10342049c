"""`make trace`: one prediction of a trained snapshot, walked through stage by stage.

Text → UTF-8 bytes → token ids → the input tensor → embeddings and positions → the transformer
blocks → logits → probabilities → a seeded draw → the next character, and then the autoregressive
loop as generation runs it: a prefill over the prompt, then one decode step per character through
the KV cache. Every number comes from the model's own hook points (`run_with_cache`), its
`generation_steps` and the sampling functions that generation uses, so the walkthrough shows what
the model does, not a re-enactment. What differs between model variants (pos_encoding, norm, mlp)
is shown as the variant does it.

Each `*_stage` function returns the data of one stage (what the tests check); each `format_*`
function turns the trace into the text of one stage (what the terminal shows).

    python -m glassbox.trace experiment=xiyouji prompt=悟空道 step=0    # the untrained model
"""

from __future__ import annotations

import dataclasses
import sys
import time
import unicodedata
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig
from torch import Tensor

from glassbox import command_line, hooks
from glassbox.command_line import exits_cleanly
from glassbox.errors import GlassboxError
from glassbox.model import GPT, NORM_NAMES, Cache, GenerationStep, GPTConfig, position_angles
from glassbox.paths import CONF_DIR
from glassbox.probes.activations import capture_activations, residual_table
from glassbox.run.layout import pick_snapshot
from glassbox.run.snapshots import Snapshot, load_snapshot
from glassbox.sampling import next_token_probs, sample_next
from glassbox.text.vocab import Vocab

SHOW_TOP = 10  # candidates in the output table
SHOW_DIMS = 3  # embedding dimensions printed per vector
SHOW_POSITIONS = 16  # a longer prompt shows only its last positions in the per-position tables
SHOW_PAIRS = 3  # RoPE: the first dimension pairs shown, then the last one
BAR_WIDTH = 30


# ---------------------------------------------------------------- which model, which vocabulary


def crop_prompt(prompt: Any, block_size: int) -> tuple[str, str | None]:
    """The prompt as the model will read it, and a notice when it had to be cropped."""
    prompt = "" if prompt is None else str(prompt)
    if not prompt:
        raise GlassboxError("the prompt is empty: give the model some text to continue, e.g. prompt=悟空道")
    if len(prompt) <= block_size:
        return prompt, None
    notice = (
        f"the prompt has {len(prompt)} characters, but the model reads at most block_size={block_size}: "
        f"using its last {block_size}"
    )
    return prompt[-block_size:], notice


def check_choice(name: str, value: int, count: int) -> None:
    if not 0 <= value < count:
        raise GlassboxError(f"{name}={value} does not exist: the model has {count} (0 to {count - 1})")


# ---------------------------------------------------------------- the stages, as data


def bytes_stage(text: str) -> list[dict[str, Any]]:
    """1. What the computer stores: each character's code point and its UTF-8 bytes."""
    return [{"char": ch, "codepoint": ord(ch), "utf8": list(ch.encode("utf-8"))} for ch in text]


def token_stage(text: str, vocab: Vocab) -> dict[str, Any]:
    """2. stoi: each character becomes its row number in the vocabulary."""
    return {"chars": list(text), "ids": vocab.encode(text), "vocab_size": vocab.size}


def input_stage(ids: list[int], vocab: Vocab) -> dict[str, Any]:
    """3. The ids as the tensor the model reads, [batch=1, T]; bits = how train.bin stores an id."""
    return {"idx": torch.tensor([ids]), "id_bits": vocab.dtype.itemsize * 8}


def embedding_stage(cache: Cache, config: GPTConfig) -> dict[str, Any]:
    """4. The token embedding (a row of wte), then how the model is told where each token is.

    learned and sinusoidal add a position vector (a row of wpe) to the token's: "position".
    rope adds nothing; every layer turns each (2i, 2i+1) pair of q and k by an angle that grows
    with the position: "angles" [T, head size / 2], from `position_angles`. none adds nothing
    at all. "sum" is what block 0 reads.
    """
    stage = {
        "pos_encoding": config.pos_encoding,
        "token": cache[hooks.EMBED],
        "sum": cache[hooks.act_name("resid_pre", 0)],
    }
    if config.pos_encoding in ("learned", "sinusoidal"):
        stage["position"] = cache[hooks.POS_EMBED]
    if config.pos_encoding == "rope":
        stage["angles"] = position_angles(torch.arange(stage["token"].size(1)), config.n_embd // config.n_head)
    return stage


def transformer_stage(cache: Cache, n_layer: int, layer: int, head: int) -> dict[str, Any]:
    """5. The residual stream's statistics after every block, and one head's attention matrix [T, T]."""
    return {
        "layers": residual_table(cache, n_layer),
        "layer": layer,
        "head": head,
        "attention": cache[hooks.act_name("pattern", layer)][0, head],
    }


def output_stage(
    logits: Tensor, temperature: float, top_k: int | None, top_p: float | None, vocab: Vocab
) -> dict[str, Any]:
    """6. The last position's logits → ÷ temperature → softmax, and the distribution drawn from
    (after top-k and top-p, renormalised).

    temperature=0 is greedy: the distribution is all on the largest logit (shown unscaled).
    """
    last = logits[0, -1]
    try:
        softmax = next_token_probs(last, temperature)
        probs = next_token_probs(last, temperature, top_k, top_p)
    except ValueError as err:  # a bad temperature, top_k or top_p from the command line
        raise GlassboxError(str(err)) from None
    top = torch.topk(last, min(SHOW_TOP, vocab.size)).indices.tolist()
    candidates = [
        {
            "id": i,
            "char": vocab.itos[i],
            "logit": last[i].item(),
            "scaled": last[i].item() / (temperature or 1.0),
            "softmax": softmax[i].item(),
            "prob": probs[i].item(),
        }
        for i in top
    ]
    return {
        "logits_shape": list(logits.shape),
        "temperature": temperature,
        "top_k": top_k,
        "top_p": top_p,
        "probs": probs,
        "top": candidates,
    }


def sample_stage(probs: Tensor, seed: int, text: str, vocab: Vocab) -> dict[str, Any]:
    """7. One seeded multinomial draw from the distribution of stage 6, and the longer text."""
    next_id = sample_next(probs[None], torch.Generator().manual_seed(seed)).item()
    return {
        "seed": seed,
        "id": next_id,
        "char": vocab.itos[next_id],
        "prob": probs[next_id].item(),
        "before": text,
        "text": text + vocab.itos[next_id],
    }


def generation_stage(
    model: GPT,
    ids: list[int],
    gen_tokens: int,
    temperature: float,
    top_k: int | None,
    top_p: float | None,
    seed: int,
    vocab: Vocab,
) -> dict[str, Any]:
    """8. `GPT.generation_steps` with the KV cache, each step recorded and timed; then the same without it.

    Step 1 is the prefill (the prompt at once, filling the cache: "prefill_kv" holds each layer's
    K and V shapes after it), each later step a decode (the newest token only) or, once the cache
    holds block_size tokens, a re-encode of the last block_size. "scores" counts the attention
    scores computed per layer and head (queries × keys) with and without the cache; "positions"
    the token positions run through the model.

    The generator is seeded like stage 7's, so step 1 repeats stage 7's draw and the final
    text is what `model.generate` gives with the same seed.
    """

    def run(use_cache: bool) -> tuple[list[GenerationStep], list[float], list[list[list[int]]]]:
        """The steps, the seconds each took, and each layer's [K shape, V shape] right after the prefill."""
        generator = torch.Generator().manual_seed(seed)
        steps = model.generation_steps(
            torch.tensor([ids]), gen_tokens, temperature, top_k, generator, top_p=top_p, use_cache=use_cache
        )
        done, seconds, prefill_kv = [], [], []
        for _ in range(gen_tokens):
            start = time.perf_counter()
            step = next(steps)
            seconds.append(time.perf_counter() - start)
            if not done and step.kv_cache is not None:  # shapes now: the same cache grows in later steps
                prefill_kv = [[list(layer.keys.shape), list(layer.values.shape)] for layer in step.kv_cache]
            done.append(step)
        return done, seconds, prefill_kv

    cached, cached_seconds, prefill_kv = run(use_cache=True)
    uncached, uncached_seconds, _ = run(use_cache=False)
    block_size, rows, text_ids = model.config.block_size, [], list(ids)
    for number, (step, seconds) in enumerate(zip(cached, cached_seconds)):
        probs, next_id = step.probs[0], step.token[0, 0].item()
        best = probs.argmax().item()
        phase = "prefill" if number == 0 else "decode" if step.n_in == 1 else "re-encode"
        rows.append(
            {
                "phase": phase,
                "n_in": step.n_in,
                "n_keys": step.n_keys,
                "seconds": seconds,
                "context": vocab.decode(text_ids[-block_size:]),
                "id": next_id,
                "char": vocab.itos[next_id],
                "prob": probs[next_id].item(),
                "best_char": vocab.itos[best],
                "best_prob": probs[best].item(),
            }
        )
        text_ids.append(next_id)
    uncached_ids = [*ids, *(step.token[0, 0].item() for step in uncached)]
    return {
        "steps": rows,
        "ids": text_ids,
        "text": vocab.decode(text_ids),
        "prefill_kv": prefill_kv,
        "scores": {
            "cached": sum(s.n_in * s.n_keys for s in cached),
            "uncached": sum(s.n_in * s.n_keys for s in uncached),
        },
        "positions": {"cached": sum(s.n_in for s in cached), "uncached": sum(s.n_in for s in uncached)},
        "seconds": {"cached": sum(cached_seconds), "uncached": sum(uncached_seconds)},
        "uncached_same_text": uncached_ids == text_ids,
    }


def build_trace(
    model: GPT,
    vocab: Vocab,
    prompt: str,
    *,
    temperature: float,
    top_k: int | None,
    gen_tokens: int,
    layer: int,
    head: int,
    sample_seed: int,
    top_p: float | None = None,
) -> dict[str, Any]:
    """All eight stages for one (already cropped) prompt, keyed by stage name, and the model's config."""
    tokens = token_stage(prompt, vocab)
    inputs = input_stage(tokens["ids"], vocab)
    logits, cache = capture_activations(model, inputs["idx"])
    output = output_stage(logits, temperature, top_k, top_p, vocab)
    return {
        "model": dataclasses.asdict(model.config),
        "bytes": bytes_stage(prompt),
        "tokens": tokens,
        "input": inputs,
        "embedding": embedding_stage(cache, model.config),
        "transformer": transformer_stage(cache, model.config.n_layer, layer, head),
        "output": output,
        "sample": sample_stage(output["probs"], sample_seed, prompt, vocab),
        "generation": generation_stage(model, tokens["ids"], gen_tokens, temperature, top_k, top_p, sample_seed, vocab),
    }


# ---------------------------------------------------------------- the stages, as text


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
        f"([batch, heads, tokens, head size]):\n"
        + table(["layer", "K", "V"], kv_rows, "rll")
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
        f"  model: {cfg.n_layer} layers × {cfg.n_head} heads, n_embd {cfg.n_embd}, block_size {cfg.block_size}, "
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


# ---------------------------------------------------------------- entry point


def trace(cfg: DictConfig) -> dict[str, Any]:
    """Load the snapshot, compute every stage, show them; return the stages' data."""
    if cfg.prompt is None:
        raise GlassboxError(
            f"no prompt to trace: corpus.probes.prompts of '{cfg.corpus.name}' is empty; give one, e.g. prompt=悟空道"
        )
    path, steps = pick_snapshot(cfg.paths.output_dir, cfg.name, cfg.run, cfg.step, cfg.checkpoint)
    snapshot = load_snapshot(path)
    snapshot.check_finite()  # a diverged model's probabilities are nan: nothing to trace
    model = snapshot.model()
    vocab = snapshot.vocab()
    prompt, crop_notice = crop_prompt(cfg.prompt, model.config.block_size)
    check_choice("layer", cfg.layer, model.config.n_layer)
    check_choice("head", cfg.head, model.config.n_head)
    if cfg.gen_tokens < 0:
        raise GlassboxError(f"gen_tokens={cfg.gen_tokens}: give how many characters to generate (0 or more)")
    stages = build_trace(
        model,
        vocab,
        prompt,
        temperature=cfg.temperature,
        top_k=cfg.top_k,
        top_p=cfg.top_p,
        gen_tokens=cfg.gen_tokens,
        layer=cfg.layer,
        head=cfg.head,
        sample_seed=cfg.sample_seed,
    )
    sections = [("Snapshot", format_snapshot(path, snapshot, model, vocab, steps, crop_notice))]
    sections += [(title, fmt(stages)) for title, fmt in STAGES]
    show(sections, interactive=sys.stdin.isatty() and not cfg.auto)
    return stages


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="trace")
@exits_cleanly
def main(cfg: DictConfig) -> None:
    trace(cfg)


def cli() -> None:
    """The `glassbox-trace` command, as `python -m glassbox.trace` runs it: any prompt typed as it is."""
    command_line.run(main)


if __name__ == "__main__":
    cli()
