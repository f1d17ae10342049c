"""The probe characters of a corpus, resolved to token ids once.

A corpus config names groups of characters that should end up close (说 道 言 曰 all mean "say")
and pairs to watch, each under a stable ASCII id (`{id: shuo_dao, a: 说, b: 道}`): the id names
the pair's metric keys (glassbox.metric_keys), its characters label it for people. Every analysis
works on token ids, so this module turns the characters into ids, decides what each pair is
expected to do, and fails loudly when an id is unusable or a probe character is not in the
vocabulary (a typo in the config would otherwise silently measure nothing).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
from torch import Tensor

from glassbox import metric_keys as keys

EXPECTATIONS = ("up", "down", "none")
DEFAULT_EXPECT = {"within": "up", "cross": "down", "other": "none"}


@dataclass(frozen=True)
class ProbePair:
    """Two probe characters, their token ids, how they relate through the groups and what we expect.

    name: the pair's id from the config (`shuo_dao`), the fragment every metric key of the pair is
    built from; label (`说–道`) is how people read it. kind: "within" (some group holds both),
    "cross" (both in groups, never the same one) or "other" (at least one is in no group).
    expect: the direction the cosine should move while training, "up", "down" or "none"; it picks
    the side of the pair's permutation test.
    """

    name: str
    a: str
    b: str
    a_id: int
    b_id: int
    kind: str
    expect: str

    @property
    def label(self) -> str:
        """`说–道`: the pair in chart titles, legends, tables and the report."""
        return f"{self.a}–{self.b}"


@dataclass(frozen=True)
class ProbeSet:
    """Groups and pairs of probe characters with their token ids.

    group_chars lists every character that appears in a group, once, in order of first
    appearance; within_positions / cross_positions [N, 2] index into it and enumerate ALL
    unordered combinations of two group characters that share a group / share none, so the
    group statistic does not depend on which pairs the config happened to list.
    """

    groups: dict[str, list[str]]
    pairs: list[ProbePair]
    group_chars: list[str]
    group_char_ids: Tensor
    within_positions: Tensor
    cross_positions: Tensor

    @classmethod
    def build(cls, groups: dict[str, list[str]], pairs: list[dict[str, str]], stoi: dict[str, int]) -> ProbeSet:
        """Resolve `groups` {name: [chars]} and `pairs` [{id, a, b, expect (optional)}] through stoi."""
        check_pairs(pairs)
        _check_all_in_vocab(groups, pairs, stoi)
        groups_of: dict[str, set[str]] = {}
        for group, chars in groups.items():
            for char in chars:
                groups_of.setdefault(char, set()).add(group)

        def kind(a: str, b: str) -> str:
            if a not in groups_of or b not in groups_of:
                return "other"
            return "within" if groups_of[a] & groups_of[b] else "cross"

        probe_pairs = []
        for entry in pairs:
            a, b = entry["a"], entry["b"]
            pair_kind = kind(a, b)
            expect = entry.get("expect", DEFAULT_EXPECT[pair_kind])
            if expect not in EXPECTATIONS:
                raise ValueError(f"pair {entry['id']}: expect must be one of {EXPECTATIONS}, got {expect!r}")
            probe_pairs.append(ProbePair(entry["id"], a, b, stoi[a], stoi[b], pair_kind, expect))

        group_chars = list(groups_of)
        combinations = list(itertools.combinations(range(len(group_chars)), 2))
        kinds = [kind(group_chars[i], group_chars[j]) for i, j in combinations]
        within = [ij for ij, k in zip(combinations, kinds) if k == "within"]
        cross = [ij for ij, k in zip(combinations, kinds) if k == "cross"]
        return cls(
            groups={group: list(chars) for group, chars in groups.items()},
            pairs=probe_pairs,
            group_chars=group_chars,
            group_char_ids=torch.tensor([stoi[c] for c in group_chars], dtype=torch.long),
            within_positions=torch.tensor(within, dtype=torch.long).reshape(-1, 2),
            cross_positions=torch.tensor(cross, dtype=torch.long).reshape(-1, 2),
        )

    def describe_pairs(self) -> list[dict[str, str]]:
        """Each pair as plain data (name = id, label, characters, kind, expected direction), for run.json and
        reports."""
        return [
            {"name": p.name, "label": p.label, "a": p.a, "b": p.b, "kind": p.kind, "expect": p.expect}
            for p in self.pairs
        ]

    def char_groups(self) -> dict[str, str]:
        """Every probe character -> its (first) group, "" for one only in pairs; group characters first."""
        group_of: dict[str, str] = {}
        for group, chars in self.groups.items():
            for char in chars:
                group_of.setdefault(char, group)
        for pair in self.pairs:
            group_of.setdefault(pair.a, "")
            group_of.setdefault(pair.b, "")
        return group_of

    @property
    def pair_ids(self) -> Tensor:
        """[P, 2] token ids of the listed pairs, in config order."""
        return torch.tensor([[p.a_id, p.b_id] for p in self.pairs], dtype=torch.long).reshape(-1, 2)

    @property
    def probe_ids(self) -> Tensor:
        """Sorted ids of every probe character (groups and pairs), to keep them out of a null."""
        ids = {p.a_id for p in self.pairs} | {p.b_id for p in self.pairs}
        return torch.tensor(sorted(ids | set(self.group_char_ids.tolist())), dtype=torch.long)


PAIR_FIELDS = ("id", "a", "b", "expect")
PAIR_FORM = "{id: shuo_dao, a: 说, b: 道} (expect: up|down|none optional)"


def check_pairs(pairs: list) -> None:
    """Raise a ValueError for a pair that is not {id, a, b[, expect]}, or whose id W&B cannot sort by."""
    seen: set[str] = set()
    for entry in pairs:
        if not isinstance(entry, dict) or not {"id", "a", "b"} <= entry.keys() or entry.keys() - set(PAIR_FIELDS):
            raise ValueError(f"a probe pair is a mapping {PAIR_FORM}, got {entry!r}")
        pair_id = entry["id"]
        if not isinstance(pair_id, str) or not keys.is_fragment(pair_id):
            raise ValueError(
                f"probe pair id {pair_id!r} ({entry['a']}–{entry['b']}) must be ASCII letters, "
                "digits and _, not starting with a digit (it names the pair's metric keys, e.g. "
                "cos/shuo_dao)"
            )
        if pair_id in keys.RESERVED_IDS:
            raise ValueError(f"probe pair id {pair_id!r} is taken by a group statistic; choose another")
        if pair_id in seen:
            raise ValueError(f"probe pair id {pair_id!r} is used twice; every pair needs its own")
        seen.add(pair_id)


def _check_all_in_vocab(groups: dict[str, list[str]], pairs: list[dict[str, str]], stoi: dict[str, int]) -> None:
    """Raise one ValueError that names every missing character and where the config uses it."""
    used_in: dict[str, list[str]] = {}
    for group, chars in groups.items():
        for char in chars:
            used_in.setdefault(char, []).append(f"group {group}")
    for entry in pairs:
        for char in (entry["a"], entry["b"]):
            used_in.setdefault(char, []).append(f"pair {entry['id']}")
    missing = [f"{char!r} ({', '.join(places)})" for char, places in used_in.items() if char not in stoi]
    if missing:
        raise ValueError("probe characters not in the vocabulary: " + "; ".join(missing))
