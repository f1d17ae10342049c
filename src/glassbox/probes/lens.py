"""Logit lens: what the model would predict if it stopped after each layer.

The residual stream at any layer can be pushed through the model's own final norm (LayerNorm or RMSNorm) and
unembedding; watching the top guesses sharpen layer by layer shows where the prediction forms.
At the last block this is exactly the model's output.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from glassbox.hooks import STREAM_FINAL, residual_stream
from glassbox.probes.predictions import top_k_next


def logit_lens(
    model: nn.Module,
    cache: dict[str, Tensor],
    position: int = -1,
    k: int = 5,
    temperature: float = 1.0,
) -> dict[str, tuple[Tensor, Tensor]]:
    """Top-k (ids [B, k], probs [B, k]) at `position` for "embed", "L0", ... "L{n-1}".

    "final" (after ln_f) is not a layer here: model.unembed applies ln_f itself.
    """
    layers = residual_stream(model.config.n_layer)
    with torch.no_grad():
        return {
            name: top_k_next(model.unembed(cache[hook][:, position]), temperature, k)
            for name, hook in layers.items()
            if name != STREAM_FINAL
        }
