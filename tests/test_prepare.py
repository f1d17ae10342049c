"""prepare.py: the stage in-process on synthetic corpora, its bad inputs as a user meets them
(subprocess: real exit code and stderr), its W&B run, and end to end on the real corpora."""

from __future__ import annotations

import errno
import hashlib
import logging
from pathlib import Path

import numpy as np
import pytest

from glassbox import fileio
from glassbox.errors import GlassboxError
from glassbox.prepare import prepare
from glassbox.text.processed import split_ids
from glassbox.text.vocab import Vocab
from helpers import CORPUS_FILES, find_corpus, run_stage, wandb_records

UNREACHABLE = "http://127.0.0.1:9/corpus.txt"  # refused at once: no test touches the network
NAME = "synthetic"
# 100 lines with CRLF ends and U+3000 indentation, 3,690 characters once normalized: each 10 %
# split is longer than the default model's block_size (128) + 1.
TEXT = "".join(f"　　第{i}回 悟空道：“师父，山高水远。” Roses are red.\r\n" for i in range(100))
NORMALIZED = TEXT.replace("\r\n", "\n")


def place_corpus(workdir: Path, data: bytes, file_name: str = "synthetic.txt") -> list[str]:
    """Put `data` in the corpus cache; the overrides that make it this run's corpus."""
    (workdir / "data" / "raw" / file_name).write_bytes(data)
    sha256 = hashlib.sha256(data).hexdigest()
    return [f"corpus.name={NAME}", f"corpus.file={file_name}", f"corpus.sha256={sha256}", f"corpus.url={UNREACHABLE}"]


def processed(workdir: Path) -> Path:
    return workdir / "data" / "processed" / NAME


def file_states(folder: Path) -> dict[str, tuple[int, int]]:
    """name -> (inode, mtime) of every file: equal before and after means nothing was written."""
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


def read_back(out_dir: Path) -> tuple[str, str, dict]:
    """Decode train.bin and val.bin with vocab.json, as a later stage would."""
    meta = fileio.read_json(out_dir / "meta.json")
    vocab = Vocab.load(out_dir / "vocab.json")
    train, val = (np.fromfile(out_dir / f"{split}.bin", dtype=np.dtype(meta["dtype"])) for split in ("train", "val"))
    return vocab.decode(train), vocab.decode(val), meta


@pytest.fixture
def prepare_synthetic(workdir, make_cfg):
    """prepare(cfg) in-process on TEXT, W&B off; extra overrides per call."""
    corpus = place_corpus(workdir, TEXT.encode("gb18030"))

    def _prepare(*overrides: str) -> Path:
        return prepare(make_cfg("prepare", [*corpus, "wandb.mode=disabled", *overrides]))

    return _prepare


# --- split -----------------------------------------------------------------------------------


def test_split_is_first_90_and_last_10_percent():
    ids = np.arange(1000)
    train, val = split_ids(ids, 0.1)
    assert train.tolist() == list(range(900)) and val.tolist() == list(range(900, 1000))
    train, val = split_ids(ids, 0.25)
    assert len(train) == 750 and len(val) == 250


@pytest.mark.parametrize("fraction", [0, 1, -0.1])
def test_split_rejects_fractions_outside_0_1(fraction):
    with pytest.raises(GlassboxError, match="val_fraction"):
        split_ids(np.arange(10), fraction)


# --- prepare in-process ----------------------------------------------------------------------


def test_prepare_writes_splits_that_decode_to_the_normalized_text(prepare_synthetic, caplog):
    caplog.set_level(logging.INFO)
    out_dir = prepare_synthetic()
    normalized = NORMALIZED
    train, val, meta = read_back(out_dir)
    assert train + val == normalized
    assert len(val) == round(len(normalized) * 0.1) and normalized.endswith(val)
    assert sorted(p.name for p in out_dir.iterdir()) == ["meta.json", "train.bin", "val.bin", "vocab.json"]
    assert meta["encoding"] == "gb18030"
    assert meta["inputs"]["normalize"] == {"newlines": True, "strip_indent": False, "nfkc": False}
    assert meta["inputs"]["url"] == UNREACHABLE and meta["inputs"]["val_fraction"] == 0.1
    assert meta["n_chars"] == len(normalized)
    assert meta["split"] == {"train": len(train), "val": len(val)}
    assert meta["vocab_size"] == len(set(normalized)) and meta["dtype"] == "<u2"
    assert meta["vocab_hash"] == Vocab.from_text(normalized).hash
    assert "\r" not in Vocab.load(out_dir / "vocab.json").stoi
    summary = caplog.text
    assert f"prepared {NAME}: {len(normalized):,} characters (gb18030)" in summary
    assert f"train {len(train):,}, val {len(val):,}" in summary and "most frequent:" in summary
    assert caplog.messages[-1].startswith(f"wrote {out_dir}/{{train.bin,val.bin,vocab.json,meta.json}}")


