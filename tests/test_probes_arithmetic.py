"""Embedding arithmetic on synthetic embeddings where we planted (or did not plant) a shared offset."""

import math

import pytest
import torch

from glassbox import metric_keys as keys
from glassbox.analysis.measurements import Measurements
from glassbox.config import validate
from glassbox.config.groups import Probes
from glassbox.errors import GlassboxError
from glassbox.probes.arithmetic import (
    QUERY_CHUNK,
    OffsetSet,
    analogy_quadruples,
    analogy_ranks,
    offset_metrics,
    offset_sets,
    parallel_offsets,
)
from glassbox.probes.baselines import frequency_bands
from glassbox.text.tokens import TokenData
from helpers import tiny_cfg

V, D, N_BANDS = 300, 32, 10
PAIRS = [[f"a{i}", f"b{i}"] for i in range(6)]
STOI = {name: i for i, name in enumerate(char for pair in PAIRS for char in pair)} | {str(i): i for i in range(V)}


def bands() -> torch.Tensor:
    """Zipf counts shuffled by a seed, cut into N_BANDS bands: token id says nothing about frequency."""
    counts = (100_000 / torch.arange(1, V + 1)).round().long()
    return frequency_bands(counts[torch.randperm(V, generator=torch.Generator().manual_seed(0))], N_BANDS, 5)


def offset_set(n_sets: int = 300, seed: int = 0) -> OffsetSet:
    return offset_sets({"planted": PAIRS}, STOI, bands(), n_sets, seed)[0]


def random_embedding(seed: int) -> torch.Tensor:
    return torch.randn(V, D, generator=torch.Generator().manual_seed(seed)) * 0.02


def test_parallel_offsets_is_the_mean_cosine_of_every_two_offsets():
    W = random_embedding(1)
    pair_ids = torch.tensor([[0, 1], [2, 3], [4, 5], [6, 7]])
    U = W / W.norm(dim=1, keepdim=True)
    offsets = [U[b] - U[a] for a, b in pair_ids.tolist()]
    cosines = [torch.cosine_similarity(offsets[i], offsets[j], dim=0) for i in range(4) for j in range(i + 1, 4)]
    assert parallel_offsets(W, pair_ids).item() == pytest.approx(torch.stack(cosines).mean().item(), abs=1e-6)


def ranks_by_sorting(W: torch.Tensor, quadruples: torch.Tensor, offset_weight: float) -> list[int]:
    """The analogy ranks as the definition says: sort every row by cosine to the query, drop a, b and c, find d."""
    U = W / W.norm(dim=1, keepdim=True)
    ranks = []
    for a, b, c, d in quadruples.tolist():
        scores = U @ (offset_weight * (U[b] - U[a]) + U[c])
        ranking = [i for i in scores.argsort(descending=True).tolist() if i not in (a, b, c)]
        ranks.append(ranking.index(d) + 1)
    return ranks


def test_analogy_rank_matches_a_ranking_by_sorting():
    W = random_embedding(2)
    pair_ids = torch.tensor([[0, 1], [2, 3], [4, 5]])
    quadruples = analogy_quadruples(pair_ids)
    assert quadruples.tolist() == [[0, 1, 2, 3], [0, 1, 4, 5], [2, 3, 0, 1], [2, 3, 4, 5], [4, 5, 0, 1], [4, 5, 2, 3]]
    assert analogy_ranks(W, quadruples).tolist() == ranks_by_sorting(W, quadruples, 1.0)
    assert analogy_ranks(W, quadruples, offset_weight=0.0).tolist() == ranks_by_sorting(W, quadruples, 0.0)


def test_analogy_ranks_of_many_sets_span_several_chunks_and_still_match_the_sorting():
    """Random sets give over a thousand queries, scored in chunks of QUERY_CHUNK, some sharing characters."""
    W = random_embedding(5)
    sets = offset_set(n_sets=40).random_sets  # [40, 6, 2]: 40 · 30 = 1,200 quadruples
    quadruples = analogy_quadruples(sets)
    assert quadruples.shape == (40, 30, 4) and quadruples.numel() // 4 > 3 * QUERY_CHUNK
    for offset_weight in (1.0, 0.0):
        ranks = analogy_ranks(W, quadruples, offset_weight)
        assert ranks.flatten().tolist() == ranks_by_sorting(W, quadruples.reshape(-1, 4), offset_weight)


def parallelogram(alpha: float, seed: int = 3) -> torch.Tensor:
    """Random rows, but pair i (ids 2i, 2i+1) at cos α p_i ∓ sin α e, unit rows with p_i ⊥ p_j ⊥ e: b_i − a_i
    is the same vector 2 sin α e for every i, and a_i, b_i are cos 2α apart."""
    W = random_embedding(seed) / 0.02 / math.sqrt(D)  # rows of about unit length, like the planted ones
    basis = torch.linalg.qr(torch.randn(D, len(PAIRS) + 1, generator=torch.Generator().manual_seed(4)))[0].T
    e = basis[0]
    for i, p in enumerate(basis[1:]):
        W[2 * i], W[2 * i + 1] = math.cos(alpha) * p - math.sin(alpha) * e, math.cos(alpha) * p + math.sin(alpha) * e
    return W


