"""vocab.py: the character table, encode/decode, hash, JSON round trip, id dtype; a run's vocabulary
that no longer matches the prepared corpus."""

from __future__ import annotations

import json

import numpy as np
import pytest

from glassbox import fileio
from glassbox.errors import GlassboxError
from glassbox.run.layout import snapshot_path
from glassbox.run.snapshots import Snapshot, check_vocab, load_snapshot
from glassbox.text.vocab import Vocab

# U+3000 (ideographic space, the indentation of 西游记) and U+20000 (outside the BMP: two UTF-16 units).
TEXT = "悟空道：“师父。”\n　　𠀀 ab a"


def test_itos_is_sorted_unique_characters_with_counts():
    vocab = Vocab.from_text("banana")
    assert vocab.itos == ["a", "b", "n"]
    assert vocab.counts == [3, 1, 2]
    assert vocab.stoi == {"a": 0, "b": 1, "n": 2}
    assert vocab.size == 3


def test_round_trip_with_ideographic_space_and_non_bmp():
    vocab = Vocab.from_text(TEXT)
    assert "\u3000" in vocab.stoi and "\U00020000" in vocab.stoi
    ids = vocab.encode(TEXT)
    assert len(ids) == len(TEXT)  # one id per character, the non-BMP one included
    assert sorted(set(ids)) == list(range(vocab.size))
    assert vocab.decode(ids) == TEXT
    assert vocab.decode(np.array(ids, dtype=vocab.dtype)) == TEXT


def test_unknown_characters_are_listed_once_each():
    vocab = Vocab.from_text("abc")
    with pytest.raises(GlassboxError) as err:
        vocab.encode("abxyx𠀀")
    message = str(err.value)
    assert message.startswith("3 character(s) are not in the vocabulary")
    assert "'x' (U+0078), 'y' (U+0079), '𠀀' (U+20000)" in message


def test_most_frequent_ranks_by_count_then_id():
    assert Vocab.from_text("cabbcc").most_frequent(2) == [("c", 3), ("b", 2)]
    assert Vocab.from_text("ba").most_frequent(5) == [("a", 1), ("b", 1)]


def test_hash_depends_on_the_table_only():
    vocab = Vocab.from_text(TEXT)
    assert vocab.hash == Vocab.from_text(TEXT).hash
    assert len(vocab.hash) == 64
    assert vocab.hash == Vocab.from_text(TEXT + TEXT[::-1]).hash  # same characters, other counts
    assert vocab.hash != Vocab.from_text(TEXT + "z").hash  # one more character: ids change
    assert vocab.hash != Vocab(itos=vocab.itos[::-1], counts=vocab.counts[::-1]).hash


def test_save_load_round_trip_is_readable_json(tmp_path):
    vocab = Vocab.from_text(TEXT)
    path = tmp_path / "vocab.json"
    vocab.save(path)
    text = path.read_text(encoding="utf-8")
    assert "悟" in text and "\\u" not in text  # characters, not escapes
    data = json.loads(text)
    assert data["vocab_size"] == vocab.size and data["hash"] == vocab.hash
    assert data["stoi"]["悟"] == vocab.stoi["悟"] and data["counts"]["　"] == 2
    loaded = Vocab.load(path)
    assert loaded == vocab
    assert loaded.stoi == vocab.stoi and loaded.hash == vocab.hash


def _tamper_swap(data):
    data["itos"][0], data["itos"][1] = data["itos"][1], data["itos"][0]


def _tamper_rename(data):
    data["itos"][0] = "Z"  # a character the counts do not know


def _tamper_drop_hash(data):
    del data["hash"]


@pytest.mark.parametrize("tamper", [_tamper_swap, _tamper_rename, _tamper_drop_hash])
def test_tampered_vocab_is_reported_as_corrupt(tmp_path, tamper):
    path = tmp_path / "vocab.json"
    Vocab.from_text(TEXT).save(path)
    data = json.loads(path.read_text(encoding="utf-8"))
    tamper(data)
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(GlassboxError, match=r"vocab\.json is corrupt.*make prepare"):
        Vocab.load(path)


def test_truncated_vocab_is_reported_as_corrupt(tmp_path):
    path = tmp_path / "vocab.json"
    Vocab.from_text(TEXT).save(path)
    path.write_text(path.read_text(encoding="utf-8")[:50], encoding="utf-8")
    with pytest.raises(GlassboxError, match=r"vocab\.json is corrupt"):
        Vocab.load(path)


def test_missing_vocab_says_to_prepare(tmp_path):
    with pytest.raises(GlassboxError, match="no vocabulary at .*make prepare"):
        Vocab.load(tmp_path / "vocab.json")


def _vocab_of_size(n: int) -> Vocab:
    return Vocab(itos=[chr(0x10000 + i) for i in range(n)], counts=[1] * n)


def test_ids_are_little_endian_uint16_while_they_fit():
    assert Vocab.from_text(TEXT).dtype == np.dtype("<u2")
    assert _vocab_of_size(65_536).dtype == np.dtype("<u2")  # ids 0 .. 65,535 fit


def test_ids_are_uint32_past_uint16():
    vocab = _vocab_of_size(65_537)
    assert vocab.dtype == np.dtype("<u4")
    last = vocab.itos[-1]
    ids = np.array(vocab.encode(last), dtype=vocab.dtype)
    assert ids.tobytes() == (65_536).to_bytes(4, "little")
    assert vocab.decode(ids) == last


# --- a run's vocabulary against the prepared corpus -----------------------------------------------


@pytest.mark.slow
def test_a_vocabulary_mismatch_names_the_runs_corpus_and_the_command_that_fixes_it(root, reference):
    snapshot = load_snapshot(snapshot_path(reference, 0))
    processed = root / "data" / "processed" / "shakespeare"
    meta = fileio.read_json(processed / "meta.json")
    renormalized = {**meta, "inputs": {**meta["inputs"], "normalize": {**meta["inputs"]["normalize"], "nfkc": True}}}
    fileio.write_json(processed / "meta.json", renormalized)
    try:
        with pytest.raises(GlassboxError) as error:
            check_vocab(snapshot, "f" * 64, processed)
    finally:
        fileio.write_json(processed / "meta.json", meta)
    message = str(error.value)
    assert "was trained on corpus 'shakespeare'" in message
    assert 'make prepare EXPERIMENT=tiny ARGS="corpus.normalize.nfkc=false"' in message
    assert "Use experiment=" not in message  # not the circular advice to use the experiment already in use

    elsewhere = Snapshot(
        snapshot.path,
        0,
        {},
        {},
        snapshot.vocab_hash,
        {**snapshot.config, "name": "xiyouji", "corpus": {"name": "xiyouji"}},
        "",
        {},
    )
    with pytest.raises(
        GlassboxError, match="holds corpus 'shakespeare'. Use the run's own experiment: EXPERIMENT=xiyouji"
    ):
        check_vocab(elsewhere, "f" * 64, processed)
