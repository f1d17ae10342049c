"""A claim's verdict in words, with the numbers that decided it (the verdicts: analysis/claims.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from glassbox.analysis.claims import HELD, MOVING_APART, NO_ASSOCIATION, NO_DIRECTION, NOT_YET
from glassbox.report.markdown import p_text


def claim_sentence(claim: dict[str, Any], z_min: float, p_max: float, label: Callable[[str], str] = str) -> str:
    """The verdict of one claim in words, with the numbers that decided it; label: how to write a pair
    named in it (a within pair that a cross pair must stay under)."""
    if claim["test"] == NO_ASSOCIATION:
        return _no_association_sentence(claim, z_min, label)
    zf, p, step, expect = claim["zf"], claim["p"], claim["step"], claim["expect"]
    needed = f"zf {'≥' if expect == 'up' else '≤'} {z_min if expect == 'up' else -z_min:+g} and p ≤ {p_max:g}"
    numbers = f"zf {zf:+.2f}, p {p_text(p, claim['p_floor'])}"
    if claim["test"] == MOVING_APART:
        numbers = (
            f"cosine {claim['initial']:+.3f} → {claim['value']:+.3f}, a change of {claim['change']:+.3f} "
            f"against its bands' change: {numbers}"
        )
    if claim["verdict"] == NO_DIRECTION:
        apart = claim["differs"]
        return f"no direction expected; {numbers}: {'differs from' if apart else 'indistinguishable from'} chance"
    if claim["verdict"] == HELD:
        since = claim["first_held"]
        earlier = f"; first held at step {since}" if since != step else ""
        return f"**held** at step {step}: {numbers} ({needed}){earlier}"
    earlier = f"; it held at step {claim['first_held']} but no longer does" if claim["first_held"] is not None else ""
    if claim["verdict"] == NOT_YET:
        return (
            f"**not yet** at step {step}: {numbers}, moving the expected way ({expect}) but short of {needed}{earlier}"
        )
    return f"**did not** hold at step {step}: {numbers}, against the expected direction ({expect}){earlier}"


def _no_association_sentence(claim: dict[str, Any], z_min: float, label: Callable[[str], str]) -> str:
    span = f"steps {claim['judged_from']} … {claim['step']}"
    under = f"below every within pair of its groups ({', '.join(map(label, claim['below']))})" if claim["below"] else ""
    if claim["verdict"] == HELD:
        rule = f"|zf| < {z_min:g}" + (f" and {under}" if under else "")
        return f"**held** at every snapshot of {span} ({rule}); at the end zf {claim['zf']:+.2f}"
    broke = claim["broke"]
    reasons = []
    if broke["zf"] is not None:
        reasons.append(f"zf {broke['zf']:+.2f} is outside chance (|zf| ≥ {z_min:g})")
    if broke["above"]:
        reasons.append(
            f"its cosine {broke['cos']:+.3f} is not below "
            + ", ".join(f"{label(name)} ({cos:+.3f})" for name, cos in broke["above"].items())
        )
    return f"**did not** hold over {span}: at step {broke['step']} {' and '.join(reasons)}"


MECHANISM_LABELS = {
    "head_prev": "previous-token head",
    "head_dup": "duplicate-token head",
    "head_induction": "induction head",
    "head_sink": "attention sink (first position)",
    "icl_score": "in-context learning: loss late − early",
    "icl_repeat": "copying: loss on a segment's 2nd − 1st occurrence",
}


def mechanism_rule(mechanism: str, held: dict[str, float]) -> str:
    """What "held" asks of a mechanism (analysis/claims.py mechanism_points), in words."""
    if mechanism == "icl_score":
        return f"≤ −{held['icl_nats']:g} nats and ≤ its step-0 value − {held['icl_nats']:g}"
    if mechanism == "icl_repeat":
        return f"≤ −{held['repeat_nats']:g} nats and ≤ its step-0 value − {held['repeat_nats']:g}"
    return f"best head ≥ {held['ratio']:g} × chance and ≥ its own step-0 score + {held['margin']:g}"


def mechanism_verdict(result: dict[str, Any]) -> str:
    """A mechanism's verdict with its onset: "**held** from step 400 (L0H3)", "**not yet**"."""
    last = result["points"][-1]
    head = f" ({last['head']})" if "head" in last else ""
    if result["verdict"] == HELD:
        return f"**held** from step {result['onset']}{head}"
    faded = f"; held at step {result['first_held']} but not to the end" if result["first_held"] is not None else ""
    return f"**not yet**{faded}"
