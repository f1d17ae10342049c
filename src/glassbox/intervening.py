"""What the steer, patch, scope and ablate stages share: run one experiment over the chosen snapshots and
write its report into the run.

Each stage names its spec and its experiment; `intervene` validates the config, picks the snapshots,
checks every input into the spec (before anything is written) and hands `run_intervention` the experiment
to run on each model, where each snapshot is loaded and its scalars logged. The experiments themselves
are in analysis/steering.py, patching.py, scoping.py and ablation.py, their reports in report/interventions.py.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from glassbox import fileio
from glassbox.command_line import removed_if_stopped
from glassbox.config import validate
from glassbox.model import GPT
from glassbox.report import interventions as report
from glassbox.run.layout import METRICS, advice_for_writing, interventions_dir, pick_snapshots, run_of_snapshot
from glassbox.run.snapshots import Snapshot, check_vocab, load_snapshot
from glassbox.run.tracking import Tracker
from glassbox.text.tokens import TokenData
from glassbox.text.vocab import Vocab


def intervene(
    cfg: DictConfig,
    kind: str,
    spec_from_config: Callable[[Any, Any, dict[str, Any]], Any],
    experiment: Callable[[GPT, Any, list[str]], dict[str, Any]],
    reads_corpus: bool = False,
) -> Path:
    """A stage's whole run: validate its config, pick its snapshots, check every input into its spec
    (`spec_from_config(settings, vocab or corpus, model_args)`, before anything is written), then
    `experiment(model, spec, itos)` on every snapshot (`run_intervention`); return the report's folder.

    reads_corpus: the experiment reads validation text, so the spec gets the prepared corpus (checked to
    be the one the run was trained on) rather than the snapshot's vocabulary.
    """
    settings = validate(cfg, kind)
    paths = pick_snapshots(settings.paths.output_dir, settings.name, settings.run, settings.step, settings.checkpoint)
    last = load_snapshot(paths[-1])
    if reads_corpus:
        data = TokenData(settings.paths.processed_dir)
        check_vocab(last, data.vocab.hash, data.dir)
        vocab, source = data.vocab, data
    else:
        vocab = source = last.vocab()
    spec = spec_from_config(settings, source, last.model_args)
    return run_intervention(cfg, kind, (paths, last, vocab), spec, lambda model: experiment(model, spec, vocab.itos))


def run_intervention(
    cfg: DictConfig,
    kind: str,
    snapshots: tuple[list[Path], Snapshot, Vocab],
    spec: Any,
    experiment: Callable[[GPT], dict[str, Any]],
) -> Path:
    """`experiment` on every snapshot (paths, the last one loaded, its vocabulary), logged and reported
    in `<run>/interventions/<kind>/<time>/`; return that folder."""
    paths, last, vocab = snapshots
    run_dir = run_of_snapshot(paths[-1])
    out_dir = interventions_dir(run_dir, kind)
    with open_dict(cfg):  # the training run's W&B group, also when it was a sweep's
        cfg.wandb.group = last.config["wandb"]["group"]
    name = f"{run_dir.name}-{kind}"
    with fileio.explain_write_errors(out_dir, advice_for_writing(run_dir)):  # a read-only run: said, not a traceback
        out_dir.mkdir(parents=True)
    # Ctrl-C: W&B finished (the Tracker is entered second, left first), then the unfinished folder removed
    with (
        removed_if_stopped(out_dir),
        Tracker(cfg, out_dir, job_type=kind, name=name, metrics_path=out_dir / METRICS) as tracker,
    ):
        steps = over_snapshots(paths, vocab, experiment, tracker)
        results = {"kind": kind, "run_dir": str(run_dir), "settings": spec.describe(), "steps": steps}
        fileio.write_json(out_dir / "results.json", results)
        fileio.write_text(out_dir / "report.md", report.render(results))
        fileio.write_text(out_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
        tracker.log_tables(report.tables(results), steps[-1]["step"])
    print(report.summary(results))
    print(f"\nreport: {out_dir / 'report.md'}")
    return out_dir


def over_snapshots(
    paths: list[Path], vocab: Vocab, experiment: Callable[[GPT], dict[str, Any]], tracker: Tracker
) -> list[dict[str, Any]]:
    """The experiment on each snapshot in turn, its scalars logged at the snapshot's step: [{"step": N, ...}]."""
    steps = []
    for path in paths:
        snapshot = load_snapshot(path)
        check_vocab(snapshot, vocab.hash, f"the vocabulary of {paths[-1]}")
        result = experiment(snapshot.model())
        tracker.log(result["scalars"], snapshot.step)
        steps.append({"step": snapshot.step, **result})
    return steps
