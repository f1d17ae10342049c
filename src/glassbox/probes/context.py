"""The same character in different contexts: does the residual stream tell its senses apart?

道 after 悟空 means "said", in 大道 or 道士 it means "the Way". Its token embedding is one
vector either way; if attention mixes in the context, its residual vectors should split by
sense in the later layers. Measured per layer as mean cosine within a sense minus mean cosine
across senses.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from glassbox.hooks import residual_stream
from glassbox.probes.activations import capture_activations
from glassbox.probes.embeddings import unit_rows


def sense_similarity(vectors: dict[str, Tensor], senses: list[str]) -> dict[str, dict[str, float]]:
    """Per layer: mean within-sense cosine, mean across-sense cosine and their gap.

    vectors: layer -> [n, d], one row per context; senses: the n labels of those contexts.
    A positive gap means contexts of the same sense give the character more similar vectors.
    """
    labels = {sense: i for i, sense in enumerate(dict.fromkeys(senses))}
    label = torch.tensor([labels[s] for s in senses])
    first, second = torch.triu_indices(len(senses), len(senses), offset=1)
    same = label[first] == label[second]
    if same.all() or not same.any():
        raise ValueError(f"need two contexts of one sense and contexts of two senses, got {senses}")
    result = {}
    for layer, x in vectors.items():
        U = unit_rows(x)
        cos = (U[first] * U[second]).sum(-1).cpu()
        within, across = cos[same].mean().item(), cos[~same].mean().item()
        result[layer] = {"within": within, "across": across, "gap": within - across}
    return result


def collect_target_residuals(model: nn.Module, prompts: list[list[int]], target_id: int) -> dict[str, Tensor]:
    """Run each prompt and keep the residual vector at the target's last occurrence.

    Returns layer -> [n_prompts, d] for "embed", "L0", ..., "final".
    """
    device = next(model.parameters()).device
    layers = residual_stream(model.config.n_layer)
    rows: dict[str, list[Tensor]] = {name: [] for name in layers}
    for prompt in prompts:
        if target_id not in prompt:
            raise ValueError(f"target id {target_id} does not occur in prompt {prompt}")
        position = len(prompt) - 1 - prompt[::-1].index(target_id)
        _, cache = capture_activations(model, torch.tensor([prompt], device=device))
        for name, hook in layers.items():
            rows[name].append(cache[hook][0, position])
    return {name: torch.stack(vectors) for name, vectors in rows.items()}
