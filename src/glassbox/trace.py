"""`make trace`: one prediction of a trained snapshot, walked through stage by stage.

Text → UTF-8 bytes → token ids → the input tensor → embeddings → the transformer blocks →
logits → probabilities → a seeded draw → the next character, and then the autoregressive loop.
Every number comes from the model's own hook points (`run_with_cache`) and from the sampling
functions that generation uses, so the walkthrough shows what the model does, not a re-enactment.

Each `*_stage` function returns the data of one stage (what the tests check); each `format_*`
function turns the trace into the text of one stage (what the terminal shows).

    python -m glassbox.trace experiment=xiyouji prompt=悟空道 step=0    # the untrained model
"""
from __future__ import annotations

import sys
import unicodedata
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig
from torch import Tensor

from glassbox import hooks
from glassbox.cli import quote_prompt_override
from glassbox.errors import GlassboxError, exits_cleanly
from glassbox.model import GPT, Cache
from glassbox.paths import CONF_DIR
from glassbox.probes.activations import capture_activations, residual_table
from glassbox.run.layout import pick_snapshot
from glassbox.run.snapshots import Snapshot, load_snapshot
from glassbox.sampling import next_token_probs, sample_next
from glassbox.text.vocab import Vocab

SHOW_TOP = 10  # candidates in the output table
SHOW_DIMS = 3  # embedding dimensions printed per vector
SHOW_POSITIONS = 16  # a longer prompt shows only its last positions in the per-position tables
BAR_WIDTH = 30


# ---------------------------------------------------------------- which model, which vocabulary

def crop_prompt(prompt: Any, block_size: int) -> tuple[str, str | None]:
    """The prompt as the model will read it, and a notice when it had to be cropped."""
    prompt = "" if prompt is None else str(prompt)
    if not prompt:
        raise GlassboxError("the prompt is empty: give the model some text to continue, e.g. prompt=悟空道")
    if len(prompt) <= block_size:
        return prompt, None
    notice = (f"the prompt has {len(prompt)} characters, but the model reads at most block_size={block_size}: "
              f"using its last {block_size}")
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


def embedding_stage(cache: Cache) -> dict[str, Tensor]:
    """4. Token embedding (a row of wte) + position embedding (a row of wpe) = the input to block 0."""
    return {"token": cache[hooks.EMBED], "position": cache[hooks.POS_EMBED], "sum": cache[hooks.act_name("resid_pre", 0)]}


def transformer_stage(cache: Cache, n_layer: int, layer: int, head: int) -> dict[str, Any]:
    """5. The residual stream's statistics after every block, and one head's attention matrix [T, T]."""
    return {"layers": residual_table(cache, n_layer), "layer": layer, "head": head,
            "attention": cache[hooks.act_name("pattern", layer)][0, head]}


def output_stage(logits: Tensor, temperature: float, top_k: int | None, vocab: Vocab) -> dict[str, Any]:
    """6. The last position's logits → ÷ temperature → softmax, and the top-k distribution drawn from.

    temperature=0 is greedy: the distribution is all on the largest logit (shown unscaled).
    """
    last = logits[0, -1]
    try:
        softmax = next_token_probs(last, temperature)
        probs = next_token_probs(last, temperature, top_k)
    except ValueError as err:  # a bad temperature or top_k from the command line
        raise GlassboxError(str(err)) from None
    top = torch.topk(last, min(SHOW_TOP, vocab.size)).indices.tolist()
    candidates = [{"id": i, "char": vocab.itos[i], "logit": last[i].item(), "scaled": last[i].item() / (temperature or 1.0),
                   "softmax": softmax[i].item(), "prob": probs[i].item()} for i in top]
    return {"logits_shape": list(logits.shape), "temperature": temperature, "top_k": top_k,
            "probs": probs, "top": candidates}


def sample_stage(probs: Tensor, seed: int, text: str, vocab: Vocab) -> dict[str, Any]:
    """7. One seeded multinomial draw from the distribution of stage 6, and the longer text."""
    next_id = sample_next(probs[None], torch.Generator().manual_seed(seed)).item()
    return {"seed": seed, "id": next_id, "char": vocab.itos[next_id], "prob": probs[next_id].item(),
            "before": text, "text": text + vocab.itos[next_id]}


@torch.no_grad()
def generation_stage(model: GPT, ids: list[int], gen_tokens: int, temperature: float, top_k: int | None,
                     seed: int, vocab: Vocab) -> dict[str, Any]:
    """8. `GPT.generate` one step at a time, each step recorded.

    The generator is seeded like stage 7's, so step 1 repeats stage 7's draw and the final
    text is what `model.generate` gives with the same seed.
    """
    generator = torch.Generator().manual_seed(seed)
    steps = []
    for _ in range(gen_tokens):
        context = ids[-model.config.block_size:]
        logits, _ = model(torch.tensor([context]))
        probs = next_token_probs(logits[0, -1], temperature, top_k)
        next_id = sample_next(probs[None], generator).item()
        best = probs.argmax().item()
        steps.append({"context": vocab.decode(context), "id": next_id, "char": vocab.itos[next_id],
                      "prob": probs[next_id].item(), "best_char": vocab.itos[best], "best_prob": probs[best].item()})
        ids = [*ids, next_id]
    return {"steps": steps, "ids": ids, "text": vocab.decode(ids)}


