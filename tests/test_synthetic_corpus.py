"""The synthetic corpus (glassbox/text/synthetic.py, conf/corpus/repeats.yaml): generated, not downloaded."""

from __future__ import annotations

import hashlib
import re

import pytest

from glassbox import fileio
from glassbox.config import validate
from glassbox.errors import GlassboxError
from glassbox.prepare import prepare
from glassbox.text.synthetic import repeated_segments

SMALL = ["corpus=repeats", "corpus.synthetic.n_lines=300", "wandb.mode=disabled", "model=tiny"]


def test_every_line_is_one_segment_of_the_alphabet_written_twice():
    text = repeated_segments("xyz", [2, 5], n_lines=200, seed=3)
    lines = text.split("\n")
    assert lines[-1] == "" and len(lines) == 201  # each line ends in a newline
    lengths = set()
    for line in lines[:-1]:
        segment = line[: len(line) // 2]
        assert line == segment * 2 and re.fullmatch("[xyz]+", segment)
        lengths.add(len(segment))
    assert lengths == {2, 3, 4, 5}  # uniform over the range, both ends included


def test_the_text_is_a_function_of_the_seed():
    assert repeated_segments("abc", [3, 6], 50, seed=1) == repeated_segments("abc", [3, 6], 50, seed=1)
    assert repeated_segments("abc", [3, 6], 50, seed=1) != repeated_segments("abc", [3, 6], 50, seed=2)


def test_prepare_generates_the_text_where_a_download_lands_and_records_its_sha256(make_cfg, workdir):
    out_dir = prepare(make_cfg("prepare", SMALL))
    raw = workdir / "data" / "raw" / "repeats.txt"
    meta = fileio.read_json(out_dir / "meta.json")
    assert meta["inputs"]["sha256"] == hashlib.sha256(raw.read_bytes()).hexdigest()
    assert raw.read_text(encoding="utf-8") == repeated_segments("abcdefghijklmnopqrstuvwxyz", [6, 14], 300, seed=0)
    assert meta["n_chars"] == len(raw.read_text(encoding="utf-8"))


def test_other_settings_give_another_text_and_a_rebuild(make_cfg):
    first = fileio.read_json(prepare(make_cfg("prepare", SMALL)) / "meta.json")["inputs"]["sha256"]
    second = fileio.read_json(prepare(make_cfg("prepare", [*SMALL, "corpus.synthetic.seed=1"])) / "meta.json")
    assert second["inputs"]["sha256"] != first


@pytest.mark.parametrize(
    "override, named",
    [
        ("corpus.synthetic.alphabet=a", "alphabet"),
        ("corpus.synthetic.alphabet=abca", "alphabet"),
        ("corpus.synthetic.segment_length=[9,3]", "segment_length"),
        ("corpus.synthetic.n_lines=0", "n_lines"),
    ],
)
def test_bad_settings_are_named(make_cfg, override, named):
    with pytest.raises(GlassboxError, match=named):
        validate(make_cfg("prepare", [*SMALL, override]), "prepare")
