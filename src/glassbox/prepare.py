"""Stage 1, `make prepare`: corpus → vocabulary → token files.

Reads  conf/corpus/<name>.yaml and the cached text data/raw/<file> (downloaded if missing), or a
       text file of your own (corpus=local corpus.path=<file>: its sha256 is trusted on first use).
Writes data/processed/<corpus>/{train.bin, val.bin, vocab.json, meta.json}.

train.bin / val.bin are the token ids as raw little-endian uint16 (uint32 past 65,535
characters): the first and last part of the text, in order. meta.json is written last and
records every input and the sha256 of every output, so a rerun with the same inputs knows it
is up to date and a half-finished run is never mistaken for a finished one.
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
import numpy as np
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from glassbox import command_line, fileio
from glassbox.command_line import exits_cleanly
from glassbox.errors import GlassboxError
from glassbox.fileio import sha256_of
from glassbox.paths import CONF_DIR
from glassbox.run.tracking import Tracker, dataset_artifact_name, wandb_mode
from glassbox.text.corpus import decode, fetch, local_file, mojibake_warning, normalize
from glassbox.text.vocab import Vocab

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
OUTPUT_FILES = ("train.bin", "val.bin", "vocab.json")


def source_text(corpus: DictConfig, raw_dir: Path) -> tuple[Path, str]:
    """The corpus's text file and its sha256: a file of the user's (corpus.path) or the download cache."""
    if corpus.get("path"):
        return local_file(corpus.path, corpus.sha256)
    if not corpus.url:
        raise GlassboxError(
            f"corpus '{corpus.name}' has neither a file nor a URL: give your text file with "
            'corpus.path=<file>, e.g. make prepare CORPUS=local ARGS="corpus.path=notes.txt"'
        )
    return fetch(corpus.url, corpus.sha256, raw_dir / corpus.file), corpus.sha256


def prepare_inputs(cfg: DictConfig, sha256: str) -> dict:
    """Everything the outputs depend on; a change in any of it means rebuilding."""
    corpus = cfg.corpus
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


def prepare(cfg: DictConfig, run_dir: Path | None = None) -> Path:
    """Build (or confirm up to date) the processed corpus; `run_dir` holds this stage's W&B run."""
    corpus = cfg.corpus
    out_dir = Path(cfg.paths.processed_dir)
    wandb_mode(cfg.wandb.mode)  # a bad W&B mode fails before anything is downloaded or written
    raw_path, sha256 = source_text(corpus, Path(cfg.paths.raw_dir))
    inputs = prepare_inputs(cfg, sha256)
    if is_up_to_date(out_dir, inputs):
        log.info("%s is up to date with %s and this config: nothing to do.", out_dir, raw_path)
        return out_dir
    warn_if_the_text_changed(out_dir, raw_path, sha256)

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
    block_size = cfg.model.block_size  # the model this command configures; training checks its own again
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
    log_summary(corpus.name, meta, vocab)

    run_dir = run_dir or Path(cfg.paths.output_dir) / "prepare" / corpus.name  # W&B files stay out of data/
    with Tracker(cfg, run_dir, job_type="prepare", name=f"prepare-{corpus.name}") as tracker:
        tracker.log_artifact(
            dataset_artifact_name(corpus.name),
            "dataset",
            [raw_path, *(out_dir / name for name in (*OUTPUT_FILES, "meta.json"))],
            metadata=meta,
        )
        tracker.summary(
            {
                "n_chars": meta["n_chars"],
                "vocab_size": vocab.size,
                **{f"split/{k}": v for k, v in meta["split"].items()},
            }
        )
    log.info(
        "wrote %s/{%s}; this stage's log and W&B run: %s", out_dir, ",".join((*OUTPUT_FILES, "meta.json")), run_dir
    )
    return out_dir


def log_summary(name: str, meta: dict, vocab: Vocab) -> None:
    top = "  ".join(f"{ch!r}:{n}" for ch, n in vocab.most_frequent(10))
    log.info(
        f"prepared {name}: {meta['n_chars']:,} characters ({meta['encoding']}), vocabulary {vocab.size:,} "
        f"(hash {vocab.hash[:12]}), {vocab.dtype.name} ids\n"
        f"  split: train {meta['split']['train']:,}, val {meta['split']['val']:,}\n"
        f"  most frequent: {top}"
    )


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="prepare")
@exits_cleanly
def main(cfg: DictConfig) -> None:
    prepare(cfg, run_dir=Path(HydraConfig.get().runtime.output_dir))


def cli() -> None:
    """The `glassbox-prepare` command, as `python -m glassbox.prepare` runs it."""
    command_line.run(main)


if __name__ == "__main__":
    cli()
