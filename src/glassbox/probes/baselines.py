"""Chance levels for pair cosines: what tells emergence of meaning from mere drift.

Early in training every frequent character moves toward one common direction, so the raw
cosine of ANY two frequent characters rises, related or not. A cosine only means something
against what unrelated characters of the same frequency show at the same step. Three nulls:

- global: random distinct pairs among the `top_k_frequent` most frequent characters;
  z = (cos - mean) / std. Simple, but fooled by drift that hits only the frequent end.
- frequency-matched, per probe pair (a, b): random pairs (x, y), x from a's frequency band and
  y from b's, probe characters left out; zf against it, plus a one-sided permutation p-value
  in the pair's expected direction.
- group statistic: (mean within-group cosine) - (mean cross-group cosine) over all group
  characters, against the same statistic after every group character is replaced by a random
  character of its own band (drawn without replacement, so a relabeling within bands).

The random pairs and relabelings are drawn ONCE per run, from a seed, and kept as index tensors
in a `ChanceModel`; every snapshot step then only recomputes cosines on those same indices.
So the curves are smooth across steps (no resampling noise) and the same seed gives identical
p-values. All p-values use the +1 correction, p = (1 + #null at least as extreme) / (1 + n),
so none is ever 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from glassbox.probes.embeddings import pair_cosines, unit_rows
from glassbox.probes.probe_set import ProbeSet


def frequency_bands(counts: Sequence[int] | Tensor, n_bands: int = 10, min_count: int = 5) -> Tensor:
    """Band of every token id [V]: 0 = most frequent, n_bands-1 = least; -1 if count < min_count.

    Eligible characters are ranked by count (ties by id) and cut into n_bands bands of equal
    size (sizes differ by at most one).
    """
    counts = torch.as_tensor(counts)
    bands = torch.full(counts.shape, -1, dtype=torch.long)
    eligible = torch.nonzero(counts >= min_count).flatten()
    ranked = eligible[torch.argsort(counts[eligible], descending=True, stable=True)]
    bands[ranked] = torch.arange(len(ranked)) * n_bands // max(len(ranked), 1)
    return bands


def sample_pairs(pool_x: Tensor, pool_y: Tensor, n: int, generator: torch.Generator) -> Tensor:
    """n random pairs [n, 2], x from pool_x and y from pool_y, with x != y (redrawn until so)."""
    one_and_the_same = len(pool_x) == len(pool_y) == 1 and pool_x[0] == pool_y[0]
    if len(pool_x) == 0 or len(pool_y) == 0 or one_and_the_same:
        raise ValueError("cannot draw a pair of two different characters from these pools")

    def draw(pool: Tensor, size: int) -> Tensor:
        return pool[torch.randint(len(pool), (size,), generator=generator)]

    x, y = draw(pool_x, n), draw(pool_y, n)
    clash = x == y
    while clash.any():
        size = int(clash.sum())
        x[clash], y[clash] = draw(pool_x, size), draw(pool_y, size)
        clash = x == y
    return torch.stack([x, y], dim=1)


def group_cosine_means(
    unit_vectors: Tensor, within_positions: Tensor, cross_positions: Tensor
) -> tuple[Tensor, Tensor]:
    """Mean within-group and mean cross-group cosine of the group characters.

    unit_vectors [..., m, d] are the group characters' unit rows, in ProbeSet.group_chars order
    (any leading dims, e.g. one per relabeling); the positions [N, 2] index into m. -> two [...].
    """
    cos = unit_vectors @ unit_vectors.transpose(-1, -2)
    within = cos[..., within_positions[:, 0], within_positions[:, 1]].mean(-1)
    cross = cos[..., cross_positions[:, 0], cross_positions[:, 1]].mean(-1)
    return within, cross


def z_score(value: Tensor, null: Tensor) -> Tensor:
    """(value - mean) / std of the null samples along the last dim."""
    return (value - null.mean(-1)) / null.std(-1)


def permutation_p_values(observed: Tensor, null: Tensor, expects: list[str]) -> Tensor:
    """p-value of each observed [P] against its null samples [P, n], in the expected direction.

    "up": share of null >= observed; "down": share <= observed; "none": two-sided, share with
    |null - null mean| >= |observed - null mean|. With the +1 correction.
    """
    observed = observed[:, None]
    center = null.mean(-1, keepdim=True)
    up = torch.tensor([e == "up" for e in expects], device=null.device)[:, None]
    down = torch.tensor([e == "down" for e in expects], device=null.device)[:, None]
    two_sided = (null - center).abs() >= (observed - center).abs()
    extreme = torch.where(up, null >= observed, torch.where(down, null <= observed, two_sided))
    counts = extreme.sum(-1)
    return (1 + counts.float()) / (1 + null.shape[-1])


@dataclass(frozen=True)
class ChanceModel:
    """The null samples of one run, as token-id index tensors drawn once from `seed`.

    global_pairs [n_pairs, 2]; matched_pairs [P, n_pairs, 2], one set per probe pair in
    ProbeSet order; relabelings [n_permutations, m], each row a replacement for the group
    characters. Nothing here depends on the weights: evaluate it on any snapshot's W.
    """

    global_pairs: Tensor
    matched_pairs: Tensor
    relabelings: Tensor

    @classmethod
    def build(
        cls,
        counts: Sequence[int] | Tensor,
        probes: ProbeSet,
        n_pairs: int = 4000,
        top_k_frequent: int = 500,
        n_bands: int = 10,
        min_count: int = 5,
        n_permutations: int = 1000,
        seed: int = 0,
    ) -> ChanceModel:
        """Draw every null sample for `probes` on a corpus with these per-id `counts` [V]."""
        counts = torch.as_tensor(counts)
        generator = torch.Generator().manual_seed(seed)
        bands = frequency_bands(counts, n_bands, min_count)
        _check_probes_have_bands(probes, bands, counts, min_count)

        most_frequent = torch.argsort(counts, descending=True, stable=True)[:top_k_frequent]
        global_pairs = sample_pairs(most_frequent, most_frequent, n_pairs, generator)

        is_probe = torch.zeros(len(counts), dtype=torch.bool)
        is_probe[probes.probe_ids] = True
        band_pool = [torch.nonzero((bands == b) & ~is_probe).flatten() for b in range(n_bands)]
        matched_pairs = torch.empty(len(probes.pairs), n_pairs, 2, dtype=torch.long)
        for i, pair in enumerate(probes.pairs):
            pool_a, pool_b = band_pool[bands[pair.a_id]], band_pool[bands[pair.b_id]]
            try:
                matched_pairs[i] = sample_pairs(pool_a, pool_b, n_pairs, generator)
            except ValueError as error:
                message = f"pair {pair.name}: its bands hold no pair of non-probe characters"
                raise ValueError(message) from error

        relabelings = relabel_within_bands(probes.group_char_ids, bands, n_permutations, generator)
        return cls(global_pairs, matched_pairs, relabelings)

    def global_null(self, W: Tensor) -> Tensor:
        """Cosines of the global random pairs [n_pairs]."""
        return pair_cosines(W, self.global_pairs)

    def matched_null(self, W: Tensor) -> Tensor:
        """Cosines of each probe pair's frequency-matched random pairs [P, n_pairs]."""
        return pair_cosines(W, self.matched_pairs)

    def group_null(self, W: Tensor, probes: ProbeSet) -> Tensor:
        """Within-group minus cross-group mean cosine after each relabeling [n_permutations]."""
        U = unit_rows(W)
        within, cross = group_cosine_means(
            U[self.relabelings.to(U.device)],
            probes.within_positions.to(U.device),
            probes.cross_positions.to(U.device),
        )
        return within - cross


