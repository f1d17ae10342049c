"""Numbers that describe an embedding matrix W [V, d]: its scale, its geometry, its neighbours.

Cosine similarity is the measure throughout: it ignores row length, which grows with training
and with character frequency, and keeps only the direction a character points in.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def unit_rows(W: Tensor) -> Tensor:
    """W with every row scaled to length 1, so dot products are cosines."""
    return F.normalize(W.detach().float(), dim=-1)


def embedding_stats(W: Tensor) -> dict[str, float]:
    """std / min / max over all entries and the mean L2 norm of a row (one character's vector)."""
    W = W.detach().float()
    return {
        "std": W.std().item(),
        "min": W.min().item(),
        "max": W.max().item(),
        "l2_mean": W.norm(dim=-1).mean().item(),
    }


def row_norms(W: Tensor) -> Tensor:
    """The L2 norm of every row [V]: how far each character's vector has grown."""
    return W.detach().float().norm(dim=-1)


def with_most_frequent(ids: Tensor, counts: Sequence[int] | Tensor, n: int) -> Tensor:
    """`ids`, then the n most frequent other ids (ties by id): probe characters and their company."""
    by_frequency = torch.argsort(torch.as_tensor(counts), descending=True, stable=True)
    ids = torch.as_tensor(ids).cpu()
    return torch.cat([ids, by_frequency[~torch.isin(by_frequency, ids)][:n]])


def embedding_stats_by_frequency(
    W: Tensor, counts: Sequence[int] | Tensor, n: int = 100
) -> dict[str, dict[str, float]]:
    """embedding_stats for all rows, the n most frequent and the n least frequent characters.

    Frequent characters get a gradient at nearly every step and rare ones almost never, so the
    two ends of the vocabulary move at very different speeds. Keys: "all", f"top{n}", f"bottom{n}",
    with n capped at half the vocabulary so the two ends never overlap (65 characters: top32).
    """
    n = min(n, W.shape[0] // 2)
    by_frequency = torch.argsort(torch.as_tensor(counts), descending=True, stable=True).to(W.device)
    return {
        "all": embedding_stats(W),
        f"top{n}": embedding_stats(W[by_frequency[:n]]),
        f"bottom{n}": embedding_stats(W[by_frequency[-n:]]),
    }


def pair_cosines(W: Tensor, pair_ids: Tensor) -> Tensor:
    """Cosine between the rows of each pair: pair_ids [..., 2] -> [...]."""
    U = unit_rows(W)
    pair_ids = pair_ids.to(U.device)
    return (U[pair_ids[..., 0]] * U[pair_ids[..., 1]]).sum(-1)


def cosine_matrix(W: Tensor, ids: Tensor) -> Tensor:
    """[n, n] cosines between the rows `ids`."""
    U = unit_rows(W)[torch.as_tensor(ids, device=W.device)]
    return U @ U.T


def nearest_neighbours(W: Tensor, ids: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """The k rows most cosine-similar to each row in `ids`, never the row itself.

    Returns (neighbour_ids [n, k], cosines [n, k]), most similar first.
    """
    U = unit_rows(W)
    ids = torch.as_tensor(ids, device=U.device)
    sims = U[ids] @ U.T
    sims[torch.arange(len(ids), device=U.device), ids] = float("-inf")
    top = torch.topk(sims, k, dim=-1)
    return top.indices, top.values


def pca_2d(X: Tensor) -> tuple[Tensor, Tensor]:
    """Project the rows of X [n, d] onto their two main directions of variation.

    Returns (coords [n, 2], explained_variance_ratio [2]). Each axis is flipped so that its
    largest-magnitude coordinate is positive: SVD's sign is arbitrary, and without this
    rule the same embedding could be plotted mirrored from one snapshot to the next.
    """
    X = X.detach().float()
    centered = X - X.mean(dim=0)
    U, S, _ = torch.linalg.svd(centered, full_matrices=False)
    coords = U[:, :2] * S[:2]
    largest = coords.abs().argmax(dim=0)
    coords = coords * torch.sign(coords[largest, torch.arange(2)])
    variance = S**2
    return coords, variance[:2] / variance.sum()
