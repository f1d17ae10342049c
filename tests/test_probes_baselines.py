"""Chance levels on synthetic embeddings where we know what is structure and what is drift."""

import pytest
import torch

from glassbox.probes.baselines import (
    ChanceModel,
    frequency_bands,
    permutation_p_values,
    sample_pairs,
)
from glassbox.probes.emergence import embedding_metrics
from glassbox.probes.probe_set import ProbeSet

V, D, N_BANDS = 300, 32, 10


def zipf_counts(seed: int = 0) -> torch.Tensor:
    """Zipf-law counts, shuffled so that token id says nothing about frequency."""
    counts = (100_000 / torch.arange(1, V + 1)).round().long()
    return counts[torch.randperm(V, generator=torch.Generator().manual_seed(seed))]


def band_members(counts: torch.Tensor, band: int) -> list[int]:
    return torch.nonzero(frequency_bands(counts, N_BANDS, min_count=5) == band).flatten().tolist()


def random_embedding(seed: int = 1) -> torch.Tensor:
    return torch.randn(V, D, generator=torch.Generator().manual_seed(seed)) * 0.02


def common_direction(scale: float = 0.035, seed: int = 2) -> torch.Tensor:
    """A vector shared by some rows; at 0.035 it is about twice a row's length (cosine ~0.75)."""
    return torch.randn(D, generator=torch.Generator().manual_seed(seed)) * scale


def probe_set(groups: dict[str, list[int]], pairs: list[list[int]]) -> ProbeSet:
    """A ProbeSet whose "characters" are the token ids written as strings, pair [a, b] named `t<a>_<b>`."""
    stoi = {str(i): i for i in range(V)}
    return ProbeSet.build(
        {g: [str(i) for i in ids] for g, ids in groups.items()},
        [{"id": pair_id(a, b), "a": str(a), "b": str(b)} for a, b in pairs],
        stoi,
    )


def pair_id(a: int, b: int) -> str:
    return f"t{a}_{b}"


def chance(counts, probes, seed=0):
    return ChanceModel.build(
        counts, probes, n_pairs=4000, top_k_frequent=500, n_bands=N_BANDS, min_count=5, n_permutations=1000, seed=seed
    )


def test_frequency_bands_are_equal_rank_slices():
    counts = zipf_counts()
    counts[:3] = torch.tensor([4, 0, 1])  # below min_count
    bands = frequency_bands(counts, N_BANDS, min_count=5)
    assert bands[:3].tolist() == [-1, -1, -1]
    sizes = torch.bincount(bands[bands >= 0])
    assert len(sizes) == N_BANDS and sizes.max() - sizes.min() <= 1
    # band 0 holds the most frequent characters: every count in it beats every count in band 1
    assert counts[bands == 0].min() > counts[bands == 1].max()


def test_sampled_pairs_are_distinct_and_from_their_pools():
    g = torch.Generator().manual_seed(0)
    pool_x, pool_y = torch.tensor([1, 2]), torch.tensor([2, 3, 4])
    pairs = sample_pairs(pool_x, pool_y, 500, g)
    assert (pairs[:, 0] != pairs[:, 1]).all()
    assert torch.isin(pairs[:, 0], pool_x).all() and torch.isin(pairs[:, 1], pool_y).all()


def test_permutation_p_values_follow_the_expected_direction():
    null = torch.arange(100, dtype=torch.float).repeat(3, 1)  # 0..99, mean 49.5
    observed = torch.tensor([97.0, 2.0, 2.0])
    p = permutation_p_values(observed, null, ["up", "down", "none"])
    # up: 97, 98, 99 >= 97; down: 0, 1, 2 <= 2;
    # two-sided: |x - 49.5| >= 47.5 for 0, 1, 2, 97, 98, 99
    assert torch.allclose(p, torch.tensor([4 / 101, 4 / 101, 7 / 101]))


def test_planted_cluster_is_found_and_its_band_neighbours_are_not():
    counts = zipf_counts()
    band = band_members(counts, 3)
    planted, plain = band[:4], band[4:8]
    W = random_embedding()
    W[planted] += common_direction()
    probes = probe_set(
        {"planted": planted, "plain": plain},
        [planted[:2], planted[2:], plain[:2], plain[2:]],
    )
    metrics = embedding_metrics(W, probes, counts, chance(counts, probes))

    for a, b in (planted[:2], planted[2:]):
        assert metrics[f"zf/{pair_id(a, b)}"] > 3 and metrics[f"p/{pair_id(a, b)}"] < 0.01
    for a, b in (plain[:2], plain[2:]):
        assert abs(metrics[f"zf/{pair_id(a, b)}"]) < 2 and metrics[f"p/{pair_id(a, b)}"] > 0.05
    assert metrics["stat/within_minus_cross"] > 0.2
    assert metrics["p/within_minus_cross"] < 0.01


def test_group_statistic_is_not_significant_without_structure():
    counts = zipf_counts()
    band = band_members(counts, 3)
    probes = probe_set({"one": band[:4], "two": band[4:8]}, [])
    metrics = embedding_metrics(random_embedding(), probes, counts, chance(counts, probes))
    assert metrics["p/within_minus_cross"] > 0.05