def test_rerun_is_up_to_date_and_writes_nothing(prepare_synthetic, caplog):
    caplog.set_level(logging.INFO)
    out_dir = prepare_synthetic()
    before = file_states(out_dir)
    caplog.clear()
    prepare_synthetic()
    assert "up to date" in caplog.text
    assert file_states(out_dir) == before


@pytest.mark.parametrize(
    "override, changed",
    [
        ("corpus.val_fraction=0.2", lambda meta: meta["split"]["val"] == round(len(NORMALIZED) * 0.2)),
        ("corpus.normalize.strip_indent=true", lambda meta: meta["n_chars"] == len(NORMALIZED) - 200),
        ("corpus.normalize.newlines=false", lambda meta: meta["n_chars"] == len(TEXT)),
    ],
)
def test_a_config_change_rebuilds(prepare_synthetic, caplog, override, changed):
    caplog.set_level(logging.INFO)
    out_dir = prepare_synthetic()
    caplog.clear()
    prepare_synthetic(override)
    assert "up to date" not in caplog.text
    train, val, meta = read_back(out_dir)
    assert changed(meta)
    assert len(train + val) == meta["n_chars"]


def test_a_changed_output_file_is_rebuilt(prepare_synthetic, caplog):
    caplog.set_level(logging.INFO)
    out_dir = prepare_synthetic()
    good = (out_dir / "val.bin").read_bytes()
    (out_dir / "val.bin").write_bytes(good[:-2])
    caplog.clear()
    prepare_synthetic()
    assert "up to date" not in caplog.text
    assert (out_dir / "val.bin").read_bytes() == good


@pytest.mark.parametrize(
    "failure, raised",
    [(KeyboardInterrupt(), KeyboardInterrupt), (OSError(errno.ENOSPC, "No space left on device"), GlassboxError)],
    ids=["killed", "disk-full"],
)
def test_interrupted_rebuild_leaves_nothing_to_trust(prepare_synthetic, monkeypatch, failure, raised):
    """Fail after val.bin's bytes are written but before the rename: no meta.json vouches for the
    mixed files, the old val.bin is whole, no temporary file is left, and a rerun repairs it."""
    out_dir = prepare_synthetic()
    old_val = (out_dir / "val.bin").read_bytes()
    real_fsync = fileio._fsync

    def failing_fsync(path):
        if path.name.startswith(".val.bin.tmp"):
            raise failure
        real_fsync(path)

    monkeypatch.setattr(fileio, "_fsync", failing_fsync)
    with pytest.raises(raised):
        prepare_synthetic("corpus.val_fraction=0.2")
    assert sorted(p.name for p in out_dir.iterdir()) == ["train.bin", "val.bin", "vocab.json"]
    assert (out_dir / "val.bin").read_bytes() == old_val

    monkeypatch.undo()
    prepare_synthetic("corpus.val_fraction=0.2")
    train, val, meta = read_back(out_dir)
    assert train + val == NORMALIZED and meta["split"]["val"] == round(len(NORMALIZED) * 0.2)


# --- bad input, as the user meets it -----------------------------------------------------------


def assert_fails(result, *snippets: str) -> None:
    assert result.returncode != 0, result.stdout
    for snippet in snippets:
        assert snippet in result.stderr, result.stderr


@pytest.mark.slow
def test_missing_corpus_offline(workdir):
    raw_dir = workdir / "empty-cache"
    overrides = ["corpus=shakespeare", f"paths.raw_dir={raw_dir}", f"corpus.url={UNREACHABLE}"]
    result = run_stage("prepare", overrides, workdir)
    assert result.returncode == 2
    assert_fails(
        result,
        f"Download it from {UNREACHABLE}",
        f"place it at {raw_dir.resolve() / 'tinyshakespeare.txt'}",
        "expected sha256 86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
    )
    assert "Traceback" not in result.stderr
    assert not (workdir / "data" / "processed").exists()


@pytest.mark.slow
def test_cached_file_with_wrong_sha256(workdir):
    overrides = place_corpus(workdir, TEXT.encode())
    found = hashlib.sha256(TEXT.encode()).hexdigest()
    result = run_stage("prepare", [*overrides, "corpus.sha256=" + "0" * 64], workdir)
    assert result.returncode == 2
    assert_fails(result, f"has sha256 {found}, expected {'0' * 64}", "downloading it again failed")
    assert not (workdir / "data" / "processed").exists()


