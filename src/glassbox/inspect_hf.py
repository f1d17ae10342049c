"""`make inspect-hf`: glassbox's snapshot-free analysis suites on a local Hugging Face causal LM
(what they are and how they reach the model: glassbox/interop/hf_suites.py).

Reads  hf.path: a model folder (config.json, weights, tokenizer), or a folder of checkpoint
       folders step_N/ (a series, e.g. Pythia's, or `make export step=all`'s <run>/export/).
Writes outputs/hf/<folder name>/<time>/{report.md, analysis.json, metrics.jsonl (series only)}; prints the
       model's module tree with each parameter's shape and count (as `make inspect` does for a snapshot).

    python -m glassbox.inspect_hf experiment=tiny hf.path=outputs/tiny/latest/export
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from glassbox import command_line
from glassbox.command_line import exits_cleanly
from glassbox.interop.export import EXPORT_DIR
from glassbox.interop.hf import import_transformers
from glassbox.interop.hf_suites import inspect_hf
from glassbox.paths import CONF_DIR
from glassbox.report import modules

log = logging.getLogger(__name__)


def folder_name(path: str | None) -> str:
    """The output folder's name for hf.path: its last part (`none` when it is missing, which main reports).

    A glassbox export (<run>/export, <run>/export/step-N) is named after its run as well, e.g.
    `<run>-export-step-N`: `export` alone would put every run's inspections in one folder.
    """
    if not path:
        return "none"
    folder = Path(path).resolve()
    for candidate in (folder, folder.parent):
        if candidate.name == EXPORT_DIR:
            return "-".join((candidate.parent.name, *folder.relative_to(candidate.parent).parts))
    return folder.name


OmegaConf.register_new_resolver("glassbox.folder_name", folder_name)


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="inspect_hf")
@exits_cleanly
def main(cfg: DictConfig) -> None:
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    import_transformers().utils.logging.disable_progress_bar()  # one bar per loaded checkpoint is noise
    analysis = inspect_hf(cfg, out_dir)
    print(modules.terminal(analysis["modules"]))
    log.info(f"wrote {out_dir}: report {out_dir / 'report.md'}")


def cli() -> None:
    """The `glassbox-inspect-hf` command, as `python -m glassbox.inspect_hf` runs it."""
    command_line.run(main)


if __name__ == "__main__":
    cli()
