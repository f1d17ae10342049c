"""`glassbox.load_run`: a training run as one object, for notebooks.

    run = glassbox.load_run("outputs/xiyouji/latest")
    run.steps                      # [0, 1, 2, 4, …, 1200]
    model = run.model(1200)        # glassbox's GPT in eval mode
    logits, cache = model.run_with_cache(torch.tensor([run.vocab.encode("悟空道")]))
    run.metrics()                  # metrics.jsonl as a pandas DataFrame

Everything goes through the functions the stages use (snapshots.list_snapshots / load_snapshot /
model_from_snapshot, Vocab.load, JsonlFile), so a notebook sees what `make analyze` sees: only
verified snapshots, and the vocabulary the run was trained on.
"""
from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from glassbox.errors import GlassboxError
from glassbox.interop import require
from glassbox.model import GPT
from glassbox.snapshots import check_vocab, list_snapshots, load_snapshot, model_from_snapshot
from glassbox.tracking import JsonlFile
from glassbox.vocab import Vocab


class Run:
    """One training run directory: its config, snapshots, models, metrics and vocabulary."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._snapshots = dict(list_snapshots(path))
        if not self._snapshots:
            raise GlassboxError(f"{path} holds no snapshots (checkpoints/step_*.pt): give a training run's directory")

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}, steps={self.steps})"

    @property
    def steps(self) -> list[int]:
        """The steps that have a snapshot, in order."""
        return list(self._snapshots)

    def snapshot(self, step: int | None = None) -> dict[str, Any]:
        """The verified snapshot of `step` (default: the last): weights, optimizer state, config, …"""
        step = self.steps[-1] if step is None else step
        if step not in self._snapshots:
            raise GlassboxError(f"{self.path} has no snapshot at step {step}; its steps: {self.steps}")
        return load_snapshot(self._snapshots[step])

    def model(self, step: int | None = None) -> GPT:
        """The model at `step` (default: the last) in eval mode, ready for run_with_cache."""
        return model_from_snapshot(self.snapshot(step))

    @cached_property
    def _last(self) -> dict[str, Any]:
        """The last snapshot's config and vocabulary hash (its weights are not kept)."""
        snapshot = self.snapshot()
        return {"config": snapshot["config"], "vocab_hash": snapshot["vocab_hash"]}

    @property
    def config(self) -> DictConfig:
        """The resolved config the run was trained with (as its last snapshot recorded it)."""
        return OmegaConf.create(self._last["config"])

    @cached_property
    def vocab(self) -> Vocab:
        """The vocabulary the run was trained on, checked against the snapshots' hash.

        The config's processed_dir is relative to where training ran when paths.root_dir was
        relative; it is looked for from the current directory, then from each folder above the run.
        """
        processed = Path(self._last["config"]["paths"]["processed_dir"])
        candidates = [processed]
        if not processed.is_absolute():
            candidates += [up / processed for up in self.path.parents]
        path = next((c / "vocab.json" for c in candidates if (c / "vocab.json").exists()), candidates[0] / "vocab.json")
        vocab = Vocab.load(path)
        check_vocab({"vocab_hash": self._last["vocab_hash"], "config": self._last["config"]}, vocab.hash,
                    self.path, path)
        return vocab

    def metrics(self):
        """metrics.jsonl (one row per snapshot step: losses and every emergence metric) as a
        pandas DataFrame with a `step` column."""
        pandas = require("pandas", "Run.metrics()")
        return pandas.DataFrame(JsonlFile(self.path / "metrics.jsonl").read())


def load_run(path: str | Path) -> Run:
    """The run at `path`: a run directory, or an experiment's folder (its `latest` run)."""
    path = Path(path)
    if not path.is_dir():
        raise GlassboxError(f"{path} is not a directory: give a run directory, e.g. outputs/<experiment>/latest")
    if not (path / "checkpoints").is_dir() and (path / "latest").is_dir():
        path = path / "latest"
    return Run(path.resolve())
