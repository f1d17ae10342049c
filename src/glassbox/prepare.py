"""Stage 1, `make prepare`: corpus → vocabulary → token files.

Reads  conf/corpus/<name>.yaml and the cached text data/raw/<file> (downloaded if missing), or a
       text file of your own (corpus=local corpus.path=<file>: its sha256 is trusted on first use).
Writes data/processed/<corpus>/{train.bin, val.bin, vocab.json, meta.json}.

glassbox/text/processed.py builds the files and knows when they are up to date.
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from glassbox import command_line
from glassbox.command_line import exits_cleanly
from glassbox.paths import CONF_DIR
from glassbox.run.tracking import Tracker, dataset_artifact_name, wandb_mode
from glassbox.text.processed import (
    OUTPUT_FILES,
    build,
    is_up_to_date,
    prepare_inputs,
    source_text,
    warn_if_the_text_changed,
)
from glassbox.text.vocab import Vocab

log = logging.getLogger(__name__)


def prepare(cfg: DictConfig, run_dir: Path | None = None) -> Path:
    """Build (or confirm up to date) the processed corpus; `run_dir` holds this stage's W&B run."""
    corpus = cfg.corpus
    out_dir = Path(cfg.paths.processed_dir)
    wandb_mode(cfg.wandb.mode)  # a bad W&B mode fails before anything is downloaded or written
    raw_path, sha256 = source_text(corpus, Path(cfg.paths.raw_dir))
    inputs = prepare_inputs(corpus, sha256)
    if is_up_to_date(out_dir, inputs):
        log.info("%s is up to date with %s and this config: nothing to do.", out_dir, raw_path)
        return out_dir
    warn_if_the_text_changed(out_dir, raw_path, sha256)

    meta, vocab = build(corpus, raw_path, inputs, out_dir, cfg.model.block_size)  # training checks its own again
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
