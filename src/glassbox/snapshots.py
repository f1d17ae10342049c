"""Snapshots: when to take them, and how they are written, found and read.

A snapshot is one file, `<run>/checkpoints/step_<7 digits>.pt`, holding the model and
optimizer state, the RNG states, the step, the resolved config and the vocabulary hash:
everything needed to resume training or to replay the analysis at that step. Files are
written atomically and read with `torch.load(weights_only=True)` only: no pickled code runs.
"""
from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Any

import torch

from glassbox.errors import GlassboxError
from glassbox.fileio import atomic_path, explain_write_errors
from glassbox.model import GPT, GPTConfig

CHECKPOINT_DIR = "checkpoints"
_NAME = re.compile(r"^step_(\d{7})\.pt$")


def snapshot_steps(max_iters: int, log_spaced_until: int, every: int) -> list[int]:
    """Step 0, then 1, 2, 4, … ≤ log_spaced_until (Pythia's schedule), then every `every`, then the end.

    Early steps are where the embeddings move fastest, so they are sampled densely.
    """
    steps = {0, max_iters}
    power = 1
    while power <= min(log_spaced_until, max_iters):
        steps.add(power)
        power *= 2
    if every > 0:
        steps.update(range(every, max_iters + 1, every))
    return sorted(steps)


def snapshot_path(run_dir: str | Path, step: int) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR / f"step_{step:07d}.pt"


def list_snapshots(run_dir: str | Path) -> list[tuple[int, Path]]:
    """(step, path) of every snapshot file of a run, in step order."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    found = ((_NAME.match(p.name), p) for p in folder.iterdir())
    return sorted((int(m.group(1)), p) for m, p in found if m)


def plain_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's weights under their own names (torch.compile and DDP wrap and rename them)."""
    module = getattr(model, "_orig_mod", model)
    module = getattr(module, "module", module)
    return module.state_dict()


def save_snapshot(path: str | Path, payload: dict[str, Any]) -> None:
    with atomic_path(path) as tmp, explain_write_errors(Path(path)):
        torch.save(payload, tmp)


def load_snapshot(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise GlassboxError(f"no snapshot at {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # a truncated or corrupt file fails in many different ways
        raise GlassboxError(f"snapshot {path} is unreadable ({type(err).__name__}: {err})") from err


def model_from_snapshot(snapshot: dict[str, Any]) -> GPT:
    """Rebuild the model a snapshot was taken of, in eval mode."""
    model = GPT(GPTConfig(**snapshot["model_args"]))
    model.load_state_dict(snapshot["model"])
    return model.eval()


def model_args(model: GPT) -> dict[str, Any]:
    return dataclasses.asdict(model.config)


def point_latest(run_dir: str | Path, experiment_dir: str | Path) -> None:
    """Make `<experiment>/latest` a relative link to this run, replacing the old one in one rename."""
    experiment_dir = Path(experiment_dir).resolve()
    link = experiment_dir / "latest"
    tmp = experiment_dir / f".latest.tmp-{os.getpid()}"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(os.path.relpath(Path(run_dir).resolve(), experiment_dir), target_is_directory=True)
    os.replace(tmp, link)


def resolve_run_dir(output_dir: str | Path, name: str, run: str | None = None) -> Path:
    """The run to read: `run` if given, else the newest run of experiment `name`."""
    if run:
        run_dir = Path(run)
        if not run_dir.is_dir():
            raise GlassboxError(f"run directory {run_dir} does not exist")
        return run_dir.resolve()
    latest = Path(output_dir) / name / "latest"
    if not latest.exists():
        raise GlassboxError(
            f"no trained run of experiment '{name}' (looked for {latest}). "
            f"Train one first: make prepare train EXPERIMENT={name}"
        )
    return latest.resolve()
