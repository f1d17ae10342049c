"""corpus.py: fetch (cache, download, hash check), decode and normalize, and an encoding forced on the
corpus: a byte order mark dropped, mojibake flagged loudly."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from glassbox.errors import GlassboxError
from glassbox.fileio import sha256_of
from glassbox.prepare import prepare
from glassbox.text.corpus import decode, fetch, mojibake_warning, normalize
from helpers import find_corpus

TEXT = "第一回　灵根育孕源流出\n悟空道：“师父，山高水远。”\nRoses are red.\n"
UNREACHABLE = "http://127.0.0.1:9/corpus.txt"  # the discard port: refused at once, no network touched


# --- decode ----------------------------------------------------------------------------------


def test_auto_decodes_gb18030_and_records_it():
    raw = TEXT.encode("gb18030")
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")  # the case auto must fall through
    assert decode(raw) == (TEXT, "gb18030")


def test_auto_decodes_utf8_without_bom():
    assert decode(TEXT.encode("utf-8")) == (TEXT, "utf-8")


def test_auto_drops_the_utf8_bom():
    raw = b"\xef\xbb\xbf" + TEXT.encode("utf-8")
    text, encoding = decode(raw)
    assert text == TEXT and "\ufeff" not in text
    assert encoding == "utf-8"


def test_explicit_encoding_is_used_without_fallback():
    assert decode(TEXT.encode("utf-16"), "utf-16") == (TEXT, "utf-16")
    with pytest.raises(GlassboxError, match="byte offset"):
        decode(TEXT.encode("gb18030"), "utf-8")


def test_unknown_encoding_name():
    with pytest.raises(GlassboxError, match="unknown encoding 'latin-42'"):
        decode(b"abc", "latin-42")


def test_undecodable_bytes_name_the_byte_offset():
    raw = b"plain ascii\n" * 3 + b"\xff\xff tail"  # 0xFF starts no character in UTF-8 or GB18030
    with pytest.raises(GlassboxError) as err:
        decode(raw)
    message = str(err.value)
    assert "byte offset 36" in message
    assert "utf-8" in message and "gb18030" in message
    assert "corpus.encoding" in message


# --- normalize -------------------------------------------------------------------------------


def test_newlines_become_lf():
    assert normalize("a\r\nb\rc\nd\r\n") == "a\nb\nc\nd\n"


def test_defaults_change_nothing_but_newlines():
    text = "　　第一回\n  Ａ１！ indented\n\ttab\n𠀀 end"
    assert normalize(text) == text
    assert normalize(text.replace("\n", "\r\n")) == text


def test_newlines_can_be_kept():
    assert normalize("a\r\nb\r", newlines=False) == "a\r\nb\r"


def test_strip_indent_drops_leading_blanks_only():
    text = "　　第一回 灵根\n  two  words \n\tthree\nfour"
    assert normalize(text, strip_indent=True) == "第一回 灵根\ntwo  words \nthree\nfour"


def test_strip_indent_works_on_crlf_text():
    assert normalize("  a\r\n  b", strip_indent=True) == "a\nb"


def test_nfkc_folds_full_width_forms():
    assert normalize("Ａ１！ａ", nfkc=True) == "A1!a"
    assert normalize("Ａ１！ａ") == "Ａ１！ａ"


# --- fetch -----------------------------------------------------------------------------------


def write(path: Path, data: bytes) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def test_sha256_of_matches_hashlib(tmp_path):
    data = b"x" * (3 << 20)  # more than one read chunk
    digest = write(tmp_path / "big.bin", data)
    assert sha256_of(tmp_path / "big.bin") == digest


def test_cached_file_with_right_hash_is_used_without_download(tmp_path):
    cache = tmp_path / "raw" / "corpus.txt"
    digest = write(cache, TEXT.encode())
    mtime = cache.stat().st_mtime_ns
    assert fetch(UNREACHABLE, digest, cache) == cache
    assert cache.stat().st_mtime_ns == mtime


def test_download_fills_the_cache(tmp_path):
    source = tmp_path / "server" / "corpus.txt"
    digest = write(source, TEXT.encode())
    cache = tmp_path / "raw" / "corpus.txt"
    assert fetch(source.as_uri(), digest, cache) == cache
    assert cache.read_bytes() == TEXT.encode()
    assert sorted(p.name for p in cache.parent.iterdir()) == ["corpus.txt"]


def test_download_with_wrong_hash_leaves_no_file(tmp_path):
    source = tmp_path / "server" / "corpus.txt"
    write(source, TEXT.encode())
    cache = tmp_path / "raw" / "corpus.txt"
    with pytest.raises(GlassboxError, match="expected sha256 " + "0" * 64):
        fetch(source.as_uri(), "0" * 64, cache)
    assert list(cache.parent.iterdir()) == []


def test_missing_corpus_offline_says_where_to_put_it(tmp_path):
    cache = tmp_path / "raw" / "corpus.txt"
    with pytest.raises(GlassboxError) as err:
        fetch(UNREACHABLE, "ab" * 32, cache)
    message = str(err.value)
    assert "not cached" in message
    assert UNREACHABLE in message
    assert str(cache.resolve()) in message
    assert "ab" * 32 in message
    assert not cache.exists()


def test_stale_cache_names_both_hashes(tmp_path):
    cache = tmp_path / "raw" / "corpus.txt"
    found = write(cache, b"some other text")
    with pytest.raises(GlassboxError) as err:
        fetch(UNREACHABLE, "cd" * 32, cache)
    message = str(err.value)
    assert f"has sha256 {found}, expected {'cd' * 32}" in message
    assert UNREACHABLE in message and str(cache.resolve()) in message
    assert cache.read_bytes() == b"some other text"  # a failed download does not destroy it


# --- forced encodings -----------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16-le", "utf-16-be", "utf-32-le"])
def test_a_byte_order_mark_is_never_a_character_of_the_text(encoding):
    assert decode("\ufeff悟空道".encode(encoding), encoding)[0] == "悟空道"


def test_gb18030_forced_through_latin_1_is_flagged_loudly(workdir, make_cfg, caplog):
    raw = find_corpus("xiyouji.txt").read_bytes()
    text, _ = decode(raw, "latin-1")
    warning = mojibake_warning(text, "latin-1")
    assert "looks like mojibake" in warning and "'£'" in warning and "corpus.encoding=auto" in warning
    assert mojibake_warning(raw.decode("gb18030"), "gb18030") is None  # the real decoding: Chinese text
    french = "Là où il était, l'été dernier, à côté de la forêt, nous avons mangé des crêpes. " * 50
    assert mojibake_warning(decode(french.encode("latin-1"), "latin-1")[0], "latin-1") is None  # real Latin-1 text
    prepare(make_cfg("prepare", ["experiment=xiyouji", "corpus.encoding=latin-1", "wandb.mode=disabled"]))
    assert [r.levelname for r in caplog.records if "mojibake" in r.getMessage()] == ["WARNING"]
