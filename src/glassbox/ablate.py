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
from glassbox.intervening import intervene
from glassbox.paths import CONF_DIR

KIND = "ablate"


def ablate(cfg: DictConfig) -> Path:
    """Ablate every head of every chosen snapshot; write the report; return its folder."""
    return intervene(cfg, KIND, AblationSpec.from_config, head_ablation, reads_corpus=True)


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="ablate")
@exits_cleanly
def main(cfg: DictConfig) -> None:
    ablate(cfg)


def cli() -> None:
    """The `glassbox-ablate` command, as `python -m glassbox.ablate` runs it."""
    command_line.run(main)


if __name__ == "__main__":
    cli()
