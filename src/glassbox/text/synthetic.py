"""A corpus generated from its config instead of downloaded: lines that each hold a random segment twice.

The second copy of a segment can be predicted only by finding the first one in the context and copying
what followed it, which is what an induction head does (Olsson et al. 2022). A small model trained on
it forms one within minutes on a CPU: the positive control of the mechanism metrics
(conf/experiment/induction.yaml), where the report must show the phase change the default runs stop
short of. The text is a function of the settings alone (Python's `random.Random(seed)`, whose integer
draws are stable across versions), so prepare rebuilds the same file anywhere and records its sha256.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig

from glassbox.fileio import atomic_path, sha256_of


def repeated_segments(alphabet: str, segment_length: Sequence[int], n_lines: int, seed: int) -> str:
    """`n_lines` lines, each a segment of uniformly random characters of `alphabet` (its length uniform in
    [segment_length[0], segment_length[1]]) written twice, then a newline."""
    rng = random.Random(seed)
    shortest, longest = segment_length
    lines = []
    for _ in range(n_lines):
        segment = "".join(rng.choice(alphabet) for _ in range(rng.randint(shortest, longest)))
        lines.append(segment + segment + "\n")
    return "".join(lines)


def write_repeated_segments(settings: DictConfig, path: Path) -> tuple[Path, str]:
    """Generate the text of `settings` (corpus.synthetic) at `path`, where a download would be cached;
    returns the path and the text's sha256."""
    text = repeated_segments(settings.alphabet, settings.segment_length, settings.n_lines, settings.seed)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path, sha256_of(path)
