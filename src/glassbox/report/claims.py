"""Claims judged against chance: one verdict per probe pair and for the group statistic.

A claim is worded by the numbers only: "held" where the pair's z against its frequency-matched
null (zf) reaches analysis.claims.z_min in the expected direction AND its permutation p-value is
at most analysis.claims.p_max; "not yet" where it moved the expected way without getting there;
"did not" where it moved the other way. The global z is shown, never used to judge: drift of all
frequent characters fools it (see probes/baselines.py).
"""

from __future__ import annotations

from typing import Any

from glassbox import metric_keys as keys

HELD, NOT_YET, DID_NOT, NO_DIRECTION = "held", "not yet", "did not", "no direction expected"
GROUP_CLAIM = "within − cross"  # the group statistic's label: mean within-group minus mean cross-group cosine


def verdict(zf: float, p: float, expect: str, z_min: float, p_max: float) -> str:
    """held / not yet / did not for a claim expected to go "up" or "down"; NaN never holds."""
    if expect == "none":
        return NO_DIRECTION
    toward_expected = zf if expect == "up" else -zf
    if toward_expected >= z_min and p <= p_max:
        return HELD
    return NOT_YET if toward_expected > 0 else DID_NOT


def claims(analysis: dict[str, Any]) -> list[dict[str, Any]]:
    """One claim per probe pair, plus the group statistic, judged at the last snapshot.

    A claim is named by its pair's id (`claim`, the key fragment: metric_keys.GROUP_ID for the
    groups) and labelled for people (`label`: 说–道, or GROUP_CLAIM). first_held is the first step
    at which the claim held, if any: a pair that held early and faded (the common drift of frequent
    characters) reads differently from one still rising.
    """
    snapshots = analysis["snapshots"]
    if not snapshots or keys.BASELINE_MEAN not in snapshots[0]["scalars"]:
        return []  # the embeddings suite did not run
    thresholds = analysis["thresholds"]
    rows = [(p["name"], p["label"], p["a"], p["b"], p["kind"], p["expect"],
             *(keys.pair(stat, p["name"]) for stat in keys.PAIR_STATS)) for p in analysis["probes"]["pairs"]]
    if keys.GROUP_STAT in snapshots[0]["scalars"]:
        rows.append((keys.GROUP_ID, GROUP_CLAIM, None, None, "groups", "up", keys.GROUP_STAT, None, keys.GROUP_ZF,
                     keys.GROUP_P))
    result = []
    for name, label, a, b, kind, expect, value_key, z_key, zf_key, p_key in rows:
        judged = [(s["step"], verdict(s["scalars"][zf_key], s["scalars"][p_key], expect, **thresholds))
                  for s in snapshots]
        final = snapshots[-1]["scalars"]
        result.append({
            "claim": name, "label": label, "a": a, "b": b, "kind": kind, "expect": expect,
            "step": snapshots[-1]["step"],
            "value": final[value_key], "z": final[z_key] if z_key else None, "zf": final[zf_key],
            "p": final[p_key], "verdict": judged[-1][1],
            "first_held": next((step for step, v in judged if v == HELD), None),
        })
    return result


def claim_sentence(claim: dict[str, Any], z_min: float, p_max: float) -> str:
    """The verdict of one claim in words, with the numbers that decided it."""
    zf, p, step, expect = claim["zf"], claim["p"], claim["step"], claim["expect"]
    needed = f"zf {'≥' if expect == 'up' else '≤'} {z_min if expect == 'up' else -z_min:+g} and p ≤ {p_max:g}"
    numbers = f"zf {zf:+.2f}, p {p:.3f}"
    if claim["verdict"] == NO_DIRECTION:
        apart = abs(zf) >= z_min and p <= p_max
        return f"no direction expected; {numbers}: {'differs from' if apart else 'indistinguishable from'} chance"
    if claim["verdict"] == HELD:
        since = claim["first_held"]
        earlier = f"; first held at step {since}" if since != step else ""
        return f"**held** at step {step}: {numbers} ({needed}){earlier}"
    earlier = f"; it held at step {claim['first_held']} but no longer does" if claim["first_held"] is not None else ""
    if claim["verdict"] == NOT_YET:
        return (f"**not yet** at step {step}: {numbers}, moving the expected way ({expect}) "
                f"but short of {needed}{earlier}")
    return f"**did not** hold at step {step}: {numbers}, against the expected direction ({expect}){earlier}"

