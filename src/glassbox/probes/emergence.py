"""The metrics of one snapshot: the flat dict training logs at every snapshot step and the
analysis replays on every saved snapshot, so both produce the same numbers under the same keys
(named by glassbox.metric_keys, which lists them all).

The embedding analysed is `model.wte.weight`; lm_head is tied to it, so it is the output
matrix too. n_frequent is capped at half the vocabulary, so top and bottom never overlap.
The cos/within_mean, cos/cross_mean, stat/, zf/ and p/within_minus_cross keys appear only when
the groups give both same-group and different-group combinations. The null samples behind
baseline/, z/, zf/ and p/ live in a ChanceModel drawn once per run (see baselines.py).
`embedding_metrics` computes every key but resid/ from an embedding matrix alone.

Given the run's initial embedding (step 0), the dcos/ keys say how far each pair's cosine has
moved since, judged against how far the pair's own frequency-matched null pairs moved over the
same steps: a null for the change, not for the level. Early in training all frequent
characters drift together, so a pair whose cosine falls may only be falling with its bands.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from glassbox import metric_keys as keys
from glassbox.probes.activations import residual_stats
from glassbox.probes.baselines import ChanceModel, group_cosine_means, permutation_p_values, z_score
from glassbox.probes.embeddings import embedding_stats_by_frequency, pair_cosines, unit_rows
from glassbox.probes.probe_set import ProbeSet


def snapshot_metrics(
    model: nn.Module,
    probes: ProbeSet,
    counts: Sequence[int] | Tensor,
    probe_cache: dict[str, Tensor],
    chance: ChanceModel,
    n_frequent: int = 100,
    initial: Tensor | None = None,
) -> dict[str, float]:
    """Every snapshot metric of `model` as {key: float}; probe_cache: its activations on validation text
    (`capture_activations` of the probe batch); initial: the run's step-0 embedding, for the dcos/ keys
    (none without it)."""
    metrics = embedding_metrics(model.wte.weight, probes, counts, chance, n_frequent, initial)
    for layer, values in residual_stats(probe_cache, model.config.n_layer).items():
        metrics |= {keys.residual(layer, stat): value for stat, value in values.items()}
    return metrics


def embedding_metrics(
    W: Tensor,
    probes: ProbeSet,
    counts: Sequence[int] | Tensor,
    chance: ChanceModel,
    n_frequent: int = 100,
    initial: Tensor | None = None,
) -> dict[str, float]:
    """The emb/, cos/, baseline/, z/, zf/, p/ and stat/ keys, from the embedding W [V, d] alone,
    and the dcos/ keys against `initial` [V, d] (the step-0 embedding) once W differs from it."""
    W = W.detach()
    metrics: dict[str, float] = {}
    for group, values in embedding_stats_by_frequency(W, counts, n_frequent).items():
        subset = None if group == "all" else group
        metrics |= {keys.emb(stat, subset): value for stat, value in values.items()}

    global_null = chance.global_null(W)
    metrics[keys.BASELINE_MEAN] = global_null.mean().item()
    metrics[keys.BASELINE_STD] = global_null.std().item()
    if probes.pairs:
        metrics |= _pair_metrics(W, probes, chance, global_null)
        if initial is not None and not torch.equal(initial.to(W.device), W):  # at step 0 nothing has moved
            metrics |= _change_metrics(W, initial.to(W.device), probes, chance)
    if len(probes.within_positions) and len(probes.cross_positions):
        metrics |= _group_metrics(W, probes, chance)
    return metrics


def _pair_metrics(W: Tensor, probes: ProbeSet, chance: ChanceModel, global_null: Tensor) -> dict[str, float]:
    """cos/, z/, zf/ and p/ of every listed probe pair."""
    cosines = pair_cosines(W, probes.pair_ids)
    matched_null = chance.matched_null(W)
    per_pair = {
        "cos": cosines,
        "z": z_score(cosines, global_null),
        "zf": z_score(cosines, matched_null),
        "p": permutation_p_values(cosines, matched_null, [pair.expect for pair in probes.pairs]),
    }
    return {
        keys.pair(kind, pair.name): value
        for kind, values in per_pair.items()
        for pair, value in zip(probes.pairs, values.tolist())
    }


def _change_metrics(W: Tensor, initial: Tensor, probes: ProbeSet, chance: ChanceModel) -> dict[str, float]:
    """dcos/, zf_dcos/ and p_dcos/ of every listed pair: its cosine's change since `initial`, against
    the changes of its frequency-matched null pairs (the very pairs behind zf/) over the same steps."""
    change = pair_cosines(W, probes.pair_ids) - pair_cosines(initial, probes.pair_ids)
    null_change = chance.matched_null(W) - chance.matched_null(initial)
    per_pair = {
        "dcos": change,
        "zf_dcos": z_score(change, null_change),
        "p_dcos": permutation_p_values(change, null_change, [pair.expect for pair in probes.pairs]),
    }
    return {
        keys.pair(kind, pair.name): value
        for kind, values in per_pair.items()
        for pair, value in zip(probes.pairs, values.tolist())
    }


def _group_metrics(W: Tensor, probes: ProbeSet, chance: ChanceModel) -> dict[str, float]:
    """cos/within_mean, cos/cross_mean, stat/within_minus_cross, its z and permutation p-value."""
    within, cross = group_cosine_means(
        unit_rows(W)[probes.group_char_ids.to(W.device)],
        probes.within_positions.to(W.device),
        probes.cross_positions.to(W.device),
    )
    observed = within - cross
    null = chance.group_null(W, probes)
    p = permutation_p_values(observed[None], null[None], ["up"])
    return {
        keys.WITHIN_MEAN: within.item(),
        keys.CROSS_MEAN: cross.item(),
        keys.GROUP_STAT: observed.item(),
        keys.GROUP_ZF: z_score(observed, null).item(),
        keys.GROUP_P: p.item(),
    }
