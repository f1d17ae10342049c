"""What the steer, patch and ablate stages share: run one experiment over the chosen snapshots and
write its report into the run.

Each stage validates its config, picks its snapshots, checks every input into a spec (before anything is
written), and hands `run_intervention` the experiment to run on each model; here each snapshot is loaded and
its scalars logged. The experiments themselves are in analysis/steering.py, patching.py and ablation.py,
their reports in report/interventions.py.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from glassbox import fileio
from glassbox.command_line import removed_if_stopped
from glassbox.model import GPT
from glassbox.report import interventions as report
from glassbox.run.layout import METRICS, advice_for_writing, interventions_dir, run_of_snapshot
from glassbox.run.snapshots import Snapshot, check_vocab, load_snapshot
from glassbox.run.tracking import Tracker
from glassbox.text.vocab import Vocab


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
