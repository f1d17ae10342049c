"""The one place the model's output distribution is computed and drawn from.

`GPT.generate`, the trace walkthrough and the analysis all call these two functions, so the
probabilities a student sees in the trace are exactly the ones generation samples from. The
steps (scale, filter, normalise, draw) stay separate because the trace shows each of them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def next_token_probs(logits: Tensor, temperature: float = 1.0, top_k: int | None = None) -> Tensor:
    """Turn logits [..., V] into next-token probabilities [..., V].

    Temperature divides the logits (below 1 sharpens, above 1 flattens); top-k then keeps only
    the k largest logits (ties at the k-th value are all kept) so unlikely characters can never be
    drawn; softmax renormalises what is left. top_k larger than V means "keep everything".
    """
    if not temperature > 0:
        raise ValueError(
            f"temperature must be > 0 (got {temperature}); for greedy decoding use top_k=1"
        )
    scaled = logits / temperature
    if top_k is not None:
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1 or None (got {top_k})")
        k = min(top_k, scaled.size(-1))
        kth_largest = torch.topk(scaled, k, dim=-1).values[..., -1:]
        scaled = scaled.masked_fill(scaled < kth_largest, float("-inf"))
    return F.softmax(scaled, dim=-1)


def sample_next(probs: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Draw one token id per row of probs [B, V] -> [B, 1].

    Pass a seeded `torch.Generator` (on probs' device) to make the draw reproducible without
    touching the global random state that training uses.
    """
    return torch.multinomial(probs, num_samples=1, generator=generator)