@pytest.mark.slow
@pytest.mark.parametrize(
    "data, snippets",
    [
        (TEXT.encode() + b"\xff\xff", ["could not be decoded", f"byte offset {len(TEXT.encode())}"]),
        (b"", ["is empty after decoding"]),
        (TEXT[:1000].encode(), ["too short", "the model's block_size is 128", "at least 129"]),
    ],
    ids=["undecodable", "empty", "too-short"],
)
def test_bad_corpus_fails_and_keeps_the_good_build(prepare_synthetic, workdir, data, snippets):
    out_dir = prepare_synthetic()
    before = file_states(out_dir)
    overrides = place_corpus(workdir, data, file_name="bad.txt")
    result = run_stage("prepare", overrides, workdir)
    assert result.returncode == 2
    assert_fails(result, *snippets)
    assert "Traceback" not in result.stderr
    assert file_states(out_dir) == before


@pytest.mark.slow
def test_unknown_corpus_lists_the_options(workdir):
    result = run_stage("prepare", ["corpus=nope"], workdir)
    assert_fails(result, "Could not find 'corpus/nope'", "shakespeare", "xiyouji")
    assert not (workdir / "data" / "processed").exists()


@pytest.mark.slow
def test_unwritable_output_directory(workdir):
    """A path below a regular file cannot be created, even by root (for whom chmod is no barrier)."""
    blocker = workdir / "not-a-dir"
    blocker.write_text("")
    overrides = place_corpus(workdir, TEXT.encode())
    overrides += [f"paths.raw_dir={workdir / 'data' / 'raw'}", f"paths.data_dir={blocker}/x"]
    result = run_stage("prepare", overrides, workdir)
    assert result.returncode == 2
    assert_fails(result, f"could not write {blocker}/x/processed/{NAME}", "Not a directory")
    assert "Traceback" not in result.stderr
    assert not (workdir / "data" / "processed").exists()


# --- W&B -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_prepare_logs_the_dataset_artifact_offline(workdir):
    overrides = place_corpus(workdir, TEXT.encode())
    result = run_stage("prepare", overrides, workdir)
    assert result.returncode == 0, result.stderr
    meta = fileio.read_json(processed(workdir) / "meta.json")

    runs = workdir / "outputs" / "prepare" / NAME
    records = wandb_records(runs)
    assert records, f"no offline W&B run under {runs}"
    run = next(r["run"] for r in records if r["type"] == "run")
    assert run["job_type"] == "prepare"
    artifact = next(r["artifact"] for r in records if r["type"] == "artifact")
    assert artifact["name"] == f"dataset-{NAME}" and artifact["type"] == "dataset"
    logged = {entry["path"] for entry in artifact["manifest"]["contents"]}
    assert logged == {"synthetic.txt", "train.bin", "val.bin", "vocab.json", "meta.json"}
    summary = {}
    for record in records:
        if record["type"] == "summary":
            summary.update(record["summary"]["update"])
    assert summary["vocab_size"] == meta["vocab_size"] and summary["n_chars"] == meta["n_chars"]
    assert not (workdir / "wandb").exists() and not (processed(workdir) / "wandb").exists()


# --- end to end on the real corpora ----------------------------------------------------------


@pytest.mark.e2e
@pytest.mark.parametrize(
    "corpus, encoding, vocab_size, n_chars",
    [("xiyouji", "gb18030", 4490, 732153), ("shakespeare", "utf-8", 65, 1115394)],
)
def test_prepare_real_corpus(workdir, corpus, encoding, vocab_size, n_chars):
    raw = find_corpus(CORPUS_FILES[corpus])  # skips when the corpus is not cached
    result = run_stage("prepare", [f"corpus={corpus}", "wandb.mode=disabled"], workdir)
    assert result.returncode == 0, result.stderr
    train, val, meta = read_back(workdir / "data" / "processed" / corpus)
    expected = raw.read_bytes().decode(encoding).replace("\r\n", "\n").replace("\r", "\n")
    assert train + val == expected
    assert (meta["encoding"], meta["vocab_size"], meta["n_chars"]) == (encoding, vocab_size, n_chars)
    assert meta["split"] == {"train": n_chars - round(n_chars * 0.1), "val": round(n_chars * 0.1)}
    assert f"vocabulary {vocab_size:,}" in result.stdout


# --- a corpus too short for the model -------------------------------------------------------------


def test_the_corpus_length_is_checked_against_the_configured_model(workdir, make_cfg):
    short = workdir / "data" / "raw" / "short.txt"
    short.write_bytes(find_corpus("tinyshakespeare.txt").read_bytes()[:2000])  # 200 characters of validation text
    corpus = [
        "corpus.name=short",
        "corpus.file=short.txt",
        f"corpus.sha256={fileio.sha256_of(short)}",
        "wandb.mode=disabled",
    ]
    with pytest.raises(GlassboxError, match=r"200 characters, but the model's block_size is 256 .* at least 257"):
        prepare(make_cfg("prepare", [*corpus, "model=big"]))
    assert prepare(make_cfg("prepare", [*corpus, "model=tiny"])).is_dir()  # block 32: long enough
