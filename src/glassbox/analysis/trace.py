"""A trace: one prediction of a model, stage by stage, as data (`make trace` shows it).

Text → UTF-8 bytes → token ids → the input tensor → embeddings and positions → the transformer
blocks → logits → probabilities → a seeded draw → the next character, and then the autoregressive
loop as generation runs it: a prefill over the prompt, then one decode step per character through
the KV cache. Every number comes from the model's own hook points (`run_with_cache`),
`glassbox.generation` and the sampling functions that generation uses, so the walkthrough shows
what the model does, not a re-enactment. What differs between model variants (pos_encoding,
norm, mlp) is recorded as the variant does it.

Each `*_stage` function returns the data of one stage (what the tests check);
glassbox/report/trace_text.py turns them into the text the terminal shows.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import Tensor

from glassbox import hooks
from glassbox.errors import GlassboxError
from glassbox.generation import GenerationStep, Throughput, generation_steps, timed_steps
from glassbox.model import GPT, Cache, GPTConfig, position_angles
from glassbox.probes.activations import capture_activations, residual_table
from glassbox.sampling import next_token_probs, sample_next
from glassbox.text.vocab import Vocab

SHOW_TOP = 10  # candidates in the output table


# ---------------------------------------------------------------- what to trace


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


def check_prompt_given(prompt: Any, corpus: str) -> None:
    """Refuse a missing prompt: none given, and none among the corpus's probe prompts to fall back on."""
    if prompt is None:
        raise GlassboxError(
            f"no prompt to trace: corpus.probes.prompts of '{corpus}' is empty; give one, e.g. prompt=悟空道"
        )


def check_choices(config: GPTConfig, layer: int, head: int) -> None:
    """The attention pattern shown is one this model has (the config cannot know: it needs the snapshot)."""
    check_choice("layer", layer, config.n_layer)
    check_choice("head", head, config.n_head)


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
    """8. `generation_steps` with the KV cache, each step recorded and timed; then the same without it.

    Step 1 is the prefill (the prompt at once, filling the cache: "prefill_kv" holds each layer's
    K and V shapes after it, "kv_bytes" the cache's bytes then and at its largest), each later
    step a decode (the newest token only) or, once the cache holds block_size tokens, a re-encode
    of the last block_size. "kv_groups" lists the query heads that read each key/value head (one
    each unless model.n_kv_head shares them). "scores" counts the attention
    scores computed per layer and head (queries × keys) with and without the cache; "positions"
    the token positions run through the model.

    The generator is seeded like stage 7's, so step 1 repeats stage 7's draw and the final
    text is what `generate` gives with the same seed.
    """

    def run(use_cache: bool) -> tuple[list[tuple[GenerationStep, float]], Throughput, dict[str, Any]]:
        """Each step with its seconds, their sums, and the cache right after the prefill: each layer's
        [K shape, V shape] and its bytes."""
        generator = torch.Generator().manual_seed(seed)
        idx = torch.tensor([ids])
        steps = generation_steps(
            model, idx, gen_tokens, temperature, top_k, generator, top_p=top_p, use_cache=use_cache
        )
        timed, speed, prefill = [], Throughput(), {"shapes": [], "bytes": 0}
        for step, seconds in timed_steps(steps, speed, idx.device):
            if not timed and step.kv_cache is not None:  # now: the same cache grows in later steps
                prefill["shapes"] = [[list(layer.keys.shape), list(layer.values.shape)] for layer in step.kv_cache]
                prefill["bytes"] = sum(layer.nbytes for layer in step.kv_cache)
            timed.append((step, seconds))
        return timed, speed, prefill

    cached, cached_speed, prefill = run(use_cache=True)
    uncached, uncached_speed, _ = run(use_cache=False)
    block_size, rows, text_ids = model.config.block_size, [], list(ids)
    for number, (step, seconds) in enumerate(cached):
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
    uncached_ids = [*ids, *(step.token[0, 0].item() for step, _ in uncached)]
    return {
        "steps": rows,
        "ids": text_ids,
        "text": vocab.decode(text_ids),
        "prefill_kv": prefill["shapes"],
        "kv_groups": model.config.kv_groups(),
        "kv_bytes": {"prefill": prefill["bytes"], "largest": cached_speed.kv_cache_bytes},
        "scores": {
            "cached": sum(s.n_in * s.n_keys for s, _ in cached),
            "uncached": sum(s.n_in * s.n_keys for s, _ in uncached),
        },
        "positions": {"cached": sum(s.n_in for s, _ in cached), "uncached": sum(s.n_in for s, _ in uncached)},
        "seconds": {"cached": cached_speed.seconds, "uncached": uncached_speed.seconds},
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
