"""The processed corpus (data/processed/<corpus>/): its inputs, whether it is up to date, and building it.

train.bin / val.bin are the token ids as raw little-endian uint16 (uint32 past 65,535
characters): the first and last part of the text, in order. meta.json is written last and
records every input and the sha256 of every output, so a rerun with the same inputs knows it
is up to date and a half-finished run is never mistaken for a finished one.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from glassbox import fileio
from glassbox.errors import GlassboxError
from glassbox.fileio import sha256_of
from glassbox.text.corpus import decode, fetch, local_file, mojibake_warning, normalize
from glassbox.text.synthetic import write_repeated_segments
from glassbox.text.vocab import Vocab

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
OUTPUT_FILES = ("train.bin", "val.bin", "vocab.json")


def source_text(corpus: DictConfig, raw_dir: Path) -> tuple[Path, str]:
    """The corpus's text file and its sha256: a file of the user's (corpus.path), a text generated from
    corpus.synthetic (written where a download is cached), or the download cache."""
    if corpus.get("path"):
        return local_file(corpus.path, corpus.sha256)
    if corpus.get("synthetic"):
        return write_repeated_segments(corpus.synthetic, raw_dir / corpus.file)
    if not corpus.url:
        raise GlassboxError(
            f"corpus '{corpus.name}' has neither a file nor a URL: give your text file with "
            'corpus.path=<file>, e.g. make prepare CORPUS=local ARGS="corpus.path=notes.txt"'
        )
    return fetch(corpus.url, corpus.sha256, raw_dir / corpus.file), corpus.sha256


def prepare_inputs(corpus: DictConfig, sha256: str) -> dict:
    """Everything the outputs depend on; a change in any of it means rebuilding."""
    return {
        "format_version": FORMAT_VERSION,
        "corpus": corpus.name,
        "url": corpus.url,
        "sha256": sha256,
        "encoding_requested": corpus.encoding,
        "normalize": OmegaConf.to_container(corpus.normalize),
        "val_fraction": corpus.val_fraction,
    }


def is_up_to_date(out_dir: Path, inputs: dict) -> bool:
    meta_path = out_dir / "meta.json"
    if not meta_path.exists():
        return False
    meta = fileio.read_json(meta_path)
    if meta.get("inputs") != inputs:
        return False
    return all(
        (out_dir / name).exists() and sha256_of(out_dir / name) == digest
        for name, digest in meta.get("files", {}).items()
    )


def warn_if_the_text_changed(out_dir: Path, raw_path: Path, sha256: str) -> None:
    """A file trusted on first use that changed since: say so, as the runs trained on it no longer match."""
    meta_path = out_dir / "meta.json"
    before = fileio.read_json(meta_path)["inputs"]["sha256"] if meta_path.exists() else None
    if before and before != sha256:
        log.warning(
            f"{raw_path} changed since it was prepared (sha256 {before[:12]}… → {sha256[:12]}…): "
            f"rebuilding {out_dir}; runs trained on the old text no longer match its vocabulary"
        )


def split_ids(ids: np.ndarray, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    if not 0 < val_fraction < 1:
        raise GlassboxError(f"corpus.val_fraction must be between 0 and 1, got {val_fraction}")
    n_val = int(round(len(ids) * val_fraction))
    return ids[: len(ids) - n_val], ids[len(ids) - n_val :]


def build(corpus: DictConfig, raw_path: Path, inputs: dict, out_dir: Path, block_size: int) -> tuple[dict, Vocab]:
    """Decode, normalise and split the text at `raw_path` into token files in `out_dir`, for a model that reads
    `block_size` characters; return meta.json's record and the vocabulary."""
    text, encoding = decode(raw_path.read_bytes(), corpus.encoding)
    warning = mojibake_warning(text, encoding)
    if warning:
        log.warning("\n%s\n%s\n%s", "!" * 72, warning, "!" * 72)  # loud: every later stage trusts this text
    text = normalize(text, **corpus.normalize)
    if not text:
        raise GlassboxError(f"{raw_path} is empty after decoding and normalization: there is nothing to train on")
    vocab = Vocab.from_text(text)
    ids = np.array(vocab.encode(text), dtype=vocab.dtype)
    train_ids, val_ids = split_ids(ids, corpus.val_fraction)
    shortest = min(len(train_ids), len(val_ids))
    if shortest <= block_size:
        raise GlassboxError(
            f"the corpus is too short: its {'validation' if len(val_ids) <= len(train_ids) else 'training'} split "
            f"has {shortest} characters, but the model's block_size is {block_size} and needs at least "
            f"{block_size + 1} per split. Use a longer text, a smaller model.block_size, or change "
            "corpus.val_fraction."
        )

    fileio.remove(out_dir / "meta.json")  # the old meta must not vouch for new files
    fileio.write_bytes(out_dir / "train.bin", train_ids.tobytes())
    fileio.write_bytes(out_dir / "val.bin", val_ids.tobytes())
    vocab.save(out_dir / "vocab.json")
    meta = {
        "inputs": inputs,
        "raw_file": str(raw_path),
        "encoding": encoding,
        "n_chars": len(text),
        "vocab_size": vocab.size,
        "vocab_hash": vocab.hash,
        "dtype": vocab.dtype.str,
        "split": {"train": len(train_ids), "val": len(val_ids)},
        "files": {name: sha256_of(out_dir / name) for name in OUTPUT_FILES},
    }
    fileio.write_json(out_dir / "meta.json", meta)
    return meta, vocab
