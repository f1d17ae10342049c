"""The one place the model's output distribution is computed and drawn from.

`generation.generate`, the trace walkthrough and the analysis all call these functions, so the
probabilities a student sees in the trace are exactly the ones generation samples from. The
steps (scale, keep the top k, keep the nucleus, draw) stay separate because the trace shows each of them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def check_sampling(temperature: float, top_k: int | None = None, top_p: float | None = None) -> None:
    """Raise a ValueError naming the first sampling setting that is out of range.

    `generation.generate` calls this before its first step, so a bad setting fails at once, not after a long prefill.
    """
    if not temperature >= 0:  # also refuses NaN
        raise ValueError(f"temperature must be >= 0, where 0 means greedy (got {temperature})")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1 or None (got {top_k})")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1] or None (got {top_p})")


def top_k_logits(logits: Tensor, top_k: int) -> Tensor:
    """logits [..., V] with everything below the k-th largest set to -inf.

    Ties at the k-th value are all kept (no token is preferred over an equal one), so more than
    k may survive; top_k larger than V keeps everything.
    """
    k = min(top_k, logits.size(-1))
    kth_largest = torch.topk(logits, k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth_largest, float("-inf"))


def top_p_probs(probs: Tensor, top_p: float) -> Tensor:
    """Nucleus sampling: keep the smallest set of tokens whose probabilities [..., V] sum to at least top_p.

    Tokens are taken by descending probability until the running sum reaches top_p; the token that
    reaches it is kept, none after it. Equal probabilities are taken in token-id order (a stable sort),
    so a tie at the boundary keeps the lower ids: the set is always exactly the smallest one and the
    same on every run. The kept probabilities are renormalised to sum to 1. top_p=1 keeps every token
    (the sum is not computed then, so float rounding cannot drop a far-tail token).
    """
    if top_p == 1:
        return probs
    sorted_probs, order = probs.sort(dim=-1, descending=True, stable=True)
    mass_before = sorted_probs.cumsum(dim=-1) - sorted_probs
    keep_sorted = mass_before < top_p  # still short of top_p before this token, so it is needed
    keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)  # back from sorted order to token ids
    kept = probs.masked_fill(~keep, 0.0)
    return kept / kept.sum(dim=-1, keepdim=True)


def next_token_probs(
    logits: Tensor, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None
) -> Tensor:
    """Turn logits [..., V] into next-token probabilities [..., V].

    The order practitioners use: temperature divides the logits (below 1 sharpens, above 1
    flattens); top-k keeps the k largest logits; softmax renormalises what is left; top-p then
    keeps the nucleus of that renormalised distribution (so top_p is a share of the top-k mass,
    not of the full distribution) and renormalises again. Filtered-out tokens get probability 0
    and can never be drawn.

    temperature=0 is greedy decoding: all probability on the largest logit (the lowest id among
    equal ones, as `argmax` picks); top-k and top-p always keep that token, so they change nothing.
    """
    check_sampling(temperature, top_k, top_p)
    if temperature == 0:
        return F.one_hot(logits.argmax(dim=-1), logits.size(-1)).to(logits.dtype)
    scaled = logits / temperature
    if top_k is not None:
        scaled = top_k_logits(scaled, top_k)
    probs = F.softmax(scaled, dim=-1)
    if top_p is not None:
        probs = top_p_probs(probs, top_p)
    return probs


def sample_next(probs: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Draw one token id per row of probs [B, V] -> [B, 1].

    Pass a seeded `torch.Generator` (on probs' device) to make the draw reproducible without
    touching the global random state that training uses. A greedy (one-hot) row always gives its token.
    """
    return torch.multinomial(probs, num_samples=1, generator=generator)
