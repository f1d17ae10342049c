"""Snapshots: when to take them, and how they are written, found and read.

A snapshot is one file, `<run>/checkpoints/step_<7 digits>.pt`, holding the model and
optimizer state, the RNG states, the step, the resolved config and the vocabulary hash:
everything needed to resume training or to replay the analysis at that step. Files are
written atomically and read with `torch.load(weights_only=True)` only: no pickled code runs.

Once a snapshot is complete, its sha256 is recorded in the run's run.json (`snapshot_sha256`).
A snapshot whose checksum is missing or differs was cut short by a kill or damaged since;
`load_snapshot` refuses it, so no one resumes from or analyses it. (A flipped byte inside
tensor data would otherwise load without complaint.)
"""
from __future__ import annotations

import dataclasses
import logging
import os
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from glassbox import fileio
from glassbox.corpus import sha256_of
from glassbox.errors import GlassboxError
from glassbox.fileio import atomic_path, explain_write_errors, point_link
from glassbox.model import GPT, GPTConfig

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
_NAME = re.compile(r"^step_(\d{7})\.pt$")
# The model_args that decide the shape of the weights (dropout does not).
SHAPE_KEYS = ("vocab_size", "block_size", "n_layer", "n_head", "n_embd", "bias")
# Test hook (tests/test_reliability.py): set to a snapshot's file name, e.g. step_0000032.pt,
# to freeze the process with that snapshot half written, for the test to kill -9 it there.
PAUSE_WHILE_SAVING = "GLASSBOX_TEST_PAUSE_WHILE_SAVING"


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
    """Write the snapshot atomically, then its checksum: a snapshot with a valid checksum is complete.

    A write error (full disk, no permission) raises a GlassboxError and leaves any older
    snapshot at `path` as it was. Killed between the rename and the checksum, the new file
    meets the old checksum (or none) and counts as incomplete: the safe side.
    """
    path = Path(path)
    with atomic_path(path) as tmp, explain_write_errors(path):
        with open(tmp, "wb") as f:  # a file object: a full disk raises OSError, not torch's RuntimeError
            torch.save(payload, f)
            if os.environ.get(PAUSE_WHILE_SAVING) == path.name:
                _freeze_half_written(f)
    run_dir = path.parent.parent
    checksums = read_run_state(run_dir).get("snapshot_sha256", {})
    write_run_state(run_dir, snapshot_sha256={**checksums, path.name: sha256_of(path)})


def _freeze_half_written(f) -> None:
    """The test hook: cut the temporary file to half its bytes, say so, and wait to be killed."""
    f.flush()
    f.truncate(f.tell() // 2)
    print(f"paused while saving {f.name}", flush=True)
    while True:
        time.sleep(60)


def verify_snapshot(path: str | Path) -> None:
    """Raise a GlassboxError unless `path` is a complete snapshot whose bytes match its checksum."""
    path = Path(path)
    if not path.exists():
        raise GlassboxError(f"no snapshot at {path}")
    expected = read_run_state(path.parent.parent).get("snapshot_sha256", {}).get(path.name)
    if expected is None:
        raise GlassboxError(f"snapshot {path} has no checksum in its run's run.json: "
                            "the run was stopped before the snapshot was completely saved")
    actual = sha256_of(path)
    if actual != expected:
        raise GlassboxError(f"snapshot {path} is corrupt: its sha256 is {actual[:16]}…, "
                            f"but run.json recorded {expected[:16]}… when it was saved")


def load_snapshot(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """A verified snapshot's contents; tensors only, so loading a file runs no code from it."""
    path = Path(path)
    verify_snapshot(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # a truncated or corrupt file fails in many different ways
        raise GlassboxError(f"snapshot {path} is unreadable ({type(err).__name__}: {err})") from err


def newest_valid_snapshot(run_dir: str | Path, map_location: str | torch.device = "cpu") -> tuple[Path, dict] | None:
    """The newest snapshot of a run that passes `load_snapshot`, saying why each newer one was skipped."""
    for _, path in reversed(list_snapshots(run_dir)):
        try:
            return path, load_snapshot(path, map_location)
        except GlassboxError as err:
            log.warning("%s; trying the one before it", err)
    return None


def remove_snapshots_after(run_dir: str | Path, step: int) -> None:
    """Delete the snapshots past `step` and the temporary files of interrupted saves."""
    for later_step, path in list_snapshots(run_dir):
        if later_step > step:
            path.unlink()
    for leftover in (Path(run_dir) / CHECKPOINT_DIR).glob(".*.tmp-*"):
        leftover.unlink()


def check_fits(snapshot: dict[str, Any], model_args: Mapping[str, Any], vocab_hash: str, source: str | Path) -> None:
    """Raise a GlassboxError naming every shape key or vocabulary that differs from the snapshot's.

    `model_args` are the GPTConfig fields of the model about to be built (`model_args(model)`).
    """
    mismatched = []
    for key in SHAPE_KEYS:
        saved, now = snapshot["model_args"][key], model_args[key]
        if saved != now:
            mismatched.append(f"{key if key == 'vocab_size' else 'model.' + key}: snapshot {saved!r}, now {now!r}")
    if snapshot["vocab_hash"] != vocab_hash:
        mismatched.append(f"vocab_hash: snapshot {snapshot['vocab_hash'][:12]}…, now {vocab_hash[:12]}…")
    if mismatched:
        raise GlassboxError(
            f"snapshot {source} does not fit this model and corpus ({'; '.join(mismatched)}). Use the model "
            "and corpus the run was trained with (its .hydra/config.yaml), or train a new one with train.resume=never."
        )


def check_vocab(snapshot: dict[str, Any], vocab_hash: str, source: str | Path, where: str | Path) -> None:
    """Refuse a snapshot trained on another vocabulary: its token ids would decode to other characters."""
    if snapshot["vocab_hash"] != vocab_hash:
        trained = snapshot["config"]
        raise GlassboxError(
            f"{source} was trained on vocabulary {snapshot['vocab_hash']} (corpus '{trained['corpus']['name']}'), "
            f"but {where} has vocabulary {vocab_hash}: the corpus was prepared differently. Use "
            f"experiment={trained['name']}, or run `make prepare` for the corpus it was trained on, as it was."
        )


def model_from_snapshot(snapshot: dict[str, Any]) -> GPT:
    """Rebuild the model a snapshot was taken of, in eval mode."""
    model = GPT(GPTConfig(**snapshot["model_args"]))
    model.load_state_dict(snapshot["model"])
    return model.eval()


def model_args(model: GPT) -> dict[str, Any]:
    return dataclasses.asdict(model.config)


def read_run_state(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / "run.json"
    return fileio.read_json(path) if path.exists() else {}


def write_run_state(run_dir: str | Path, **state: Any) -> None:
    """Update the run's run.json: status (running / complete / failed / interrupted), W&B id, checksums, …"""
    fileio.write_json(Path(run_dir) / "run.json", {**read_run_state(run_dir), **state})


def point_latest(run_dir: str | Path, experiment_dir: str | Path) -> None:
    """Make `<experiment>/latest` a link to this run."""
    point_link(Path(experiment_dir) / "latest", run_dir)


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
