"""The run directory: the one module that names its files and reads or points at runs.

outputs/README.md describes the layout (run.json, metrics.jsonl, checkpoints/, analysis/, report,
latest, sweeps/); every other module asks this one for a path instead of spelling it.
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
LOCK = "train.lock"
CHECKPOINT_DIR = "checkpoints"
ANALYSIS_DIR = "analysis"
REPORT_DIR = "report"
INTERVENTIONS_DIR = "interventions"
INSPECT_DIR = "inspect"  # `make inspect`: <run>/inspect/step-N/
LATEST = "latest"
REPLICATE_DIR = "replicate"
SWEEPS_DIR = "sweeps"  # outputs/<experiment>/sweeps/<time>/<job>/ (conf/hydra/default.yaml)
SNAPSHOT_NAME = re.compile(r"^step_(\d{7})\.pt$")


def snapshot_path(run_dir: str | Path, step: int) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR / f"step_{step:07d}.pt"


def weights_path(run_dir: str | Path, step: int) -> Path:
    """The weights-only copy of a snapshot (run/snapshots.py, `weights_only`), beside it."""
    return snapshot_path(run_dir, step).with_suffix(".weights.pt")


def list_snapshots(run_dir: str | Path) -> list[tuple[int, Path]]:
    """(step, path) of every snapshot file of a run, in step order."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    found = ((SNAPSHOT_NAME.match(p.name), p) for p in folder.iterdir())
    return sorted((int(m.group(1)), p) for m, p in found if m)


def run_of_snapshot(path: str | Path) -> Path:
    """The run directory a snapshot file belongs to."""
    return Path(path).parent.parent


def read_run_state(run_dir: str | Path) -> dict[str, Any]:
    """The run's run.json ({} before it has one); a damaged one is explained, not a JSON traceback."""
    path = Path(run_dir) / RUN_STATE
    if not path.exists():
        return {}
    try:
        state = fileio.read_json(path)
        problem = None if isinstance(state, dict) else "not a JSON object"
    except ValueError as err:  # not UTF-8, or not JSON
        problem = str(err)
    if problem:
        raise GlassboxError(
            f"{path} is damaged ({problem}). It records the run's status and its snapshots' checksums, so the "
            "run can be neither resumed nor analysed without it: restore it from a backup, or leave this run "
            "and train a new one with train.resume=never."
        )
    return state


def write_run_state(run_dir: str | Path, **state: Any) -> None:
    """Update the run's run.json: status (running / complete / failed / interrupted), W&B id, checksums, …"""
    fileio.write_json(Path(run_dir) / RUN_STATE, {**read_run_state(run_dir), **state})


def latest_link(output_dir: str | Path, name: str) -> Path:
    return Path(output_dir) / name / LATEST


def point_latest(run_dir: str | Path, output_dir: str | Path, name: str) -> None:
    """Make `<output_dir>/<name>/latest` a link to this run."""
    fileio.point_link(latest_link(output_dir, name), run_dir)


def replicate_link(output_dir: str | Path, name: str) -> Path:
    """`<output_dir>/<name>/replicate/latest`: the sweep directory of the experiment's newest replicate."""
    return Path(output_dir) / name / REPLICATE_DIR / LATEST


def resolve_run_dir(output_dir: str | Path, name: str, run: str | None = None) -> Path:
    """The run to read: `run` if given, else the newest run of experiment `name`."""
    if run:
        run_dir = Path(run)
        if not run_dir.is_dir():
            raise GlassboxError(f"run directory {run_dir} does not exist")
        return run_or_its_latest(run_dir).resolve()
    latest = latest_link(output_dir, name)
    if not latest.exists():
        raise GlassboxError(
            f"no trained run of experiment '{name}' (looked for {latest}). "
            f"Train one first: make prepare train EXPERIMENT={name}"
        )
    return latest.resolve()


def run_or_its_latest(path: Path) -> Path:
    """A run directory as it is; an experiment's folder (outputs/tiny: no checkpoints, a `latest`) as its newest run."""
    if not (path / CHECKPOINT_DIR).is_dir() and (path / LATEST).is_dir():
        return path / LATEST
    return path


def advice_for_writing(folder: str | Path) -> str | None:
    """What to do when `folder` cannot be written, if it lies inside a run (analysis, export, interventions):
    paths.* moves new runs, not this one. None elsewhere (fileio's own advice holds)."""
    run_dir = next((p for p in (Path(folder), *Path(folder).parents) if (p / RUN_STATE).is_file()), None)
    if run_dir is None:
        return None
    return (
        f"This command writes into the run {run_dir}: make that folder writable, or copy the run to a "
        f"writable place (cp -r {run_dir} <copy>) and give run=<copy>."
    )


def point_report(run_dir: Path, report_dir: Path) -> None:
    """Make `<run>/report` a link to one analysis's report."""
    link = run_dir / REPORT_DIR
    if link.exists() and not link.is_symlink():
        raise GlassboxError(f"{link} is a real directory, not a link to an analysis; move it away and analyse again")
    fileio.point_link(link, report_dir)


def pick_snapshot(
    output_dir: str | Path, name: str, run: str | None, step: int | None, checkpoint: str | None
) -> tuple[Path, list[int]]:
    """The snapshot a command asked for (checkpoint=, or run= and step=, default the latest run's
    last step) and every step its run has (none known for checkpoint=)."""
    if checkpoint:
        if run or step is not None:
            raise GlassboxError("checkpoint= names one snapshot file: leave out run= and step=")
        return Path(checkpoint), []
    run_dir = resolve_run_dir(output_dir, name, run)
    snapshots = dict(list_snapshots(run_dir))
    if not snapshots:
        raise GlassboxError(
            f"run {run_dir} has no snapshots: train one first, e.g. make prepare train EXPERIMENT={name}"
        )
    step = max(snapshots) if step is None else step
    if step not in snapshots:
        raise GlassboxError(
            f"run {run_dir} has no snapshot at step {step}; the steps it has: {', '.join(map(str, snapshots))}"
        )
    return snapshots[step], list(snapshots)


def pick_snapshots(
    output_dir: str | Path, name: str, run: str | None, step: int | str | None, checkpoint: str | None
) -> list[Path]:
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


def inspect_dir(run_dir: str | Path, step: int) -> Path:
    """Where `make inspect` writes a snapshot's module tree: `<run>/inspect/step-N`."""
    return Path(run_dir) / INSPECT_DIR / f"step-{step}"


def interventions_dir(run_dir: str | Path, kind: str) -> Path:
    """A new folder for one intervention command on the run: `<run>/interventions/<kind>/<time>`."""
    return Path(run_dir) / INTERVENTIONS_DIR / kind / datetime.now().strftime("%Y-%m-%d_%H-%M-%S-%f")
