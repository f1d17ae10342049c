"""The mechanism metrics of one snapshot: head roles and in-context learning (scores: probes/heads.py).

Their inputs are fixed once per run, like the emergence metrics' baselines, so every snapshot is
scored on the same sequences: the repeated random characters come from their own seeded
torch.Generator (never the global one, which draws the training batches), the validation windows
are evenly spaced through val.bin.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from glassbox import hooks
from glassbox import metric_keys as keys
from glassbox.probes.activations import capture_activations
from glassbox.probes.heads import (
    HEAD_ROLES,
    head_scores,
    position_losses,
    repeat_losses,
    repeated_random_tokens,
    span_mean,
)


@dataclass(frozen=True)
class MechanismProbe:
    repeated: Tensor  # [n, 2·length + 1]: a fixed first character, then random characters twice
    length: int  # L, the length of each copy (also of the natural segments)
    inputs: Tensor  # validation windows [n, block_size] ...
    targets: Tensor  # ... and their next characters
    icl_early: tuple[float, float]  # positions [a·T, b·T) whose mean loss the ICL score starts from
    icl_late: tuple[float, float]

    @classmethod
    def build(
        cls,
        counts: Tensor,
        windows: tuple[Tensor, Tensor],
        seq_len: int,
        n_sequences: int,
        band: Sequence[float],
        seed: int,
        icl_early: Sequence[float],
        icl_late: Sequence[float],
    ) -> MechanismProbe:
        """seq_len is capped so that 2·L+1 tokens fit the windows' block size (as n_frequent is capped)."""
        inputs, targets = windows
        length = min(seq_len, (inputs.size(1) - 1) // 2)
        generator = torch.Generator().manual_seed(seed)
        repeated = repeated_random_tokens(counts, n_sequences, length, band, generator)
        return cls(repeated, length, inputs, targets, tuple(icl_early), tuple(icl_late))

    def metrics(self, model: nn.Module, validation: dict[str, Tensor]) -> dict[str, float]:
        """Every head's score per role with its best and chance (head_*/), and the ICL scores (icl/);
        validation: the model's activations on the probe batch, where the sink score is read."""
        device = next(model.parameters()).device
        _, repeated = capture_activations(model, self.repeated.to(device))
        metrics: dict[str, float] = {}
        for role in HEAD_ROLES:
            cache = validation if role == "sink" else repeated
            best = -1.0
            for layer in range(model.config.n_layer):
                scores, chance = head_scores(cache[hooks.act_name("pattern", layer)], role, self.length)
                label = hooks.layer_label(layer)
                metrics |= {keys.head_score(role, label, head): score for head, score in enumerate(scores.tolist())}
                best = max(best, scores.max().item())
            metrics[keys.head_max(role)] = best
            metrics[keys.head_chance(role)] = chance
        return metrics | self._icl(model, device)

    def _icl(self, model: nn.Module, device: torch.device) -> dict[str, float]:
        """Loss late minus early in the validation windows; loss on the first L characters of as many windows
        as there are random sequences, seen twice (a paired difference: it needs fewer than the ICL score)."""
        logits, _ = capture_activations(model, self.inputs.to(device))
        losses = position_losses(logits, self.targets.to(device))
        early, late = span_mean(losses, self.icl_early), span_mean(losses, self.icl_late)
        segments = self.inputs[: len(self.repeated), : self.length].to(device)
        twice = torch.cat([segments, segments], dim=1)
        logits, _ = capture_activations(model, twice[:, :-1])
        first, second = repeat_losses(position_losses(logits, twice[:, 1:]), self.length)
        return {
            keys.ICL_EARLY: early,
            keys.ICL_LATE: late,
            keys.ICL_SCORE: late - early,
            keys.REPEAT_FIRST: first,
            keys.REPEAT_SECOND: second,
            keys.REPEAT_SCORE: second - first,
        }
