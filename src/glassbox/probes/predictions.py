"""The model's most likely next characters, as the probabilities it actually assigns."""

from __future__ import annotations

import torch
from torch import Tensor

from glassbox.sampling import next_token_probs


def top_k_next(logits: Tensor, temperature: float = 1.0, k: int = 10) -> tuple[Tensor, Tensor]:
    """The k most likely next tokens of logits [..., V] -> (ids [..., k], probs [..., k]).

    The probabilities come from the full distribution at this temperature, then the k largest
    are shown: renormalising over the top k would overstate what the model believes.
    """
    top = torch.topk(next_token_probs(logits, temperature), k, dim=-1)
    return top.indices, top.values
