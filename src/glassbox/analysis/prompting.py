"""What the intervention experiments share: their prompts, checked against the model, and running them.

A spec's prompts and layers are checked here against what only the snapshot knows (its vocabulary, its
block_size, its number of blocks); their types and ranges are the stage's config schema's (glassbox.config).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor

from glassbox.analysis.suites import Prompt
from glassbox.errors import GlassboxError
from glassbox.model import GPT, Interventions
from glassbox.text.vocab import Vocab

SHOW_TOP = 5  # next characters listed per prediction


def encode_prompts(texts: list[str], vocab: Vocab, block_size: int, key: str) -> list[Prompt]:
    """The prompts under config `key`, encoded; a GlassboxError for an empty set, an empty or too long
    prompt, or characters the model never saw."""
    prompts = []
    for text in texts:
        if not text:
            raise GlassboxError(f"{key} holds an empty prompt: every prompt needs at least one character")
        if len(text) > block_size:
            raise GlassboxError(
                f"{key}: prompt {text!r} has {len(text)} characters, more than the model's block_size {block_size}"
            )
        try:
            prompts.append(Prompt(text, vocab.encode(text)))
        except GlassboxError as err:
            raise GlassboxError(f"{key}: prompt {text!r}: {err}") from None
    if not prompts:
        raise GlassboxError(
            f"{key} is empty: give at least one prompt, e.g. {key}=[...] or edit the corpus config's steering block"
        )
    return prompts


def pick_layers(layers: Literal["all"] | list[int], n_layer: int) -> list[int]:
    """layer=all or a list of block indices -> the block indices; a GlassboxError for a block the model lacks."""
    if layers == "all":
        return list(range(n_layer))
    for layer in layers:
        if not 0 <= layer < n_layer:
            raise GlassboxError(f"layer={layer} does not exist: the model has {n_layer} blocks (0 to {n_layer - 1})")
    return layers


def _padded(prompts: Sequence[Prompt], device: torch.device) -> tuple[Tensor, Tensor]:
    """The prompts as one batch [B, T_max], padded on the right, and each one's last position [B].

    The model is causal, so what follows a prompt never changes its positions: one forward pass
    serves prompts of every length.
    """
    idx = torch.zeros(len(prompts), max(len(p.ids) for p in prompts), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        idx[row, : len(prompt.ids)] = torch.tensor(prompt.ids)
    last = torch.tensor([len(p.ids) - 1 for p in prompts])
    return idx.to(device), last.to(device)


def next_logits(model: GPT, prompts: Sequence[Prompt], interventions: Interventions | None = None) -> Tensor:
    """The next-character logits [B, V] after each prompt, under the interventions if any."""
    idx, last = _padded(prompts, model.lm_head.weight.device)
    logits, _ = model(idx, interventions=interventions)
    return logits[torch.arange(len(prompts)), last]


def last_states(model: GPT, prompts: Sequence[Prompt], hook: str) -> Tensor:
    """Each prompt's activation at `hook` at its last position, [B, d]."""
    idx, last = _padded(prompts, model.lm_head.weight.device)
    _, cache = model.run_with_cache(idx)
    return cache[hook][torch.arange(len(prompts)), last]


def top_chars(itos: list[str], ids: Tensor, probs: Tensor) -> list[list]:
    return [[itos[i], p] for i, p in zip(ids.tolist(), probs.tolist())]
