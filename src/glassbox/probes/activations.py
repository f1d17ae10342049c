"""What flows through the model: the residual stream per layer and how spread out attention is.

Every probe that needs activations gets them from `capture_activations`, i.e. from the model's
own `run_with_cache` hook points; nothing here re-implements the forward pass.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from glassbox.hooks import residual_stream


def capture_activations(model: nn.Module, idx: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    """`model.run_with_cache(idx)` in eval mode without gradients, restoring the model's mode.

    Probes run in the middle of training: they must not switch dropout off for the steps that
    follow, nor build a graph.
    """
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return model.run_with_cache(idx)
    finally:
        model.train(was_training)


def residual_stats(cache: dict[str, Tensor], n_layer: int) -> dict[str, dict[str, float]]:
    """mean, std and max |x| of the residual stream at every layer (labels: glassbox.hooks.residual_stream).

    max is the largest absolute value, the number that shows the stream growing block by block.
    """
    stats = {}
    for name, hook in residual_stream(n_layer).items():
        x = cache[hook].detach().float()
        stats[name] = {"mean": x.mean().item(), "std": x.std().item(), "max": x.abs().max().item()}
    return stats


def residual_table(cache: dict[str, Tensor], n_layer: int) -> dict[str, dict]:
    """The article's per-layer table: {layer: {shape, mean, std, max}}, from "embed" to "final"."""
    stats = residual_stats(cache, n_layer)
    return {name: {"shape": list(cache[hook].shape), **stats[name]} for name, hook in residual_stream(n_layer).items()}


def attention_entropy(pattern: Tensor) -> Tensor:
    """Entropy in nats of each head's attention, pattern [B, H, T, T] -> [H].

    -sum p log p over the keys (0 log 0 = 0, so masked future positions add nothing), averaged
    over batch and query positions. 0 = every query looks at one position; ln(t+1) at query t =
    attention spread evenly over everything it may see.
    """
    per_query = -torch.special.xlogy(pattern, pattern).sum(-1)
    return per_query.mean(dim=(0, 2))
