import math

import torch

from glassbox.probes.embeddings import (
    cosine_matrix,
    embedding_stats,
    embedding_stats_by_frequency,
    nearest_neighbours,
    pair_cosines,
    pca_2d,
)


def test_embedding_stats_of_gpt_init():
    W = torch.randn(4490, 256, generator=torch.Generator().manual_seed(0)) * 0.02
    stats = embedding_stats(W)
    assert math.isclose(stats["std"], 0.02, rel_tol=0.01)
    assert math.isclose(stats["l2_mean"], 0.32, rel_tol=0.01)
    assert stats["min"] == W.min().item() and stats["max"] == W.max().item()


def test_stats_by_frequency_pick_the_right_rows():
    counts = [5, 100, 1, 50, 7, 2]
    W = torch.arange(6, dtype=torch.float)[:, None].repeat(1, 4)  # row i is all i
    stats = embedding_stats_by_frequency(W, counts, n=2)
    assert set(stats) == {"all", "top2", "bottom2"}
    assert (stats["top2"]["min"], stats["top2"]["max"]) == (1.0, 3.0)  # ids 1 and 3
    assert (stats["bottom2"]["min"], stats["bottom2"]["max"]) == (2.0, 5.0)  # ids 2 and 5
    assert stats["all"] == embedding_stats(W)


def test_cosines_ignore_length():
    W = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0], [-1.0, 1.0]])
    assert torch.allclose(
        pair_cosines(W, torch.tensor([[0, 1], [0, 2], [0, 3]])), torch.tensor([1.0, 0.0, -1 / math.sqrt(2)])
    )
    matrix = cosine_matrix(W, torch.tensor([0, 2]))
    assert torch.allclose(matrix, torch.eye(2))


def test_nearest_neighbour_is_never_the_row_itself():
    W = torch.randn(50, 8, generator=torch.Generator().manual_seed(0))
    W[7] = W[3] * 2  # an exact direction twin of 3
    ids = torch.arange(50)
    neighbours, sims = nearest_neighbours(W, ids, k=3)
    assert neighbours.shape == sims.shape == (50, 3)
    assert not (neighbours == ids[:, None]).any()
    assert neighbours[3, 0] == 7 and neighbours[7, 0] == 3
    assert torch.isclose(sims[3, 0], torch.tensor(1.0))
    assert (sims[:, :-1] >= sims[:, 1:]).all()


def test_pca_recovers_a_rank_two_point_set():
    g = torch.Generator().manual_seed(0)
    plane = torch.randn(40, 2, generator=g) * torch.tensor([3.0, 1.0])
    X = plane @ torch.randn(2, 16, generator=g) + torch.randn(16, generator=g)
    coords, ratio = pca_2d(X)
    assert coords.shape == (40, 2) and math.isclose(ratio.sum().item(), 1.0, abs_tol=1e-4)
    assert ratio[0] > ratio[1]

    def distances(points):
        return (points[:, None] - points[None]).norm(dim=-1)

    assert torch.allclose(distances(coords), distances(X), atol=1e-3)


def test_pca_sign_is_deterministic():
    X = torch.randn(30, 5, generator=torch.Generator().manual_seed(1))
    coords, _ = pca_2d(X)
    mirrored, _ = pca_2d(-X)  # same cloud, SVD free to return either sign
    assert torch.allclose(coords, mirrored, atol=1e-5)
    largest = coords.abs().argmax(dim=0)
    assert (coords[largest, torch.arange(2)] > 0).all()
