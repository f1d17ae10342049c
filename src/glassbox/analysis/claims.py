"""Claims judged against chance: what each probe pair and the group statistic claim, and whether it held.

A claim is worded by the numbers only. Three tests, each judged at one snapshot by `Claim.at`:

- level (a pair with an expected direction, and the group statistic): "held" where its z against
  its frequency-matched null (zf) reaches analysis.claims.z_min in the expected direction AND its
  permutation p-value is at most analysis.claims.p_max; "not yet" where it moved the expected way
  without getting there; "did not" where it moved the other way.
- A cross pair claims what the article meant, "unrelated characters keep their distance or even
  move apart", as two tests judged separately:
  no association: it stays within chance (|zf| < z_min) and below the cosine of every within pair
  of its groups, at every snapshot after the early drift (from analysis.claims.early_drift × the
  last step on, so the drift of the first steps is not judged);
  moving apart: its cosine's change since step 0 is a fall beyond the changes of its frequency-
  matched null pairs over the same steps (zf_dcos ≤ -z_min and p_dcos ≤ p_max): a null for the
  change, not for the level.

Mechanisms (head roles and in-context learning, probes/heads.py) are judged the same way against their own
null, uniform causal attention or no change of loss, by `judge_mechanism`: "held" or "not yet", with the
step from which they held and stayed held (their onset).

`judge` turns one claim's snapshots into its verdict; the single-run analysis (`claims`) and the
replicate (analysis/replicates.py) both call it; report/claims.py words the verdicts. The global z
is shown, never used to judge: drift of all frequent characters fools it (see probes/baselines.py).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, fields, replace
from typing import Any

from glassbox import metric_keys as keys

HELD, NOT_YET, DID_NOT, NO_DIRECTION = "held", "not yet", "did not", "no direction expected"
GROUP_CLAIM = "within − cross"  # the group statistic's label: mean within-group minus mean cross-group cosine
LEVEL, NO_ASSOCIATION, MOVING_APART = "level", "no association", "moving apart"  # the tests


def verdict(zf: float, p: float, expect: str, z_min: float, p_max: float) -> str:
    """held / not yet / did not for a claim expected to go "up" or "down"; NaN never holds."""
    if expect == "none":
        return NO_DIRECTION
    toward_expected = zf if expect == "up" else -zf
    if toward_expected >= z_min and p <= p_max:
        return HELD
    return NOT_YET if toward_expected > 0 else DID_NOT


def differs_from_chance(zf: float, p: float, z_min: float, p_max: float) -> bool:
    """For a pair with no expected direction: |zf| ≥ z_min with its two-sided p ≤ p_max."""
    return abs(zf) >= z_min and p <= p_max


@dataclass(frozen=True)
class Claim:
    """One claim and the metric keys that decide it.

    name: the pair's key fragment (ProbePair.name), or metric_keys.GROUP_ID; below: for "no association",
    the within pairs whose cosine the cross pair must stay under.
    """

    name: str
    test: str
    a: str | None
    b: str | None
    kind: str
    expect: str
    value_key: str  # the number the claim is about: the pair's cosine, or the group statistic
    zf_key: str
    p_key: str
    z_key: str | None = None  # the global z, shown beside the level test only
    below: tuple[str, ...] = ()

    @property
    def p_null(self) -> str:
        """The analysis.chance setting that counts the null samples behind its p (its resolution)."""
        return "n_permutations" if self.kind == "groups" else "n_pairs"

    def measured_in(self, row: Collection[str]) -> bool:
        """Whether a snapshot's metrics hold this claim's numbers (no dcos/ at step 0, for one)."""
        return self.zf_key in row and self.p_key in row

    def at(self, row: dict[str, float], z_min: float, p_max: float) -> str:
        """The verdict at one snapshot: held / not yet / did not (no association: held / did not)."""
        if self.test == NO_ASSOCIATION:
            within_chance = abs(row[self.zf_key]) < z_min  # NaN is not within
            under = all(row[self.value_key] < row[keys.pair("cos", name)] for name in self.below)
            return HELD if within_chance and under else DID_NOT
        return verdict(row[self.zf_key], row[self.p_key], self.expect, z_min, p_max)


def claim_list(pairs: list[dict[str, Any]], groups: dict[str, list[str]], measured: Collection[str]) -> list[Claim]:
    """Every claim the probe pairs (ProbeSet.describe_pairs) and groups make that the snapshot keys
    `measured` can judge: pairs in config order (two tests for a cross pair), then the group claim."""
    result = []
    for pair in pairs:
        name = pair["name"]
        common = {
            "name": name,
            "a": pair["a"],
            "b": pair["b"],
            "kind": pair["kind"],
            "expect": pair["expect"],
            "value_key": keys.pair("cos", name),
        }
        if (pair["kind"], pair["expect"]) != ("cross", "down"):  # a cross pair told otherwise is judged as told
            result.append(
                Claim(
                    test=LEVEL,
                    zf_key=keys.pair("zf", name),
                    p_key=keys.pair("p", name),
                    z_key=keys.pair("z", name),
                    **common,
                )
            )
            continue
        its_groups = [chars for chars in groups.values() if pair["a"] in chars or pair["b"] in chars]
        below = tuple(
            p["name"]
            for p in pairs
            if p["kind"] == "within" and any(p["a"] in chars and p["b"] in chars for chars in its_groups)
        )
        result.append(
            Claim(test=NO_ASSOCIATION, zf_key=keys.pair("zf", name), p_key=keys.pair("p", name), below=below, **common)
        )
        result.append(
            Claim(test=MOVING_APART, zf_key=keys.pair("zf_dcos", name), p_key=keys.pair("p_dcos", name), **common)
        )
    result.append(Claim(keys.GROUP_ID, LEVEL, None, None, "groups", "up", keys.GROUP_STAT, keys.GROUP_ZF, keys.GROUP_P))
    return [claim for claim in result if claim.value_key in measured and claim.measured_in(measured)]


@dataclass(frozen=True)
class ClaimResult:
    """One claim judged over a run's snapshots (`judge`): its numbers at the last one, its verdict, and
    when it first held. Test-specific parts: differs (a pair with no expected direction: whether it
    differs from chance), change (moving apart: the cosine's change since step 0), and for no
    association the within pairs it must stay under, the step it is judged from and where it broke."""

    claim: str
    label: str
    test: str
    a: str | None
    b: str | None
    kind: str
    expect: str
    step: int
    initial: float | None
    value: float
    z: float | None
    zf: float
    p: float
    p_floor: float | None
    verdict: str
    first_held: int | None
    stayed: bool
    differs: bool | None = None
    change: float | None = None
    below: tuple[str, ...] = ()
    judged_from: int | None = None
    broke: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        """The claim as analysis.json keeps it: the test-specific keys only for their test."""
        result = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in _TEST_SPECIFIC}
        if self.expect == "none":
            result["differs"] = self.differs
        if self.test == MOVING_APART:
            result["change"] = self.change
        if self.test == NO_ASSOCIATION:
            result |= {"below": list(self.below), "judged_from": self.judged_from, "broke": self.broke}
        return result


_TEST_SPECIFIC = ("differs", "change", "below", "judged_from", "broke")


def judge(
    claim: Claim, rows: list[dict[str, Any]], settings: dict[str, float], chance: dict[str, int] | None
) -> ClaimResult:
    """One claim over a run's snapshots (rows: {"step": s, key: value}, in step order), judged at the last.

    settings: analysis.claims (z_min, p_max, early_drift); chance: analysis.chance, for the p-value's
    resolution (p_floor = 1 / (n + 1) for its n null samples; None when unknown). first_held: the
    first step it held at; stayed: whether it held at every snapshot from then on. A pair that
    held early and faded (the common drift of frequent characters) reads differently from one
    still rising.
    """
    z_min, p_max = settings["z_min"], settings["p_max"]
    measured = [row for row in rows if claim.measured_in(row)]
    judged = [(row["step"], claim.at(row, z_min, p_max)) for row in measured]
    final = measured[-1]
    first_held = next((step for step, v in judged if v == HELD), None)
    result = ClaimResult(
        claim=claim.name,
        label=GROUP_CLAIM if claim.a is None else f"{claim.a}–{claim.b}",
        test=claim.test,
        a=claim.a,
        b=claim.b,
        kind=claim.kind,
        expect=claim.expect,
        step=final["step"],
        initial=rows[0].get(claim.value_key),
        value=final[claim.value_key],
        z=final[claim.z_key] if claim.z_key else None,
        zf=final[claim.zf_key],
        p=final[claim.p_key],
        p_floor=1 / (chance[claim.p_null] + 1) if chance else None,
        verdict=judged[-1][1],
        first_held=first_held,
        stayed=first_held is not None and all(v == HELD for step, v in judged if step >= first_held),
    )
    if claim.expect == "none":
        result = replace(result, differs=differs_from_chance(result.zf, result.p, z_min, p_max))
    if claim.test == MOVING_APART:
        result = replace(result, change=final[keys.pair("dcos", claim.name)])
    if claim.test == NO_ASSOCIATION:  # judged at every snapshot after the early drift, the last included
        settled = [
            (row, v) for row, (_, v) in zip(measured, judged) if row["step"] >= settings["early_drift"] * final["step"]
        ]
        broken = next((row for row, v in settled if v != HELD), None)
        result = replace(
            result,
            below=claim.below,
            judged_from=settled[0][0]["step"],
            verdict=HELD if broken is None else DID_NOT,
            broke=None if broken is None else _why_not_apart(claim, broken, z_min),
        )
    return result


def _why_not_apart(claim: Claim, row: dict[str, float], z_min: float) -> dict[str, Any]:
    """Where "no association" failed: the step, the zf if outside chance, the within pairs it was not under."""
    zf = row[claim.zf_key]
    return {
        "step": row["step"],
        "zf": None if abs(zf) < z_min else zf,
        "cos": row[claim.value_key],
        "above": {
            name: row[keys.pair("cos", name)]
            for name in claim.below
            if not row[claim.value_key] < row[keys.pair("cos", name)]
        },
    }


def claims(analysis: dict[str, Any]) -> list[dict[str, Any]]:
    """Every claim of an analysis (analysis/replay.py describe), judged at its last snapshot."""
    snapshots = analysis["snapshots"]
    if not snapshots or keys.BASELINE_MEAN not in snapshots[0]["scalars"]:
        return []  # the embeddings suite did not run
    rows = [{"step": s["step"], **s["scalars"]} for s in snapshots]
    probes = analysis["probes"]
    return [
        judge(claim, rows, analysis["thresholds"], analysis.get("chance")).as_dict()
        for claim in claim_list(probes["pairs"], probes["groups"], rows[-1])
    ]


def mechanism_points(mechanism: str, rows: list[dict[str, Any]], held: dict[str, float]) -> list[dict[str, Any]]:
    """A mechanism (metric_keys.MECHANISMS) at every snapshot that measured it: {"step", "value", "held"},
    for a head role also its best "head", its "chance" and that head's "initial" (first snapshot's) score.

    held: analysis.mechanisms.held. A head role held where its best head scores at least ratio × chance
    and at least its own first score + margin (a head that was already there at step 0 formed nothing);
    an ICL score (negative = the context helped) where it is at most -nats and at most its first value - nats.
    """
    if mechanism in keys.HEAD_MECHANISMS:
        role = keys.HEAD_MECHANISMS[mechanism]
        measured = [row for row in rows if keys.head_max(role) in row]
        heads = keys.head_scores_in(measured[0], role) if measured else {}
        points = []
        for row in measured:
            best = max(heads, key=lambda head: row[heads[head]])
            value, chance, initial = row[heads[best]], row[keys.head_chance(role)], measured[0][heads[best]]
            is_held = value >= held["ratio"] * chance and value >= initial + held["margin"]
            points.append(
                {
                    "step": row["step"],
                    "head": best,
                    "value": value,
                    "chance": chance,
                    "initial": initial,
                    "held": is_held,
                }
            )
        return points
    key = keys.ICL_MECHANISMS[mechanism]
    nats = held["icl_nats" if key == keys.ICL_SCORE else "repeat_nats"]
    measured = [row for row in rows if key in row]
    bar = min(0.0, measured[0][key]) - nats if measured else 0.0
    return [{"step": row["step"], "value": row[key], "held": row[key] <= bar} for row in measured]


def judge_mechanism(mechanism: str, rows: list[dict[str, Any]], held: dict[str, float]) -> dict[str, Any] | None:
    """A mechanism over a run's snapshots (rows: {"step": s, key: value}, in step order; the first one is
    the baseline, step 0 in a full run): its verdict at the last snapshot (held / not yet), its onset (the
    first step from which it held at every later snapshot; None when it does not hold at the end), the
    step it first held at, and its points (`mechanism_points`). None where no snapshot measured it."""
    points = mechanism_points(mechanism, rows, held)
    if not points:
        return None
    onset = None
    for point in reversed(points):
        if not point["held"]:
            break
        onset = point["step"]
    return {
        "mechanism": mechanism,
        "verdict": HELD if points[-1]["held"] else NOT_YET,
        "onset": onset,
        "first_held": next((p["step"] for p in points if p["held"]), None),
        "baseline_step": points[0]["step"],
        "points": points,
    }


def mechanisms(rows: list[dict[str, Any]], held: dict[str, float]) -> list[dict[str, Any]]:
    """Every mechanism the rows measured, judged (`judge_mechanism`), in metric_keys.MECHANISMS order."""
    judged = (judge_mechanism(mechanism, rows, held) for mechanism in keys.MECHANISMS)
    return [result for result in judged if result is not None]


PARALLEL_OFFSETS, ANALOGY, ANALOGY_GAIN = "parallel offsets", "analogy", "analogy gain"  # an offset set's tests
OFFSET_TESTS = {  # test: (metric section, its value, zf and p stats); keys built by keys.offset / keys.analogy
    PARALLEL_OFFSETS: (keys.offset, "cos", "zf", "p"),
    ANALOGY: (keys.analogy, "mrr", "zf", "p"),
    ANALOGY_GAIN: (keys.analogy, "c_only_mrr", "gain_zf", "gain_p"),
}


def offset_claims(analysis: dict[str, Any]) -> list[dict[str, Any]]:
    """Each offset set's claims (probes/arithmetic.py), judged at the last snapshot as `judge` judges a level
    claim expected up: its offsets share a direction; its analogies b − a + c find d more often than random
    frequency-matched quadruples do; and more often than c alone finds d (the gain), so the offset adds something.
    The gain's claim shows the MRR by c alone as its value."""
    snapshots = analysis["snapshots"]
    offsets = analysis["probes"].get("offsets") or {}
    if not snapshots or not offsets:
        return []
    rows = [{"step": s["step"], **s["scalars"]} for s in snapshots]
    n_sets = analysis["arithmetic"]["n_sets"]
    result = []
    for name in offsets:
        for test, (key, value, zf, p) in OFFSET_TESTS.items():
            claim = Claim(name, test, None, None, "offsets", "up", key(name, value), key(name, zf), key(name, p))
            if claim.measured_in(rows[-1]):
                judged = judge(claim, rows, analysis["thresholds"], None)
                result.append(replace(judged, label=name, p_floor=1 / (n_sets + 1)).as_dict())
    return result
