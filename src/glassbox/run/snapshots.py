"""Snapshots: the one owner of what a snapshot file holds, and how it is written and read.

A snapshot is one file, `<run>/checkpoints/step_<7 digits>.pt` (run/layout.py), holding the
model and optimizer state, the RNG states, the step, the resolved config and the vocabulary
hash: everything needed to resume training or to replay the analysis at that step. Its keys are
declared once, in `TrainingState.payload` (writing) and `Snapshot` (reading). `weights_only`
keeps what the model needs without the resuming state (about a third of the bytes with AdamW):
the copy W&B gets as a model artifact, read back by `Snapshot.from_payload` as well. Files are written
atomically and read with `torch.load(weights_only=True)` only: no pickled code runs.

Once a snapshot is complete, its sha256 is recorded in the run's run.json (`snapshot_sha256`).
A snapshot whose checksum is missing or differs was cut short by a kill or damaged since;
`load_snapshot` refuses it, so no one resumes from or analyses it. (A flipped byte inside
tensor data would otherwise load without complaint.)

Training never saves weights that are no longer numbers (training/loop.py checks `non_finite`
first); a snapshot that holds some anyway (written by an older version) is skipped by resume
and analysis alike (`Snapshot.check_finite`).
"""

from __future__ import annotations

import dataclasses
import logging
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from glassbox.errors import GlassboxError
from glassbox.fileio import atomic_path, explain_write_errors, read_json, sha256_of
from glassbox.model import GPT, GPTConfig
from glassbox.run.layout import (
    CHECKPOINT_DIR,
    RUN_STATE,
    SNAPSHOT_NAME,
    list_snapshots,
    read_run_state,
    run_of_snapshot,
    weights_path,
    write_run_state,
)
from glassbox.text.vocab import Vocab

log = logging.getLogger(__name__)

# The model_args that decide the weights' shapes or what the weights compute (dropout does neither):
# a learned wpe means nothing to a rope model, a LayerNorm gain read as an RMSNorm one computes something else.
SHAPE_KEYS = (
    "vocab_size",
    "block_size",
    "n_layer",
    "n_head",
    "n_kv_head",
    "n_embd",
    "bias",
    "pos_encoding",
    "norm",
    "mlp",
)
# The payload keys a model needs; the rest (optimizer, rng, recent_losses) only resuming does.
WEIGHTS_KEYS = ("step", "model", "model_args", "vocab_hash", "config", "wandb_run_id")


def plain_state_dict(model: torch.nn.Module) -> dict[str, Tensor]:
    """The model's weights under their own names (torch.compile and DDP wrap and rename them)."""
    return plain_model(model).state_dict()


def plain_model(model: torch.nn.Module) -> torch.nn.Module:
    """The model itself, out of any torch.compile or DDP wrapper."""
    module = getattr(model, "_orig_mod", model)
    return getattr(module, "module", module)


def model_args(model: GPT) -> dict[str, Any]:
    """The GPTConfig a model was built from, as plain data."""
    return config_args(model.config)


def config_args(config: GPTConfig) -> dict[str, Any]:
    """A GPTConfig as plain data, n_kv_head spelled out (null means n_head): one model, one spelling."""
    return {**dataclasses.asdict(config), "n_kv_head": config.kv_heads}


def non_finite(named: Iterable[tuple[str, Any]]) -> list[str]:
    """The names of the tensors (among (name, value) pairs, other values ignored) holding a nan or an inf."""
    return [name for name, value in named if isinstance(value, Tensor) and not torch.isfinite(value).all()]


def _optimizer_tensors(optimizer_state: dict[str, Any]) -> list[tuple[str, Any]]:
    """("optimizer state <i>.<key>", tensor) of an optimizer's state_dict: Adam's moments, by parameter index."""
    return [
        (f"optimizer state {i}.{key}", value)
        for i, per_param in optimizer_state["state"].items()
        for key, value in per_param.items()
    ]


def complete_model_args(saved: dict[str, Any], path: Path) -> dict[str, Any]:
    """A snapshot's model_args with every GPTConfig field: a snapshot saved before an option
    existed (pos_encoding, norm, mlp, n_kv_head) was trained with its default, which is what it reads as."""
    try:
        return config_args(GPTConfig(**saved))
    except ValueError as err:  # an option this version of glassbox does not know
        raise GlassboxError(f"snapshot {path}: its model cannot be built by this version of glassbox ({err})") from err


