"""Head roles and in-context learning: pure functions of attention patterns and per-position losses.

A head's score for a role (Olsson et al. 2022; TransformerLens' head detector) is the attention its
queries put on the role's target key, averaged over the batch and the scored query positions:

    previous token   query t -> key t-1                     every query but the first
    first position   query t -> key 0 (an attention sink)   every query but the first
    duplicate token  query t -> key t-L (the same character in the first copy)
    induction        query t -> key t-L+1 (what followed that character in the first copy)

Duplicate-token and induction scores are read on `repeated_random_tokens`: L random characters
repeated twice, so the second copy can only be predicted by looking back at the first. Its chance
level is what a head attending evenly to everything it may see would score: 1/(t+1) at query t,
averaged over the same queries (`uniform_chance`).

In-context learning is read from losses per position: `span_mean` of late minus early positions
(Olsson's ICL score: loss at token 500 minus token 50), and `repeat_losses`, the loss on a
segment's second occurrence against its first. Negative means the context helped.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

HEAD_ROLES = ("prev", "dup", "induction", "sink")  # metric_keys.head_score's names, in logged order


def repeated_random_tokens(
    counts: Tensor, n_sequences: int, length: int, band: Sequence[float], generator: torch.Generator
) -> Tensor:
    """[n_sequences, 2·length + 1]: one fixed first character, then `length` random characters, twice.

    There is no BOS token in a character vocabulary, so every sequence starts with the corpus's most
    frequent character: the same first token everywhere, as a BOS would be, and the first copy starts
    at position 1. The random characters come from the frequency band of ranks [band[0]·V, band[1]·V)
    (most frequent first), so neither the very frequent ones (predictable from bigrams) nor the rare
    ones (barely trained) are used; without replacement where the band holds enough characters.
    """
    ranked = torch.argsort(torch.as_tensor(counts), descending=True, stable=True)
    pool = ranked[round(band[0] * len(ranked)) : round(band[1] * len(ranked))]
    if len(pool) == 0:
        raise ValueError(f"the frequency band {list(band)} holds no character of a vocabulary of {len(ranked)}")
    weights = torch.ones(n_sequences, len(pool))
    draws = pool[torch.multinomial(weights, length, replacement=len(pool) < length, generator=generator)]
    first = ranked[:1].expand(n_sequences, 1)
    return torch.cat([first, draws, draws], dim=1)


def role_positions(role: str, seq_len: int, length: int | None = None) -> tuple[Tensor, Tensor]:
    """(query positions, target key positions) of a head role (HEAD_ROLES) in sequences of seq_len tokens;
    dup and induction need the repeated sequence's `length` L (its second copy: positions L+1 .. 2L)."""
    if role in ("prev", "sink"):
        queries = torch.arange(1, seq_len)
        return queries, queries - 1 if role == "prev" else torch.zeros_like(queries)
    if length is None or seq_len < 2 * length + 1:
        raise ValueError(f"role {role} needs a repeated sequence of 2·L+1 tokens, got {seq_len} for L={length}")
    if role == "dup":
        queries = torch.arange(length + 1, 2 * length + 1)
        return queries, queries - length
    if role == "induction":  # the second copy's last character has no successor in the first copy
        queries = torch.arange(length + 1, 2 * length)
        return queries, queries - length + 1
    raise ValueError(f"unknown head role {role!r}: expected one of {', '.join(HEAD_ROLES)}")


def attention_to(pattern: Tensor, queries: Tensor, targets: Tensor) -> Tensor:
    """Mean attention from each query position to its target key, pattern [B, H, T, T] -> [H]."""
    return pattern[:, :, queries, targets].float().mean(dim=(0, 2))


def uniform_chance(queries: Tensor) -> float:
    """A head attending evenly to every position it may see puts 1/(t+1) on any one key at query t:
    its score on these queries."""
    return (1.0 / (queries.double() + 1)).mean().item()


def head_scores(pattern: Tensor, role: str, length: int | None = None) -> tuple[Tensor, float]:
    """Every head's score for `role` [H], and its chance level, from one layer's pattern [B, H, T, T]."""
    queries, targets = role_positions(role, pattern.size(-1), length)
    queries, targets = queries.to(pattern.device), targets.to(pattern.device)
    return attention_to(pattern, queries, targets), uniform_chance(queries)


def position_losses(logits: Tensor, targets: Tensor) -> Tensor:
    """Cross-entropy of every position, logits [B, T, V] and targets [B, T] -> [B, T] (nats)."""
    return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), reduction="none").view_as(targets)


def span(seq_len: int, fractions: tuple[float, float]) -> slice:
    """The positions [a·T, b·T) of sequences of T tokens (at least one)."""
    start = min(round(fractions[0] * seq_len), seq_len - 1)
    return slice(start, max(round(fractions[1] * seq_len), start + 1))


def span_mean(losses: Tensor, fractions: tuple[float, float]) -> float:
    """Mean loss over the batch at the positions [a·T, b·T) of losses [B, T]."""
    return losses[:, span(losses.size(1), fractions)].float().mean().item()


def repeat_losses(losses: Tensor, length: int) -> tuple[float, float]:
    """Mean loss on a segment's first and second occurrence, losses [B, 2·length - 1] of the inputs
    [segment, segment] (targets: the next character): the same characters predicted, once without and
    once with the segment already in the context. The first copy's last position predicts the second
    copy's first character, so it belongs to neither."""
    if losses.size(1) != 2 * length - 1:
        raise ValueError(f"expected losses of 2·{length} - 1 positions, got {losses.size(1)}")
    return losses[:, : length - 1].float().mean().item(), losses[:, length:].float().mean().item()
