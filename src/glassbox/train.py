"""Stage 2, `make train`: train the char GPT and record the emergence story at every snapshot.

Reads  data/processed/<corpus>/ (the prepare stage's files).
Writes outputs/<experiment>/<run>/ (run/layout.py names every file) and points
       outputs/<experiment>/latest at it.

An interrupted run is continued by running the same command again (run/resume.py says how);
Ctrl-C or SIGTERM stop it at the end of the current step, with a snapshot to resume from.
The loop itself is training/loop.py.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from glassbox import command_line
from glassbox.command_line import exits_cleanly
from glassbox.config import validate
from glassbox.paths import CONF_DIR
from glassbox.run import distributed
from glassbox.training.loop import Trainer


def train(cfg: DictConfig, run_dir: Path) -> Path:
    """Train in a new run at `run_dir`, or continue an interrupted run (train.resume); return the run's directory."""
    settings = validate(cfg, "train", training=True)  # before anything is read or written: a bad config leaves no run
    return Trainer(settings, cfg, run_dir).train()


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
@exits_cleanly
def main(cfg: DictConfig) -> None:
    train(cfg, Path(HydraConfig.get().runtime.output_dir))  # Ctrl-C: `Interrupted`, which exits_cleanly reports


def cli() -> None:
    """The `glassbox-train` command, as `python -m glassbox.train` and torchrun run it."""
    distributed.start()  # before Hydra, so that every rank of a torchrun job shares one run directory
    try:
        command_line.run(main)
    finally:
        distributed.stop()


if __name__ == "__main__":
    cli()
