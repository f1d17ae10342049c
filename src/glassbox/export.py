"""`make export`: one snapshot (or all of a run's) as a folder Hugging Face, TransformerLens and
nanoGPT load; what the folder holds and why is in glassbox/interop/export.py.

Reads  a snapshot (the latest run's last one, or run= / step= / checkpoint=) and the vocabulary
       it was trained on.
Writes <run>/export/step-N/ (replacing an older export of that step).

    python -m glassbox.export experiment=tiny step=all
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig

from glassbox import command_line
from glassbox.command_line import exits_cleanly
from glassbox.config import validate
from glassbox.interop.export import export_dir, export_snapshot
from glassbox.paths import CONF_DIR
from glassbox.run.layout import pick_snapshots, run_of_snapshot
from glassbox.run.snapshots import load_snapshot

log = logging.getLogger(__name__)


def export(cfg: DictConfig) -> list[Path]:
    """Export the chosen snapshot(s); return the folders written."""
    settings = validate(cfg, "export")
    written = []
    for path in pick_snapshots(
        settings.paths.output_dir, settings.name, settings.run, settings.step, settings.checkpoint
    ):
        snapshot = load_snapshot(path)
        dst = export_dir(run_of_snapshot(path), snapshot.step)
        written.append(export_snapshot(snapshot, snapshot.vocab(), dst))
        log.info(f"exported step {snapshot.step}: wrote {dst}")
    return written


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="export")
@exits_cleanly
def main(cfg: DictConfig) -> None:
    export(cfg)


def cli() -> None:
    """The `glassbox-export` command, as `python -m glassbox.export` runs it."""
    command_line.run(main)


if __name__ == "__main__":
    cli()
