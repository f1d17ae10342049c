"""`make inspect`: the model of a snapshot printed, as PyTorch's `print(model)` and `named_parameters()`
show it: every module of the snapshot's variant, each parameter's shape and count, and the totals by kind
(embeddings, attention, MLP, norms; the tied output head counted once). glassbox/analysis/modules.py
builds the tree, glassbox/report/modules.py draws it; `make inspect-hf` shows the same for a Hugging Face
model.

Reads  a snapshot (the latest run's last one, or run= / step= / checkpoint=).
Writes <run>/inspect/step-N/: report.md and modules.json (the tree as data).

    python -m glassbox.inspect_model experiment=xiyouji step=0
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from glassbox import command_line, fileio
from glassbox.analysis.modules import module_tree
from glassbox.command_line import exits_cleanly
from glassbox.config import validate
from glassbox.paths import CONF_DIR
from glassbox.report import modules as report
from glassbox.run.layout import inspect_dir, pick_snapshot, run_of_snapshot
from glassbox.run.snapshots import load_snapshot


def inspect_model(cfg: DictConfig) -> Path:
    """Print the snapshot's module tree and write it to its report folder; return that folder."""
    settings = validate(cfg, "inspect_model")
    path, _ = pick_snapshot(settings.paths.output_dir, settings.name, settings.run, settings.step, settings.checkpoint)
    snapshot = load_snapshot(path)
    model = snapshot.model()
    modules = module_tree(model)
    args = snapshot.model_args
    variant = ", ".join(f"{key}={args[key]}" for key in ("pos_encoding", "norm", "mlp"))
    out_dir = inspect_dir(run_of_snapshot(path), snapshot.step)
    header = f"# The model of step {snapshot.step}\n\nSnapshot `{path}`: {variant}.\n"
    fileio.write_json(out_dir / "modules.json", modules)
    fileio.write_text(out_dir / "report.md", header + "\n" + report.render(modules, "Modules and parameters"))
    print(f"{path} ({variant})\n\n{report.terminal(modules)}")
    print(f"\nreport: {out_dir / 'report.md'}")
    return out_dir


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="inspect_model")
@exits_cleanly
def main(cfg: DictConfig) -> None:
    inspect_model(cfg)


def cli() -> None:
    """The `glassbox-inspect-model` command, as `python -m glassbox.inspect_model` runs it."""
    command_line.run(main)


if __name__ == "__main__":
    cli()
