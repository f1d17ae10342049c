"""`make patch`: run the target prompt with the source prompt's hidden state, block by block.

Patching the 道 of 悟空道 ("said") into 修道 ("to cultivate the Way") and watching whether the model
now expects "：" shows in which blocks the "said" meaning sits at that position. The experiment is in
glassbox/analysis/patching.py.

Reads  a snapshot (the latest run's last one, or run= / step= / checkpoint=; step=all: every snapshot of
       the run) and the vocabulary it was trained on.
Writes <run>/interventions/patch/<time>/: report.md, results.json, metrics.jsonl (one row per step),
       config.yaml and the W&B run (job_type patch: tables/patch).

    python -m glassbox.patch experiment=xiyouji source=悟空道 target=修道 layer=all position=-1
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from glassbox import command_line
from glassbox.analysis.patching import PatchSpec, patching
from glassbox.command_line import exits_cleanly
from glassbox.intervening import intervene
from glassbox.paths import CONF_DIR

KIND = "patch"


def patch(cfg: DictConfig) -> Path:
    """Patch on every chosen snapshot; write the report; return its folder."""
    return intervene(cfg, KIND, PatchSpec.from_config, patching)


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="patch")
@exits_cleanly
def main(cfg: DictConfig) -> None:
    patch(cfg)


def cli() -> None:
    """The `glassbox-patch` command, as `python -m glassbox.patch` runs it."""
    command_line.run(main)


if __name__ == "__main__":
    cli()
