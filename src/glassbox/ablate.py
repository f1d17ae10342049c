"""`make ablate`: knock out each attention head in turn and see what the model loses.

A head's output is replaced by its mean over validation windows (or by zeros) while the rest of the
model runs as trained; the loss on those windows and the probe prompts' next-character probability
say which heads matter. The experiment is in glassbox/analysis/ablation.py.

Reads  a snapshot (the latest run's last one, or run= / step= / checkpoint=; step=all: every snapshot of
       the run) and the experiment's prepared corpus (its validation split; the vocabulary must be the
       one the run was trained on).
Writes <run>/interventions/ablate/<time>/: report.md, results.json, metrics.jsonl (one row per step),
       config.yaml and the W&B run (job_type ablate: tables/ablate).

    python -m glassbox.ablate experiment=xiyouji step=all
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from glassbox import command_line
from glassbox.analysis.ablation import AblationSpec, head_ablation
from glassbox.command_line import exits_cleanly
from glassbox.config import validate
from glassbox.intervening import run_intervention
from glassbox.paths import CONF_DIR
from glassbox.run.layout import pick_snapshots
from glassbox.run.snapshots import check_vocab, load_snapshot
from glassbox.text.tokens import TokenData

KIND = "ablate"


def ablate(cfg: DictConfig) -> Path:
    """Ablate every head of every chosen snapshot; write the report; return its folder."""
    settings = validate(cfg, KIND)
    paths = pick_snapshots(settings.paths.output_dir, settings.name, settings.run, settings.step, settings.checkpoint)
    last = load_snapshot(paths[-1])
    data = TokenData(settings.paths.processed_dir)
    check_vocab(last, data.vocab.hash, data.dir)
    vocab = data.vocab
    spec = AblationSpec.from_config(settings, data, last.model_args)  # every input checked before anything is written
    experiment = lambda model: head_ablation(model, spec, vocab.itos)
    return run_intervention(cfg, KIND, (paths, last, vocab), spec, experiment)


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="ablate")
@exits_cleanly
def main(cfg: DictConfig) -> None:
    ablate(cfg)


def cli() -> None:
    """The `glassbox-ablate` command, as `python -m glassbox.ablate` runs it."""
    command_line.run(main)


if __name__ == "__main__":
    cli()
