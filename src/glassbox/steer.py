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
from glassbox.config import validate
from glassbox.intervening import run_intervention
from glassbox.paths import CONF_DIR
from glassbox.run.layout import pick_snapshots
from glassbox.run.snapshots import load_snapshot

KIND = "steer"


def steer(cfg: DictConfig) -> Path:
    """Steer every chosen snapshot; write the report; return its folder."""
    settings = validate(cfg, KIND)
    paths = pick_snapshots(settings.paths.output_dir, settings.name, settings.run, settings.step, settings.checkpoint)
    last = load_snapshot(paths[-1])
    vocab = last.vocab()
    spec = SteeringSpec.from_config(settings, vocab, last.model_args)  # every input checked before anything is written
    experiment = lambda model: steering(model, spec, vocab.itos)
    return run_intervention(cfg, KIND, (paths, last, vocab), spec, experiment)


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="steer")
@exits_cleanly
def main(cfg: DictConfig) -> None:
    steer(cfg)


def cli() -> None:
    """The `glassbox-steer` command, as `python -m glassbox.steer` runs it."""
    command_line.run(main)


if __name__ == "__main__":
    cli()
