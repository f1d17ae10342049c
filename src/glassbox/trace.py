"""`make trace`: one prediction of a trained snapshot, walked through stage by stage.

Text → UTF-8 bytes → token ids → the input tensor → embeddings and positions → the transformer
blocks → logits → probabilities → a seeded draw → the next character, and then the autoregressive
loop as generation runs it: a prefill over the prompt, then one decode step per character through
the KV cache. glassbox/analysis/trace.py computes the stages from the model's own hook points and
generation; glassbox/report/trace_text.py prints them, one at a time at a terminal.

    python -m glassbox.trace experiment=xiyouji prompt=悟空道 step=0    # the untrained model
"""

from __future__ import annotations

import sys
from typing import Any

import hydra
from omegaconf import DictConfig

from glassbox import command_line
from glassbox.analysis.trace import build_trace, check_choices, check_prompt_given, crop_prompt
from glassbox.command_line import exits_cleanly
from glassbox.config import validate
from glassbox.paths import CONF_DIR
from glassbox.report.trace_text import STAGES, format_snapshot, show
from glassbox.run.layout import pick_snapshot
from glassbox.run.snapshots import load_snapshot


def trace(cfg: DictConfig) -> dict[str, Any]:
    """Load the snapshot, compute every stage, show them; return the stages' data."""
    asked = validate(cfg, "trace")
    check_prompt_given(asked.prompt, asked.corpus.name)
    path, steps = pick_snapshot(asked.paths.output_dir, asked.name, asked.run, asked.step, asked.checkpoint)
    snapshot = load_snapshot(path)
    snapshot.check_finite()  # a diverged model's probabilities are nan: nothing to trace
    model = snapshot.model()
    vocab = snapshot.vocab()
    prompt, crop_notice = crop_prompt(asked.prompt, model.config.block_size)
    check_choices(model.config, asked.layer, asked.head)
    stages = build_trace(
        model,
        vocab,
        prompt,
        **asked.model_dump(include={"temperature", "top_k", "top_p", "gen_tokens", "layer", "head", "sample_seed"}),
    )
    sections = [("Snapshot", format_snapshot(path, snapshot, model, vocab, steps, crop_notice))]
    sections += [(title, fmt(stages)) for title, fmt in STAGES]
    show(sections, interactive=sys.stdin.isatty() and not asked.auto)
    return stages


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="trace")
@exits_cleanly
def main(cfg: DictConfig) -> None:
    trace(cfg)


def cli() -> None:
    """The `glassbox-trace` command, as `python -m glassbox.trace` runs it: any prompt typed as it is."""
    command_line.run(main)


if __name__ == "__main__":
    cli()