def build_trace(model: GPT, vocab: Vocab, prompt: str, *, temperature: float, top_k: int | None,
                gen_tokens: int, layer: int, head: int, sample_seed: int) -> dict[str, Any]:
    """All eight stages for one (already cropped) prompt, keyed by stage name."""
    tokens = token_stage(prompt, vocab)
    inputs = input_stage(tokens["ids"], vocab)
    logits, cache = capture_activations(model, inputs["idx"])
    output = output_stage(logits, temperature, top_k, vocab)
    return {
        "bytes": bytes_stage(prompt),
        "tokens": tokens,
        "input": inputs,
        "embedding": embedding_stage(cache),
        "transformer": transformer_stage(cache, model.config.n_layer, layer, head),
        "output": output,
        "sample": sample_stage(output["probs"], sample_seed, prompt, vocab),
        "generation": generation_stage(model, tokens["ids"], gen_tokens, temperature, top_k, sample_seed, vocab),
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
        padded = (f"{' ' * (w - display_width(c))}{c}" if a == "r" else f"{c}{' ' * (w - display_width(c))}"
                  for c, w, a in zip(cells, widths, align))
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
    return " ".join(digits[i:i + 4] for i in range(0, bits, 4))


def vector(values: Tensor) -> str:
    return "[" + " ".join(f"{v:+.4f}" for v in values[:SHOW_DIMS].tolist()) + " …]"


def percent(p: float) -> str:
    return f"{100 * p:.2f} %"


def shape(dims: list[int] | torch.Size) -> str:
    return "[" + ", ".join(map(str, dims)) + "]"


def format_bytes(trace: dict) -> str:
    chars = trace["bytes"]
    positions, note = last_positions(len(chars))
    rows = [[visible(c["char"]), f"U+{c['codepoint']:04X}", " ".join(f"{b:02X}" for b in c["utf8"]),
             " ".join(f"{b:08b}" for b in c["utf8"])] for c in (chars[i] for i in positions)]
    n_bytes = sum(len(c["utf8"]) for c in chars)
    return (f"A computer stores text as bytes: {len(chars)} characters, {n_bytes} bytes of UTF-8.\n"
            f"{note}" + table(["char", "code point", "UTF-8 (hex)", "UTF-8 (binary)"], rows, "llll"))


def format_tokens(trace: dict) -> str:
    tokens = trace["tokens"]
    positions, note = last_positions(len(tokens["ids"]))
    rows = [[visible(tokens["chars"][i]), "→", str(tokens["ids"][i])] for i in positions]
    return (f"stoi looks each character up in the vocabulary: the corpus's {tokens['vocab_size']:,} distinct "
            f"characters, sorted.\n{note}"
            + table(["char", "", "id"], rows, "llr") + f"\ntoken ids: {tokens['ids']}")


def format_input(trace: dict) -> str:
    ids, bits = trace["tokens"]["ids"], trace["input"]["id_bits"]
    positions, note = last_positions(len(ids))
    rows = [[str(ids[i]), "→", binary(ids[i], bits)] for i in positions]
    idx = trace["input"]["idx"]
    return (f"Each id is a {bits}-bit integer (as stored in train.bin):\n{note}"
            + table(["id", "", f"{bits}-bit binary"], rows, "rll")
            + f"\ninput tensor: {idx.tolist()}   shape {shape(idx.shape)} = [batch, positions]")


def format_embedding(trace: dict) -> str:
    emb, chars, ids = trace["embedding"], trace["tokens"]["chars"], trace["tokens"]["ids"]
    positions, note = last_positions(len(ids))
    rows = [[str(t), visible(chars[t]), str(ids[t]), vector(emb["token"][0, t]), vector(emb["position"][0, t]),
             vector(emb["sum"][0, t])] for t in positions]
    d = emb["sum"].shape[-1]
    return (f"Each id picks a row of wte (what the character is), each position a row of wpe (where it is);\n"
            f"their sum is the vector block 0 reads. First {SHOW_DIMS} of {d} dimensions:\n{note}"
            + table(["pos", "char", "id", "token (wte)", "+ position (wpe)", "= input"], rows, "rlrlll")
            + f"\nshape {shape(emb['sum'].shape)} = [batch, positions, n_embd]")


def format_transformer(trace: dict) -> str:
    stage, chars = trace["transformer"], trace["tokens"]["chars"]
    layer_rows = [[name, shape(s["shape"]), f"{s['mean']:+.4f}", f"{s['std']:.4f}", f"{s['max']:.4f}"]
                  for name, s in stage["layers"].items()]
    attention = stage["attention"]
    positions, note = last_positions(attention.shape[0])
    matrix_rows = [[visible(chars[q])] + [f"{attention[q, k]:.2f}" if k <= q else "·" for k in positions]
                   for q in positions]
    return ("Each block adds attention (mixing in earlier positions) and an MLP to the residual stream.\n"
            "The stream after each block (mean, std and largest |x| over all positions and dimensions):\n"
            + table(["layer", "shape", "mean", "std", "max |x|"], layer_rows, "llrrr")
            + f"\n\nAttention of layer {stage['layer']}, head {stage['head']}: how much each position (row) reads from\n"
              f"each earlier one (column); · = the future, masked out. Each row sums to 1.\n{note}"
            + table([""] + [visible(chars[k]) for k in positions], matrix_rows, "l" + "r" * len(positions)))


def format_output(trace: dict) -> str:
    out, d = trace["output"], trace["transformer"]["layers"]["ln_final"]["shape"]
    rows = [[str(rank), visible(c["char"]), str(c["id"]), f"{c['logit']:+.3f}", f"{c['scaled']:+.3f}",
             percent(c["softmax"]), percent(c["prob"]) if c["prob"] else "—", bar(c["prob"])]
            for rank, c in enumerate(out["top"], start=1)]
    keep = "every character" if out["top_k"] is None else f"the {out['top_k']} largest"
    return (f"lm_head scores every character from the final LayerNorm's output {shape(d)}: logits "
            f"{shape(out['logits_shape'])}.\nThe last position's logits score the next character: "
            f"÷ temperature {out['temperature']} → softmax,\nthen top_k keeps {keep} and renormalises "
            f"(the distribution sampling draws from):\n"
            + table(["#", "char", "id", "logit", f"÷ {out['temperature']}", "softmax", "top-k p", ""], rows,
                    "rlrrrrrl"))


def format_sample(trace: dict) -> str:
    s, bits = trace["sample"], trace["input"]["id_bits"]
    return (f"torch.multinomial draws one id from the top-k distribution (seed {s['seed']}):\n"
            f"  id {s['id']} → {binary(s['id'], bits)} → itos[{s['id']}] = {visible(s['char'])}"
            f"   (p = {percent(s['prob'])})\n"
            f"  {s['before']} → {s['text']}")


def format_generation(trace: dict) -> str:
    gen = trace["generation"]
    if not gen["steps"]:
        return "gen_tokens=0: nothing to generate."

    def tail(text: str) -> str:
        shown = "".join(map(visible, text[-11:]))
        return shown if len(text) <= 11 else "…" + shown

    rows = [[str(n), tail(s["context"]), "→", visible(s["char"]), percent(s["prob"]), visible(s["best_char"]),
             percent(s["best_prob"])] for n, s in enumerate(gen["steps"], start=1)]
    return ("Append the drawn character, feed the sequence back in (its last block_size characters), repeat.\n"
            "Step 1 is stage 7's draw.\n"
            + table(["step", "context", "", "drawn", "p", "most likely", "p"], rows, "rlllrlr")
            + f"\n\ntext: {gen['text']}")


STAGES = [
    ("1. Raw text → UTF-8 bytes", format_bytes),
    ("2. Tokenization: characters → token ids", format_tokens),
    ("3. Token ids → the input tensor", format_input),
    ("4. Embedding: token + position", format_embedding),
    ("5. Transformer blocks", format_transformer),
    ("6. Output layer: logits → probabilities", format_output),
    ("7. Sampling: probabilities → the next character", format_sample),
    ("8. The autoregressive loop", format_generation),
]


def format_snapshot(path: Path, snapshot: Snapshot, model: GPT, vocab: Vocab, steps: list[int],
                    crop_notice: str | None) -> str:
    cfg = model.config
    step = snapshot.step
    lines = [
        f"snapshot {path}",
        f"  step {step}" + (f" (the run has snapshots at steps {', '.join(map(str, steps))})" if steps else ""),
        f"  model: {cfg.n_layer} layers × {cfg.n_head} heads, n_embd {cfg.n_embd}, block_size {cfg.block_size}, "
        f"{model.num_params() / 1e6:.2f}M parameters",
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
    path, steps = pick_snapshot(cfg.paths.output_dir, cfg.name, cfg.run, cfg.step, cfg.checkpoint)
    snapshot = load_snapshot(path)
    model = snapshot.model()
    vocab = snapshot.vocab()
    prompt, crop_notice = crop_prompt(cfg.prompt, model.config.block_size)
    check_choice("layer", cfg.layer, model.config.n_layer)
    check_choice("head", cfg.head, model.config.n_head)
    if cfg.gen_tokens < 0:
        raise GlassboxError(f"gen_tokens={cfg.gen_tokens}: give how many characters to generate (0 or more)")
    stages = build_trace(model, vocab, prompt, temperature=cfg.temperature, top_k=cfg.top_k,
                         gen_tokens=cfg.gen_tokens, layer=cfg.layer, head=cfg.head, sample_seed=cfg.sample_seed)
    sections = [("Snapshot", format_snapshot(path, snapshot, model, vocab, steps, crop_notice))]
    sections += [(title, fmt(stages)) for title, fmt in STAGES]
    show(sections, interactive=sys.stdin.isatty() and not cfg.auto)
    return stages


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="trace")
@exits_cleanly
def main(cfg: DictConfig) -> None:
    trace(cfg)


if __name__ == "__main__":
    sys.argv = [quote_prompt_override(arg) for arg in sys.argv]
    main()
