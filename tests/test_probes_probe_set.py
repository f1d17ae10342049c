import pytest

from glassbox.probes.probe_set import ProbeSet

STOI = {c: i for i, c in enumerate("说道言曰山水天人,;")}
GROUPS = {"say": ["说", "道", "言", "曰"], "nature": ["山", "水", "天"]}


def test_kinds_and_default_expectations():
    pairs = [["说", "道"], ["说", "山"], ["说", "人"], [",", ";"]]
    probes = ProbeSet.build(GROUPS, pairs, STOI)
    got = {p.name: (p.kind, p.expect) for p in probes.pairs}
    assert got == {
        "说-道": ("within", "up"),
        "说-山": ("cross", "down"),
        "说-人": ("other", "none"),
        ",-;": ("other", "none"),
    }
    assert probes.pair_ids.tolist() == [[0, 1], [0, 4], [0, 7], [8, 9]]


def test_explicit_expectation_wins():
    probes = ProbeSet.build(GROUPS, [["说", "道", "none"], [",", ";", "up"]], STOI)
    assert [(p.kind, p.expect) for p in probes.pairs] == [("within", "none"), ("other", "up")]


def test_bad_expectation_and_bad_entry_are_rejected():
    with pytest.raises(ValueError, match="expect must be one of"):
        ProbeSet.build(GROUPS, [["说", "道", "sideways"]], STOI)
    with pytest.raises(ValueError, match=r"\[a, b\] or \[a, b, expect\]"):
        ProbeSet.build(GROUPS, [["说"]], STOI)


def test_group_combinations_cover_all_group_characters():
    probes = ProbeSet.build(GROUPS, [], STOI)
    assert probes.group_chars == ["说", "道", "言", "曰", "山", "水", "天"]
    def named(positions):
        chars = probes.group_chars
        return {frozenset((chars[i], chars[j])) for i, j in positions.tolist()}

    within, cross = named(probes.within_positions), named(probes.cross_positions)
    assert len(within) == 6 + 3 and len(cross) == 4 * 3
    assert frozenset("山水") in within and frozenset("说山") in cross and not within & cross


def test_missing_characters_are_all_named_with_where_they_are_used():
    groups = {"say": ["说", "讲"], "nature": ["山"]}
    with pytest.raises(ValueError) as error:
        ProbeSet.build(groups, [["讲", "山"], ["说", "龙"]], STOI)
    message = str(error.value)
    assert "'讲' (group say, pair 讲-山)" in message
    assert "'龙' (pair 说-龙)" in message
    assert "'说'" not in message and "'山'" not in message
