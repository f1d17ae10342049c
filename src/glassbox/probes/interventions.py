"""The numbers of intervention experiments: steering directions, their chance control, and how
much a next-token distribution moved. Tensors in, tensors or numbers out; running the model is
the caller's (glassbox/analysis/steering.py, patching.py, ablation.py).
"""

from __future__ import annotations

import torch
from torch import Tensor


def mean_difference(positive: Tensor, negative: Tensor) -> Tensor:
    """The steering direction [d]: the mean hidden state [n, d] with the property minus the mean without it."""
    return positive.float().mean(0) - negative.float().mean(0)


def random_directions(like: Tensor, n: int, generator: torch.Generator) -> Tensor:
    """n random directions [n, d], each exactly as long as `like` [d]: the chance control of a steering vector.

    Gaussian vectors point uniformly in every direction; scaling them to the steering vector's norm
    asks what adding *any* vector of that size does.
    """
    draws = torch.randn(n, like.numel(), generator=generator).to(like)
    return draws / draws.norm(dim=-1, keepdim=True) * like.norm()


def target_probability(logits: Tensor, target_ids: list[int]) -> Tensor:
    """P(next token is one of target_ids), logits [..., V] -> [...] (softmax at temperature 1)."""
    return logits.float().softmax(-1)[..., target_ids].sum(-1)


def kl_divergence(base: Tensor, changed: Tensor) -> Tensor:
    """KL(P_base || P_changed) in nats of two next-token distributions given as logits [..., V] -> [...].

    How surprised the changed model is by what the unchanged one predicts: 0 when nothing moved.
    """
    log_p, log_q = base.float().log_softmax(-1), changed.float().log_softmax(-1)
    return (log_p.exp() * (log_p - log_q)).sum(-1)


def moved_fraction(before: float, after: float, source: float) -> float | None:
    """How far a patch moved a probability from the target's value toward the source's: 0 = not at all, 1 = all the way.

    None when source and target already agree to within 0.01: the ratio of two nearly equal
    differences would be noise.
    """
    if abs(source - before) < 0.01:
        return None
    return (after - before) / (source - before)
