"""Edits: what an intervention does to the activation at one hook point.

`GPT.forward(..., interventions={hook name: edit})` calls each edit on the activation at its hook
point and carries on with what the edit returns (glassbox/model.py). The edits experiments use:

    add(vector)       steering: shift the activation by a vector
    set_to(value)     patching (another prompt's hidden state) and mean ablation (an average)
    zero()            zero ablation

Each can be limited to token `positions` (dim 1 of the [B, T, ...] hook points: all but
attn.pattern, attn.q_rot and attn.k_rot, which are [B, H, T, ...]) and, at `blocks.{i}.attn.head_out`
[B, T, H, hd], to `heads` (dim 2). Positions count within the tokens the model runs in that call:
during cached generation only the new ones, so an edit of every position (the default) is the one
that gives the same text with and without the KV cache.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

Edit = Callable[[Tensor], Tensor]


def _axis_mask(size: int, chosen: Sequence[int] | None, device: torch.device) -> Tensor:
    """[size] bools: True at the chosen indices (negative ones count from the end), everywhere for None."""
    if chosen is None:
        return torch.ones(size, dtype=torch.bool, device=device)
    mask = torch.zeros(size, dtype=torch.bool, device=device)
    mask[list(chosen)] = True
    return mask


def chosen(x: Tensor, positions: Sequence[int] | None = None, heads: Sequence[int] | None = None) -> Tensor:
    """A bool mask that broadcasts against x [B, T, ...]: True at the chosen positions (dim 1) and heads (dim 2)."""
    mask = _axis_mask(x.size(1), positions, x.device).view(1, -1, *[1] * (x.dim() - 2))
    if heads is not None:
        mask = mask & _axis_mask(x.size(2), heads, x.device).view(1, 1, -1, *[1] * (x.dim() - 3))
    return mask


def add(vector: Tensor, positions: Sequence[int] | None = None) -> Edit:
    """x + vector at the chosen positions (vector broadcasts against x, e.g. one [d] direction)."""

    def edit(x: Tensor) -> Tensor:
        return x + chosen(x, positions) * vector.to(x)

    return edit


def set_to(value: Tensor, positions: Sequence[int] | None = None, heads: Sequence[int] | None = None) -> Edit:
    """x with `value` in place of the chosen positions and heads; value broadcasts against x.

    A [d] vector at one position patches in one hidden state; an [H, hd] mean over a batch, with
    `heads`, mean-ablates those heads; a whole activation of x's shape replaces it outright.
    """

    def edit(x: Tensor) -> Tensor:
        return torch.where(chosen(x, positions, heads), value.to(x), x)

    return edit


def zero(positions: Sequence[int] | None = None, heads: Sequence[int] | None = None) -> Edit:
    """x with zeros at the chosen positions and heads: zero ablation."""
    return set_to(torch.zeros(()), positions, heads)
