import pytest

from glassbox.probes.probe_set import ProbeSet

STOI = {c: i for i, c in enumerate("说道言曰山水天人,;")}
GROUPS = {"say": ["说", "道", "言", "曰"], "nature": ["山", "水", "天"]}


def pair(pair_id, a, b, expect=None):
    return {"id": pair_id, "a": a, "b": b, **({"expect": expect} if expect else {})}


def test_kinds_and_default_expectations():
    pairs = [
        pair("shuo_dao", "说", "道"),
        pair("shuo_shan", "说", "山"),
        pair("shuo_ren", "说", "人"),
        pair("comma_semicolon", ",", ";"),
    ]
    probes = ProbeSet.build(GROUPS, pairs, STOI)
    got = {p.name: (p.label, p.kind, p.expect) for p in probes.pairs}
    assert got == {
        "shuo_dao": ("说–道", "within", "up"),
        "shuo_shan": ("说–山", "cross", "down"),
        "shuo_ren": ("说–人", "other", "none"),
        "comma_semicolon": (",–;", "other", "none"),
    }
    assert probes.pair_ids.tolist() == [[0, 1], [0, 4], [0, 7], [8, 9]]


def test_explicit_expectation_wins():
    probes = ProbeSet.build(GROUPS, [pair("shuo_dao", "说", "道", "none"), pair("c_s", ",", ";", "up")], STOI)
    assert [(p.kind, p.expect) for p in probes.pairs] == [("within", "none"), ("other", "up")]


def test_bad_expectation_and_bad_entry_are_rejected():
    with pytest.raises(ValueError, match="pair shuo_dao: expect must be one of"):
        ProbeSet.build(GROUPS, [pair("shuo_dao", "说", "道", "sideways")], STOI)
    for old_form in (["说", "道"], {"a": "说", "b": "道"}, {**pair("x", "说", "道"), "kind": "within"}):
        with pytest.raises(ValueError, match=r"a probe pair is a mapping \{id: shuo_dao, a: 说, b: 道\}"):
            ProbeSet.build(GROUPS, [old_form], STOI)


@pytest.mark.parametrize(
    "pair_id, complaint",
    [
        ("说道", "must be ASCII letters, digits and _"),
        ("shuo-dao", "must be ASCII letters, digits and _"),
        ("2nd", "not starting with a digit"),
        ("within_minus_cross", "taken by a group statistic"),
        ("cross_mean", "taken by a group statistic"),
    ],
)
def test_pair_ids_that_cannot_name_a_wandb_key_are_rejected(pair_id, complaint):
    with pytest.raises(ValueError, match=complaint) as error:
        ProbeSet.build(GROUPS, [pair(pair_id, "说", "道")], STOI)
    assert repr(pair_id) in str(error.value)


def test_a_pair_id_used_twice_is_rejected():
    with pytest.raises(ValueError, match="'shuo' is used twice"):
        ProbeSet.build(GROUPS, [pair("shuo", "说", "道"), pair("shuo", "说", "言")], STOI)


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
        ProbeSet.build(groups, [pair("jiang_shan", "讲", "山"), pair("shuo_long", "说", "龙")], STOI)
    message = str(error.value)
    assert "'讲' (group say, pair jiang_shan)" in message
    assert "'龙' (pair shuo_long)" in message
    assert "'说'" not in message and "'山'" not in message
