"""`make scope`: Patch Scope, a hidden state read out in the model's own words.

A source's hidden state at (layer, position) is written into a target prompt, a neutral one (a newline)
or an identity template built from the corpus ("道道\\n了了\\n…" then a placeholder), and the model
continues from it, greedily. Precision@1 per source layer says how often the patched next character is
the one the source model predicts there, against shuffled sources; with step=all, from which snapshot
on it works. The experiment is in glassbox/analysis/scoping.py.

Reads  a snapshot (the latest run's last one, or run= / step= / checkpoint=; step=all: every snapshot of
       the run) and the experiment's prepared corpus (its validation split and letter counts; the
       vocabulary must be the one the run was trained on).
Writes <run>/interventions/scope/<time>/: report.md, results.json, metrics.jsonl (one row per step),
       config.yaml and the W&B run (job_type scope: tables/scope, tables/scope_continuations).

    python -m glassbox.scope experiment=xiyouji step=all
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from glassbox import command_line
from glassbox.analysis.scoping import ScopeSpec, patch_scope
from glassbox.command_line import exits_cleanly
from glassbox.intervening import intervene
from glassbox.paths import CONF_DIR

KIND = "scope"


def scope(cfg: DictConfig) -> Path:
    """Patch Scope on every chosen snapshot; write the report; return its folder."""
    return intervene(cfg, KIND, ScopeSpec.from_config, patch_scope, reads_corpus=True)


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="scope")
@exits_cleanly
def main(cfg: DictConfig) -> None:
    scope(cfg)


def cli() -> None:
    """The `glassbox-scope` command, as `python -m glassbox.scope` runs it."""
    command_line.run(main)


if __name__ == "__main__":
    cli()
