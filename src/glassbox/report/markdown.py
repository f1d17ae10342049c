"""Markdown table cells and tables, shared by the analysis report and the sweep summary.

Every cell that holds text from a corpus or a config goes through `escape` (or `char` for a
lone character), so a `|`, `*` or newline in it cannot break the table it sits in.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any

WHITESPACE = {"\n": "\\n", "\t": "\\t", "\r": "\\r", " ": "␣"}  # how a lone character is shown


def num(x: float | None, spec: str = "+.3f") -> str:
    """x formatted by spec; — for a missing number (None or NaN)."""
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def p_text(p: float | None, floor: float | None = None) -> str:
    """A permutation p-value as printed: three decimals, never "0.000".

    With n null samples the smallest p there is, `floor`, is 1 / (n + 1); the true p may be smaller
    still, so p at the floor (or below 0.0005) reads as a bound rounded up to three decimals:
    "< 0.001" for 1/1001 or 1/4001, "< 0.005" for 1/201.
    """
    if p is None or math.isnan(p):
        return "—"
    if (floor is None or p > floor * (1 + 1e-9)) and p >= 0.0005:
        return f"{p:.3f}"
    bound = max(math.ceil(p * 1000 - 1e-9) / 1000, 0.001)
    return f"< {bound:.3f}" if p < bound else f"≤ {bound:.3f}"


def escape(text: str) -> str:
    """Text safe inside a markdown table: newlines shown as \\n, pipes and markup escaped."""
    text = text.replace("\r", "").replace("\n", "\\n")
    return re.sub(r"([|*_`<>\[\]#])", r"\\\1", text)


def visible_char(c: str) -> str:
    """One character as a table cell: whitespace made visible (␣, \\n)."""
    return escape(WHITESPACE.get(c, c))


def quoted(text: str) -> str:
    return f"“{escape(text)}”"


def table(header: list[str], rows: Iterable[list[Any]]) -> str:
    """A markdown table; cells are written with str(), so escape text cells before."""
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def lens_table(prompt: dict[str, Any], what: str) -> str:
    """One prompt's logit lens: each layer's most likely next `what` (characters, tokens) with their probabilities."""
    rows = [
        [layer["layer"], ", ".join(f"{visible_char(t)} {p:.0%}" for t, p in layer["top"])] for layer in prompt["layers"]
    ]
    return f"After {quoted(prompt['prompt'])}:\n\n" + table(["layer", f"top {what}"], rows)