def test_an_exact_parallelogram_completes_every_analogy():
    pair_ids = torch.arange(2 * len(PAIRS)).reshape(-1, 2)
    W = parallelogram(alpha=0.4)
    assert parallel_offsets(W, pair_ids).item() == pytest.approx(1.0, abs=1e-5)
    assert (analogy_ranks(W, analogy_quadruples(pair_ids)) == 1).all()


def test_the_gain_credits_the_offset_not_the_neighbourhood_of_c():
    """Pairs 83° apart: c is no closer to d than to the rest, and only b − a finds d."""
    metrics = offset_metrics(parallelogram(alpha=0.72), offset_set())
    assert metrics[keys.analogy("planted", "mrr")] == 1
    assert metrics[keys.analogy("planted", "c_only_mrr")] < 0.5
    assert metrics[keys.analogy("planted", "gain_zf")] > 5


def test_a_planted_shared_offset_stands_far_above_chance():
    W = random_embedding(5)
    direction = torch.randn(D, generator=torch.Generator().manual_seed(6)) * 0.02
    W[[STOI[b] for _, b in PAIRS]] += direction  # every b moved the same way from where it was
    metrics = offset_metrics(W, offset_set())
    assert metrics[keys.offset("planted", "zf")] > 5
    assert metrics[keys.offset("planted", "p")] == pytest.approx(1 / 301)
    assert metrics[keys.offset("planted", "cos")] > metrics[keys.offset("planted", "null_mean")] + 0.3


def test_a_planted_pair_offset_completes_analogies_above_chance():
    W, noise = random_embedding(7), torch.Generator().manual_seed(8)
    for a, b in PAIRS:  # b = a + a shared vector: a parallelogram up to noise
        W[STOI[b]] = W[STOI[a]] + torch.full((D,), 0.02) + 0.002 * torch.randn(D, generator=noise)
    metrics = offset_metrics(W, offset_set())
    assert metrics[keys.analogy("planted", "median_rank")] == 1
    assert metrics[keys.analogy("planted", "zf")] > 5
    assert metrics[keys.analogy("planted", "null_median_rank")] > 10
    assert abs(metrics[keys.analogy("planted", "gain_zf")]) < 3  # d is c's neighbour: the offset adds nothing


@pytest.mark.parametrize("seed", range(5))
def test_random_embeddings_stay_at_chance(seed):
    metrics = offset_metrics(random_embedding(100 + seed), offset_set())
    for zf, p in (
        (keys.offset("planted", "zf"), keys.offset("planted", "p")),
        (keys.analogy("planted", "zf"), keys.analogy("planted", "p")),
        (keys.analogy("planted", "gain_zf"), keys.analogy("planted", "gain_p")),
    ):
        assert abs(metrics[zf]) < 3
        assert metrics[p] > 0.01


def test_random_sets_match_bands_and_do_not_touch_the_global_generator():
    state = torch.get_rng_state()
    chosen = offset_set(n_sets=50)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(chosen.random_sets, offset_set(n_sets=50).random_sets)  # drawn once, from the seed
    band = bands()
    assert torch.equal(band[chosen.random_sets], band[chosen.pair_ids].expand_as(chosen.random_sets))
    flat = chosen.random_sets.reshape(50, -1)
    assert all(len(set(row)) == len(row) for row in flat.tolist())  # distinct characters within a set


def test_a_character_missing_from_the_vocabulary_is_refused():
    with pytest.raises(ValueError, match=r"offset set planted: characters not in the vocabulary: 'zz'"):
        offset_sets({"planted": [*PAIRS, ["a0x", "zz"]]}, STOI | {"a0x": 299}, bands(), 10, 0)


@pytest.mark.parametrize(
    ("offsets", "message"),
    [
        ({"2bad": [["a", "b"], ["c", "d"]]}, "its name must be ASCII"),
        ({"one": [["a", "b"]]}, "two or more pairs"),
        ({"twice": [["a", "b"], ["a", "c"]]}, "no character twice"),
        ({"long": [["ab", "c"], ["d", "e"]]}, "single characters"),
    ],
)
def test_the_schema_refuses_unmeasurable_sets(offsets, message):
    with pytest.raises(ValueError, match=message):
        Probes(groups=None, pairs=[], offsets=offsets)


def test_the_config_refuses_a_pair_outside_the_vocabulary_with_a_glassbox_error(root, outputs):
    cfg = tiny_cfg(root, outputs, "corpus.probes.offsets={case:[[a,A],[e,'大']]}")
    settings = validate(cfg, "train")
    with pytest.raises(GlassboxError, match=r"corpus.probes of 'shakespeare': offset set case: .*vocabulary: '大'"):
        Measurements.from_config(settings.corpus, settings.analysis, TokenData(cfg.paths.processed_dir), 16)
