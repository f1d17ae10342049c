"""A property of each character position decided from the text alone, for the linear probes.

A corpus config names it by a regular expression (corpus.probes.position): the positions its matches
cover have the property. In 西游记, `(?<=“)[^”]*”` marks the positions inside a quotation, from the one
after an opening “ up to its closing ”; in tiny-shakespeare the speaker's name line that follows a blank
line.

Labels come from the whole validation text, so a quotation that starts before a window is still a
quotation inside it. But the model sees only its window: before the first of the `decided_after`
characters in a window (“ or ” for quotations, a newline for lines), nothing it could see decides the
label, and those positions are left out (-1) rather than held against any layer.
"""

from __future__ import annotations

import re

import torch
from torch import Tensor

UNDECIDED = -1


def text_labels(text: str, pattern: str) -> Tensor:
    """[len(text)]: 1 at every character some match of `pattern` covers, else 0."""
    labels = torch.zeros(len(text), dtype=torch.long)
    for match in re.finditer(pattern, text):
        labels[match.start() : match.end()] = 1
    return labels


def window_labels(text: str, pattern: str, starts: Tensor, length: int, decided_after: list[str]) -> Tensor:
    """[n, length] labels of the windows text[start : start + length], UNDECIDED before the first
    character of decided_after in each window (a window without one is all UNDECIDED);
    every position is decided when decided_after is empty."""
    labels = text_labels(text, pattern)
    windows = starts[:, None] + torch.arange(length)
    out = labels[windows]
    if decided_after:
        for row, start in enumerate(starts.tolist()):
            window = text[start : start + length]
            first = min((i for i, char in enumerate(window) if char in decided_after), default=length)
            out[row, :first] = UNDECIDED
    return out
