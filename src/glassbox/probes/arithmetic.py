"""Embedding arithmetic: do characters that differ the same way (大/小 and 多/少, a/A and e/E) differ by one vector?

A set of offset pairs (a_i, b_i) from the corpus config is scored two ways, both on unit rows (cosine geometry,
as everywhere in the probes: a row's length grows with its character's frequency and would otherwise dominate
b − a):

- parallel offsets: the mean cosine between the offsets u_b − u_a of every two pairs of the set. Offsets of
  unrelated pairs point anywhere (mean near 0); a direction they share ("smaller", "upper case") lifts it.
- analogy rank: for every ordered couple of pairs (a, b), (c, d), the rank of d among all characters by cosine
  to u_b − u_a + u_c, with a, b and c left out (3CosAdd, as in Mikolov et al. 2013); rank 1 = the analogy
  completes. Summed up as the mean reciprocal rank (MRR), which a few hopeless couples cannot swamp. Beside it,
  the MRR by u_c alone: antonyms are often each other's neighbours, so d may rank high without the offset; the
  gain (MRR − MRR by u_c alone) against the same gain of the random sets says whether b − a adds anything.

Each is judged against the same score of random sets: every character of the set replaced by a random character
of its own frequency band (distinct within a set, `relabel_within_bands`), drawn once per run from their own
generator, so, like the ChanceModel's, the random sets are index tensors that every snapshot re-scores and the
draws of the other baselines do not change.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from glassbox import metric_keys as keys
from glassbox.probes.baselines import permutation_p_values, relabel_within_bands, z_score
from glassbox.probes.embeddings import unit_rows

QUERY_CHUNK = 128  # analogy queries scored at once: their [QUERY_CHUNK, V] scores stay in cache


def parallel_offsets(W: Tensor, pair_ids: Tensor) -> Tensor:
    """Mean cosine between the offsets u_b − u_a of every two pairs: pair_ids [..., n, 2] -> [...]."""
    U = unit_rows(W)
    pair_ids = pair_ids.to(U.device)
    offsets = F.normalize(U[pair_ids[..., 1]] - U[pair_ids[..., 0]], dim=-1)
    first, second = torch.triu_indices(pair_ids.shape[-2], pair_ids.shape[-2], offset=1, device=U.device)
    return (offsets[..., first, :] * offsets[..., second, :]).sum(-1).mean(-1)


def analogy_quadruples(pair_ids: Tensor) -> Tensor:
    """[..., n(n-1), 4]: (a, b, c, d) for every ordered couple of different pairs (a, b), (c, d) of [..., n, 2]."""
    n = pair_ids.shape[-2]
    first, second = torch.nonzero(~torch.eye(n, dtype=torch.bool)).unbind(-1)
    return torch.cat([pair_ids[..., first, :], pair_ids[..., second, :]], dim=-1)


def analogy_ranks(W: Tensor, quadruples: Tensor, offset_weight: float = 1.0) -> Tensor:
    """Rank of d among all rows by cosine to offset_weight · (u_b − u_a) + u_c, a, b and c left out (1 = best;
    a tie counts for d): quadruples [..., 4] -> ranks [...]. offset_weight 0 ranks by u_c alone: how much of
    an analogy's success is only d being c's neighbour."""
    U = unit_rows(W)
    flat = quadruples.reshape(-1, 4).to(U.device)
    used, position = torch.unique(flat, return_inverse=True)
    similarity = U[used] @ U.T  # cosine of u_x to every row: the scores are sums of three of these rows
    ranks = []
    for quads, at in zip(flat.split(QUERY_CHUNK), position.split(QUERY_CHUNK)):
        scores = similarity.index_select(0, at[:, 2])
        if offset_weight:  # in place: the [QUERY_CHUNK, V] passes over memory are the whole cost
            offset = similarity.index_select(0, at[:, 1]).sub_(similarity.index_select(0, at[:, 0]))
            scores.add_(offset, alpha=offset_weight)
        target = scores.gather(1, quads[:, 3:])
        scores.scatter_(1, quads[:, :3], float("-inf"))
        ranks.append(1 + (scores > target).sum(1))
    return torch.cat(ranks).reshape(quadruples.shape[:-1])


@dataclass(frozen=True)
class OffsetSet:
    """One named set of offset pairs, its token ids [n, 2], and its random sets [n_sets, n, 2], drawn once."""

    name: str
    pairs: list[tuple[str, str]]
    pair_ids: Tensor
    random_sets: Tensor

    @classmethod
    def build(
        cls,
        name: str,
        pairs: list[list[str]],
        stoi: dict[str, int],
        bands: Tensor,
        n_sets: int,
        generator: torch.Generator,
    ) -> OffsetSet:
        """Resolve `pairs` [[a, b], ...] through stoi and draw `n_sets` random sets from the frequency `bands` [V]."""
        missing = sorted({char for pair in pairs for char in pair if char not in stoi})
        if missing:
            raise ValueError(f"offset set {name}: characters not in the vocabulary: {', '.join(map(repr, missing))}")
        pair_ids = torch.tensor([[stoi[a], stoi[b]] for a, b in pairs], dtype=torch.long)
        ids = pair_ids.flatten()
        rare = [repr(char) for pair in pairs for char in pair if bands[stoi[char]] < 0]
        if rare:
            raise ValueError(
                f"offset set {name}: characters rarer than min_count have no frequency band: {', '.join(rare)}; "
                "drop their pairs or lower analysis.chance.min_count"
            )
        for band, used in zip(*bands[ids].unique(return_counts=True)):
            if int((bands == band).sum()) < used:
                raise ValueError(
                    f"offset set {name}: {int(used)} of its characters fall in one frequency band of "
                    f"{int((bands == band).sum())}, too few to draw random sets from; use fewer pairs or fewer "
                    "bands (analysis.chance.n_bands)"
                )
        random_sets = relabel_within_bands(ids, bands, n_sets, generator).reshape(n_sets, *pair_ids.shape)
        return cls(name, [(a, b) for a, b in pairs], pair_ids, random_sets)


def offset_sets(
    offsets: dict[str, list[list[str]]], stoi: dict[str, int], bands: Tensor, n_sets: int, seed: int
) -> tuple[OffsetSet, ...]:
    """Every offset set of the corpus config, their random sets drawn from one generator of their own."""
    generator = torch.Generator().manual_seed(seed)
    return tuple(OffsetSet.build(name, pairs, stoi, bands, n_sets, generator) for name, pairs in offsets.items())


def offset_metrics(W: Tensor, offset_set: OffsetSet) -> dict[str, float]:
    """The offset/<set>/ and analogy/<set>/ keys of one set on the embedding W [V, d] (see metric_keys): each
    score, the same over the random sets, and its z and p against them."""
    W = W.detach()
    name = offset_set.name
    cosine = parallel_offsets(W, offset_set.pair_ids)
    null_cosine = parallel_offsets(W, offset_set.random_sets)
    quadruples, null_quadruples = analogy_quadruples(offset_set.pair_ids), analogy_quadruples(offset_set.random_sets)
    ranks, null_ranks = analogy_ranks(W, quadruples).float(), analogy_ranks(W, null_quadruples).float()
    mrr, null_mrr = (1 / ranks).mean(-1), (1 / null_ranks).mean(-1)
    c_only_mrr = (1 / analogy_ranks(W, quadruples, offset_weight=0.0).float()).mean(-1)
    null_c_only_mrr = (1 / analogy_ranks(W, null_quadruples, offset_weight=0.0).float()).mean(-1)
    return {
        keys.offset(name, "cos"): cosine.item(),
        keys.offset(name, "null_mean"): null_cosine.mean().item(),
        keys.offset(name, "null_std"): null_cosine.std().item(),
        **_against_chance(keys.offset(name, "zf"), keys.offset(name, "p"), cosine, null_cosine),
        keys.analogy(name, "mrr"): mrr.item(),
        keys.analogy(name, "null_mrr"): null_mrr.mean().item(),
        keys.analogy(name, "null_std"): null_mrr.std().item(),
        **_against_chance(keys.analogy(name, "zf"), keys.analogy(name, "p"), mrr, null_mrr),
        keys.analogy(name, "median_rank"): ranks.median().item(),
        keys.analogy(name, "null_median_rank"): null_ranks.median().item(),
        keys.analogy(name, "c_only_mrr"): c_only_mrr.item(),
        **_against_chance(
            keys.analogy(name, "gain_zf"), keys.analogy(name, "gain_p"), mrr - c_only_mrr, null_mrr - null_c_only_mrr
        ),
    }


def _against_chance(z_key: str, p_key: str, value: Tensor, null: Tensor) -> dict[str, float]:
    """{z_key: z of the value [] against its null [n], p_key: its permutation p, expected up}."""
    return {z_key: z_score(value, null).item(), p_key: permutation_p_values(value[None], null[None], ["up"]).item()}