def test_matched_baseline_absorbs_drift_that_fools_the_global_one():
    """Drift: every top-band row moves along one common vector, related or not.

    Raw cosines of frequent pairs jump and the global baseline (mostly rarer pairs) calls them
    significant; the frequency-matched baseline sees the same jump in its own pairs and does not.
    zf of a drifted pair is still a draw from its null, so the check is on eight pairs' spread
    (about N(0, 1)), not on one pair's value.
    """
    counts = zipf_counts()
    top = band_members(counts, 0)
    pairs = [top[i : i + 2] for i in range(0, 16, 2)]
    probes = probe_set({"x": top[0:16:2], "y": top[1:16:2]}, pairs)
    stats = chance(counts, probes)
    before = embedding_metrics(random_embedding(), probes, counts, stats)
    W = random_embedding()
    W[top] += common_direction(scale=0.045)
    after = embedding_metrics(W, probes, counts, stats)

    names = [pair_id(a, b) for a, b in pairs]
    assert all(after[f"cos/{n}"] > before[f"cos/{n}"] + 0.3 for n in names)
    assert all(after[f"z/{n}"] > 3 for n in names)  # global baseline: looks like emergence
    zf = torch.tensor([after[f"zf/{n}"] for n in names])  # matched baseline: just drift
    assert zf.abs().mean() < 1.2 and zf.mean().abs() < 0.75 and zf.abs().max() < 3
    assert after["p/within_minus_cross"] > 0.05


def test_same_seed_same_p_values_other_seed_other_p_values():
    counts = zipf_counts()
    band = band_members(counts, 2)
    pairs = [band[:2], [band[0], band[3]], band[6:8]]
    probes = probe_set({"one": band[:3], "two": band[3:6]}, pairs)
    W = random_embedding()

    def p_values(seed):
        metrics = embedding_metrics(W, probes, counts, chance(counts, probes, seed))
        return {k: v for k, v in metrics.items() if k.startswith(("p/", "zf/", "baseline/"))}

    first, again, other = p_values(0), p_values(0), p_values(1)
    assert first == again
    assert any(first[k] != other[k] for k in first if k.startswith("p/"))


def test_relabelings_stay_within_bands_and_never_repeat_a_character():
    counts = zipf_counts()
    bands = frequency_bands(counts, N_BANDS, min_count=5)
    group = band_members(counts, 0)[:3] + band_members(counts, 5)[:2]
    probes = probe_set({"a": group[:3], "b": group[3:]}, [])
    relabelings = chance(counts, probes).relabelings
    assert relabelings.shape == (1000, 5)
    assert (bands[relabelings] == bands[probes.group_char_ids]).all()
    assert all(len(set(row)) == 5 for row in relabelings.tolist())
    assert len({tuple(row) for row in relabelings.tolist()}) > 900


def test_probe_character_without_a_band_is_an_error():
    counts = zipf_counts()
    rare = int(torch.argmin(counts))
    counts[rare] = 2
    probes = probe_set({}, [[rare, int(torch.argmax(counts))]])
    with pytest.raises(ValueError, match="min_count=5") as error:
        chance(counts, probes)
    assert f"'{rare}' (2x)" in str(error.value)


def test_a_pair_that_falls_with_its_bands_is_not_moving_apart_and_a_planted_fall_is():
    """The null for the change: every top-band row loses a shared direction between step 0 and now,
    so every top-band pair's cosine falls by about 0.7, cross pairs and their null pairs alike; only
    the pair pushed apart on top of that falls further than its bands' pairs did."""
    counts = zipf_counts()
    top = band_members(counts, 0)
    pairs = [top[i : i + 2] for i in range(0, 18, 2)]  # cross pairs: x from one group, y from the other
    probes = probe_set({"x": top[0:18:2], "y": top[1:18:2]}, pairs)
    assert {p.kind for p in probes.pairs} == {"cross"} and {p.expect for p in probes.pairs} == {"down"}
    stats = chance(counts, probes)
    initial = random_embedding()
    initial[top] += common_direction()
    W = initial.clone()
    W[top] -= common_direction()
    planted_x, planted_y = pairs[-1]
    W[planted_y] -= 0.8 * W[planted_x]  # pushed apart: its cosine goes well below zero
    metrics = embedding_metrics(W, probes, counts, stats, initial=initial)

    drifted = [pair_id(a, b) for a, b in pairs[:-1]]
    assert all(metrics[f"dcos/{n}"] < -0.4 for n in drifted)  # a large fall: a naive "moved apart"
    zf = torch.tensor([metrics[f"zf_dcos/{n}"] for n in drifted])  # each a draw from its own null
    assert zf.abs().mean() < 1.2 and zf.mean().abs() < 0.75 and zf.abs().max() < 3
    assert min(metrics[f"p_dcos/{n}"] for n in drifted) > 0.01
    planted = pair_id(planted_x, planted_y)
    assert metrics[f"zf_dcos/{planted}"] < -3 and metrics[f"p_dcos/{planted}"] == pytest.approx(1 / 4001)


def test_no_change_is_measured_at_the_step_it_is_measured_from():
    counts = zipf_counts()
    top = band_members(counts, 0)
    probes = probe_set({"x": top[:2], "y": top[2:4]}, [[top[0], top[2]]])
    W = random_embedding()
    metrics = embedding_metrics(W, probes, counts, chance(counts, probes), initial=W.clone())
    assert not any(key.startswith(("dcos/", "zf_dcos/", "p_dcos/")) for key in metrics)
    assert "zf/within_minus_cross" in metrics  # the group statistic's z, as training logs it
