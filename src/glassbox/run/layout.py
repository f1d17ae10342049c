"""The run directory: the one place that names its files and reads or points at runs.

    outputs/<experiment>/
      latest -> <run>                 the newest run of the experiment (train moves it)
      <run>/                          one training run (Hydra's run dir, named by time)
        run.json                      status, W&B id, pid and host, probe pairs, snapshot sha256s
        metrics.jsonl                 one object per snapshot step (keys: glassbox.metric_keys)
        progress.jsonl                every train.log_every steps: batch loss, lr, tokens/s
        checkpoints/step_NNNNNNN.pt   the snapshots (payload: run/snapshots.py, TrainingState)
        train.log, .hydra/            Hydra's log and the composed config of the command
        wandb/                        the training run's W&B files (offline by default)
        resumes/<time>/               .hydra/ and log of every command that resumed the run
        analysis/<time>/              one `make analyze`: its .hydra/, log, metrics.jsonl, wandb/,
                                      report/ (report.md, analysis.json, *.png)
        report -> analysis/<time>/report    the newest analysis's report
        interventions/<kind>/<time>/  one `make steer`, `make patch` or `make ablate` (kind): report.md,
                                      results.json, metrics.jsonl, config.yaml, wandb/
      sweeps/<time>/<job>/            a sweep's runs (each laid out as above), summary.*

ARCHITECTURE.md shows where this sits in the pipeline; every other module asks this one for a path.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any

from glassbox import fileio
from glassbox.errors import GlassboxError

RUN_STATE = "run.json"
METRICS = "metrics.jsonl"
PROGRESS = "progress.jsonl"
CHECKPOINT_DIR = "checkpoints"
ANALYSIS_DIR = "analysis"
REPORT_DIR = "report"
INTERVENTIONS_DIR = "interventions"
LATEST = "latest"
_SNAPSHOT_NAME = re.compile(r"^step_(\d{7})\.pt$")


def snapshot_path(run_dir: str | Path, step: int) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR / f"step_{step:07d}.pt"


def list_snapshots(run_dir: str | Path) -> list[tuple[int, Path]]:
    """(step, path) of every snapshot file of a run, in step order."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    found = ((_SNAPSHOT_NAME.match(p.name), p) for p in folder.iterdir())
    return sorted((int(m.group(1)), p) for m, p in found if m)


def run_of_snapshot(path: str | Path) -> Path:
    """The run directory a snapshot file belongs to."""
    return Path(path).parent.parent


def read_run_state(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / RUN_STATE
    return fileio.read_json(path) if path.exists() else {}


def write_run_state(run_dir: str | Path, **state: Any) -> None:
    """Update the run's run.json: status (running / complete / failed / interrupted), W&B id, checksums, …"""
    fileio.write_json(Path(run_dir) / RUN_STATE, {**read_run_state(run_dir), **state})


def latest_link(output_dir: str | Path, name: str) -> Path:
    return Path(output_dir) / name / LATEST


def point_latest(run_dir: str | Path, output_dir: str | Path, name: str) -> None:
    """Make `<output_dir>/<name>/latest` a link to this run."""
    fileio.point_link(latest_link(output_dir, name), run_dir)


def resolve_run_dir(output_dir: str | Path, name: str, run: str | None = None) -> Path:
    """The run to read: `run` if given, else the newest run of experiment `name`."""
    if run:
        run_dir = Path(run)
        if not run_dir.is_dir():
            raise GlassboxError(f"run directory {run_dir} does not exist")
        return run_dir.resolve()
    latest = latest_link(output_dir, name)
    if not latest.exists():
        raise GlassboxError(
            f"no trained run of experiment '{name}' (looked for {latest}). "
            f"Train one first: make prepare train EXPERIMENT={name}"
        )
    return latest.resolve()


def point_report(run_dir: Path, report_dir: Path) -> None:
    """Make `<run>/report` a link to one analysis's report."""
    link = run_dir / REPORT_DIR
    if link.exists() and not link.is_symlink():
        raise GlassboxError(f"{link} is a real directory, not a link to an analysis; move it away and analyse again")
    fileio.point_link(link, report_dir)


def pick_snapshot(output_dir: str | Path, name: str, run: str | None, step: int | None,
                  checkpoint: str | None) -> tuple[Path, list[int]]:
    """The snapshot a command asked for (checkpoint=, or run= and step=, default the latest run's
    last step) and every step its run has (none known for checkpoint=)."""
    if checkpoint:
        if run or step is not None:
            raise GlassboxError("checkpoint= names one snapshot file: leave out run= and step=")
        return Path(checkpoint), []
    run_dir = resolve_run_dir(output_dir, name, run)
    snapshots = dict(list_snapshots(run_dir))
    if not snapshots:
        raise GlassboxError(f"run {run_dir} has no snapshots: train one first, e.g. make prepare train EXPERIMENT={name}")
    step = max(snapshots) if step is None else step
    if step not in snapshots:
        raise GlassboxError(
            f"run {run_dir} has no snapshot at step {step}; the steps it has: {', '.join(map(str, snapshots))}"
        )
    return snapshots[step], list(snapshots)


def pick_snapshots(output_dir: str | Path, name: str, run: str | None, step: int | str | None,
                   checkpoint: str | None) -> list[Path]:
    """`pick_snapshot`'s one snapshot, or with step=all every snapshot of the run, in step order."""
    if step != "all":
        return [pick_snapshot(output_dir, name, run, step, checkpoint)[0]]
    if checkpoint:
        raise GlassboxError("step=all reads every snapshot of a run: give run=, not checkpoint=")
    run_dir = resolve_run_dir(output_dir, name, run)
    paths = [path for _, path in list_snapshots(run_dir)]
    if not paths:
        raise GlassboxError(f"run {run_dir} has no snapshots: train it first (make prepare train EXPERIMENT={name})")
    return paths


def interventions_dir(run_dir: str | Path, kind: str) -> Path:
    """A new folder for one intervention command on the run: `<run>/interventions/<kind>/<time>`."""
    return Path(run_dir) / INTERVENTIONS_DIR / kind / datetime.now().strftime("%Y-%m-%d_%H-%M-%S-%f")