@dataclass
class TrainingState:
    """What training carries from step to step, and so what a snapshot must hold to continue it exactly.

    `payload` writes it (with the run's identity) and `restore` puts a saved one back; between
    them a resumed run takes the very step the interrupted one would have taken.
    """

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    batch_generator: torch.Generator  # draws the training batches: the same on every rank
    recent_losses: list[float] = field(default_factory=list)  # the window loss/train averages

    def payload(self, step: int, config: dict[str, Any], vocab_hash: str, wandb_run_id: str) -> dict[str, Any]:
        rng = {"torch": torch.get_rng_state(), "batches": self.batch_generator.get_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return {
            "step": step,
            "model": plain_state_dict(self.model),
            "optimizer": self.optimizer.state_dict(),
            "rng": rng,
            "model_args": model_args(plain_model(self.model)),
            "vocab_hash": vocab_hash,
            "config": config,
            "wandb_run_id": wandb_run_id,
            "recent_losses": list(self.recent_losses),
        }

    def restore(self, snapshot: Snapshot) -> None:
        self.model.load_state_dict(snapshot.weights)
        self.optimizer.load_state_dict(snapshot.training["optimizer"])
        rng = snapshot.training["rng"]
        torch.set_rng_state(rng["torch"])
        self.batch_generator.set_state(rng["batches"])
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        self.recent_losses = list(snapshot.training["recent_losses"])

    def non_finite(self) -> list[str]:
        """What holds a nan or an inf (weights by name, then optimizer state): a snapshot of it would be useless."""
        return non_finite([*plain_state_dict(self.model).items(), *_optimizer_tensors(self.optimizer.state_dict())])


@dataclass(frozen=True)
class Snapshot:
    """A loaded snapshot: what every reader (analysis, trace, resume) may ask of one."""

    path: Path
    step: int
    weights: dict[str, Tensor]
    model_args: dict[str, Any]
    vocab_hash: str
    config: dict[str, Any]  # the resolved config of the run that saved it
    wandb_run_id: str
    training: dict[str, Any]  # optimizer, rng and recent_losses: what only resuming needs (absent from a
    # weights-only copy)

    @classmethod
    def from_payload(cls, path: Path, payload: dict[str, Any]) -> Snapshot:
        training = {key: payload[key] for key in ("optimizer", "rng", "recent_losses") if key in payload}
        return cls(
            path,
            payload["step"],
            payload["model"],
            complete_model_args(payload["model_args"], path),
            payload["vocab_hash"],
            payload["config"],
            payload.get("wandb_run_id", ""),
            training,
        )

    def vocab(self) -> Vocab:
        """The vocabulary the snapshot was trained with, checked: any other maps ids to the wrong characters.

        The config's processed_dir is relative to where training ran when paths.root_dir was
        relative; it is looked for from the current directory, then from each folder above the run.
        """
        processed = Path(self.config["paths"]["processed_dir"])
        candidates = [processed]
        if not processed.is_absolute():
            candidates += [up / processed for up in self.path.parents]
        path = next((c / "vocab.json" for c in candidates if (c / "vocab.json").exists()), candidates[0] / "vocab.json")
        vocab = Vocab.load(path)
        check_vocab(self, vocab.hash, path.parent)
        return vocab

    def check_finite(self) -> None:
        """Raise a GlassboxError if the weights (or the optimizer's state) hold a nan or an inf."""
        optimizer = self.training.get("optimizer")
        bad = non_finite([*self.weights.items(), *(_optimizer_tensors(optimizer) if optimizer else [])])
        if bad:
            shown = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
            raise GlassboxError(
                f"snapshot {self.path} holds non-finite numbers (nan or inf in {shown}): training had "
                f"diverged by step {self.step}; use an earlier snapshot"
            )

    def model(self) -> GPT:
        """Rebuild the model this snapshot was taken of, in eval mode."""
        model = GPT(GPTConfig(**self.model_args))
        model.load_state_dict(self.weights)
        return model.eval()


def save_snapshot(path: str | Path, payload: dict[str, Any]) -> None:
    """Write the snapshot atomically, then its checksum: a snapshot with a valid checksum is complete.

    A write error (full disk, no permission) raises a GlassboxError and leaves any older
    snapshot at `path` as it was. Killed between the rename and the checksum, the new file
    meets the old checksum (or none) and counts as incomplete: the safe side.
    """
    path = Path(path)
    with atomic_path(path) as tmp, explain_write_errors(path), open(tmp, "wb") as f:
        try:
            torch.save(payload, f)
        except RuntimeError as err:
            # torch's zip writer reports a failed write ("unexpected pos …"); the OSError behind it (a full
            # disk) says why, and explain_write_errors says it to the user.
            if isinstance(err.__context__, OSError):
                raise err.__context__ from err
            raise
    run_dir = run_of_snapshot(path)
    checksums = read_run_state(run_dir).get("snapshot_sha256", {})
    write_run_state(run_dir, snapshot_sha256={**checksums, path.name: sha256_of(path)})


def weights_only(payload: dict[str, Any]) -> dict[str, Any]:
    """A snapshot payload without the optimizer and RNG state: the model, its config and identity."""
    return {key: payload[key] for key in WEIGHTS_KEYS}


def save_weights(path: str | Path, payload: dict[str, Any]) -> None:
    """Write `weights_only(payload)` atomically (a model artifact never sees half a file)."""
    path = Path(path)
    with atomic_path(path) as tmp, explain_write_errors(path), open(tmp, "wb") as f:
        torch.save(weights_only(payload), f)


def verify_snapshot(path: str | Path) -> None:
    """Raise a GlassboxError unless `path` is a complete snapshot whose bytes match its checksum."""
    path = Path(path)
    if path.is_dir():
        raise GlassboxError(f"{path} is a folder, not a snapshot file: give a run's folder as run= (and step=)")
    if not path.is_file():
        raise GlassboxError(f"no snapshot at {path}")
    run_dir = run_of_snapshot(path)
    in_a_run = path.parent.name == CHECKPOINT_DIR and (run_dir / RUN_STATE).is_file()
    expected = read_run_state(run_dir).get("snapshot_sha256", {}).get(path.name) if in_a_run else None
    if expected is None:
        raise GlassboxError(_why_unchecked(path, in_a_run))
    actual = sha256_of(path)
    if actual != expected:
        raise GlassboxError(
            f"snapshot {path} is corrupt: its sha256 is {actual[:16]}…, "
            f"but run.json recorded {expected[:16]}… when it was saved"
        )


def _why_unchecked(path: Path, in_a_run: bool) -> str:
    """Why a file has no checksum to check: not a snapshot, a snapshot away from its run, or an unfinished save."""
    if not _looks_like_a_snapshot(path):
        return (
            f"{path} is not a glassbox snapshot (those are the checkpoints/step_NNNNNNN.pt files a run's "
            "training wrote): give checkpoint= one of those, or run= and step="
        )
    if not in_a_run:
        return (
            f"{path} is a snapshot outside its run (no checkpoints/ folder with a run.json above it), so the "
            "checksum its run recorded cannot be checked: give run=<its run folder> step=<N>, or copy the whole "
            "run folder, not the snapshot alone"
        )
    if not SNAPSHOT_NAME.match(path.name):
        return f"{path} is not one of its run's snapshots (step_NNNNNNN.pt): give checkpoint= one of those"
    return (
        f"snapshot {path} has no checksum in its run's run.json: "
        "the run was stopped before the snapshot was completely saved"
    )


def _looks_like_a_snapshot(path: Path) -> bool:
    """Whether `path` is a torch.save archive whose pickle names a snapshot's keys (read as bytes, never unpickled)."""
    try:
        with zipfile.ZipFile(path) as archive:
            pickle = next(name for name in archive.namelist() if name.endswith("/data.pkl"))
            return b"vocab_hash" in archive.read(pickle)
    except (zipfile.BadZipFile, StopIteration, OSError):
        return False


def load_payload(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """A verified snapshot file's raw contents; tensors only, so loading a file runs no code from it."""
    path = Path(path)
    verify_snapshot(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # a truncated or corrupt file fails in many different ways
        raise GlassboxError(f"snapshot {path} is unreadable ({type(err).__name__}: {err})") from err


def load_snapshot(path: str | Path, map_location: str | torch.device = "cpu") -> Snapshot:
    """A verified snapshot, read through `Snapshot`."""
    payload = load_payload(path, map_location)
    try:
        return Snapshot.from_payload(Path(path), payload)
    except (KeyError, TypeError) as err:
        raise GlassboxError(f"{path} is not a glassbox snapshot (it lacks {err})") from err


def newest_valid_snapshot(run_dir: str | Path, map_location: str | torch.device = "cpu") -> Snapshot | None:
    """The newest snapshot of a run that passes `load_snapshot` and holds finite numbers, saying why each newer
    one was skipped."""
    for _, path in reversed(list_snapshots(run_dir)):
        try:
            snapshot = load_snapshot(path, map_location)
            snapshot.check_finite()
            return snapshot
        except GlassboxError as err:
            log.warning("%s; trying the one before it", err)
    return None


def remove_snapshots_after(run_dir: str | Path, step: int) -> None:
    """Delete the snapshots past `step` (and their weights-only copies) and the temporary files of
    interrupted saves."""
    for later_step, path in list_snapshots(run_dir):
        if later_step > step:
            path.unlink()
            weights_path(run_dir, later_step).unlink(missing_ok=True)
    for leftover in (Path(run_dir) / CHECKPOINT_DIR).glob(".*.tmp-*"):
        leftover.unlink()


def check_fits(snapshot: Snapshot, model_args: Mapping[str, Any], vocab_hash: str) -> None:
    """Raise a GlassboxError naming every shape key or vocabulary that differs from the snapshot's.

    `model_args` are the GPTConfig fields of the model about to be built (`model_args(model)`).
    """
    mismatched = []
    for key in SHAPE_KEYS:
        saved, now = snapshot.model_args[key], model_args[key]
        if saved != now:
            mismatched.append(f"{key if key == 'vocab_size' else 'model.' + key}: snapshot {saved!r}, now {now!r}")
    if snapshot.vocab_hash != vocab_hash:
        mismatched.append(f"vocab_hash: snapshot {snapshot.vocab_hash[:12]}…, now {vocab_hash[:12]}…")
    if mismatched:
        raise GlassboxError(
            f"snapshot {snapshot.path} does not fit this model and corpus ({'; '.join(mismatched)}). Use the model "
            "and corpus the run was trained with (its .hydra/config.yaml), or train a new one with train.resume=never."
        )


def check_vocab(snapshot: Snapshot, vocab_hash: str, where: str | Path) -> None:
    """Refuse a snapshot trained on another vocabulary: its token ids would decode to other characters.

    `where` is the prepared corpus folder the vocabulary came from (or a description of it); the message
    names the corpus the run was trained on and the command that gives back its vocabulary.
    """
    if snapshot.vocab_hash == vocab_hash:
        return
    trained = snapshot.config["corpus"]
    experiment = snapshot.config["name"]
    meta_path = Path(where) / "meta.json"
    prepared = read_json(meta_path)["inputs"] if meta_path.is_file() else None
    if prepared and prepared.get("corpus") != trained["name"]:
        advice = (
            f"{where} holds corpus '{prepared['corpus']}'. Use the run's own experiment: "
            f"EXPERIMENT={experiment} (make) or experiment={experiment} (python -m)."
        )
    else:
        advice = (
            f"That corpus was prepared differently since. Prepare it again as the run saw it, then retry:\n"
            f'  make prepare EXPERIMENT={experiment} ARGS="{" ".join(_prepare_overrides(trained, prepared))}"'
        )
    raise GlassboxError(
        f"{snapshot.path} was trained on corpus '{trained['name']}' with vocabulary {snapshot.vocab_hash}, "
        f"but {where} has vocabulary {vocab_hash}. {advice}"
    )


def _prepare_overrides(trained: dict[str, Any], prepared: dict[str, Any] | None) -> list[str]:
    """Overrides that prepare the corpus as the run saw it: the settings deciding its vocabulary that differ
    from how it is prepared now (meta.json's inputs), or, when that is not known, the run's encoding and
    normalization."""
    prepared = prepared or {}
    settings = {
        "corpus.sha256": (trained["sha256"], prepared.get("sha256")),
        "corpus.encoding": (trained["encoding"], prepared.get("encoding_requested")),
    }
    for key, value in trained["normalize"].items():
        settings[f"corpus.normalize.{key}"] = (value, prepared.get("normalize", {}).get(key))
    differing = {key: was for key, (was, now) in settings.items() if prepared and was != now}
    shown = differing or {key: was for key, (was, _) in settings.items() if key != "corpus.sha256"}
    return [f"{key}={str(value).lower() if isinstance(value, bool) else value}" for key, value in shown.items()]