def relabel_within_bands(ids: Tensor, bands: Tensor, n_permutations: int, generator: torch.Generator) -> Tensor:
    """[n_permutations, m]: each row swaps every id for a random member of its band.

    Within one row, ids of the same band get distinct replacements (a random ordering of the
    band, cut to length), so two group characters never collapse into one. The band's probe
    characters stay candidates: under the null hypothesis the observed labeling is just one
    of the equally likely ones.
    """
    relabelings = torch.empty(n_permutations, len(ids), dtype=torch.long)
    for band in bands[ids].unique():
        positions = torch.nonzero(bands[ids] == band).flatten()
        members = torch.nonzero(bands == band).flatten()
        order = torch.rand(n_permutations, len(members), generator=generator).argsort(dim=1)
        relabelings[:, positions] = members[order[:, : len(positions)]]
    return relabelings


def _check_probes_have_bands(probes: ProbeSet, bands: Tensor, counts: Tensor, min_count: int) -> None:
    """A probe character below min_count has no band to be matched against: say which, and why."""
    chars = {p.a: p.a_id for p in probes.pairs} | {p.b: p.b_id for p in probes.pairs}
    chars |= dict(zip(probes.group_chars, probes.group_char_ids.tolist()))
    too_rare = [f"{c!r} ({int(counts[i])}x)" for c, i in chars.items() if bands[i] < 0]
    if too_rare:
        raise ValueError(
            f"probe characters rarer than min_count={min_count} have no frequency band: "
            + ", ".join(too_rare)
            + "; lower min_count or drop them from the probes"
        )
