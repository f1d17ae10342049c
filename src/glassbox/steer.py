"""`make steer`: add a "speech follows" direction to the residual stream and watch the next character move.

The direction at a layer is the mean hidden state of the prompts with a property (corpus.steering.positive)
minus that of the prompts without it (negative); α · direction is added while the model reads the held-out
prompts, and the report says how P(targets) moves, against random directions of the same norm.
glassbox/analysis/steering.py holds the experiment.

Reads  a snapshot (the latest run's last one, or run= / step= / checkpoint=; step=all: every snapshot of
       the run) and the vocabulary it was trained on.
Writes <run>/interventions/steer/<time>/: report.md, results.json, metrics.jsonl (one row per step),
       config.yaml and the W&B run (job_type steer: tables/steer, tables/steer_continuations).

    python -m glassbox.steer experiment=xiyouji step=all
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from glassbox import command_line
from glassbox.analysis.steering import SteeringSpec, steering
from glassbox.command_line import exits_cleanly
from glassbox.intervening import intervene
from glassbox.paths import CONF_DIR

KIND = "steer"


def steer(cfg: DictConfig) -> Path:
    """Steer every chosen snapshot; write the report; return its folder."""
    return intervene(cfg, KIND, SteeringSpec.from_config, steering)


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="steer")
@exits_cleanly
def main(cfg: DictConfig) -> None:
    steer(cfg)


def cli() -> None:
    """The `glassbox-steer` command, as `python -m glassbox.steer` runs it."""
    command_line.run(main)


if __name__ == "__main__":
    cli()
