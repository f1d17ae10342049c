"""`glassbox.load_run`: a training run as one object, for notebooks.

    run = glassbox.load_run("outputs/xiyouji/latest")
    run.steps                      # [0, 1, 2, 4, …, 700]
    model = run.model(700)        # glassbox's GPT in eval mode
    logits, cache = model.run_with_cache(torch.tensor([run.vocab.encode("悟空道")]))
    run.metrics()                  # metrics.jsonl as a pandas DataFrame

Everything goes through the functions the stages use (layout.list_snapshots, load_snapshot,
Snapshot.model and Snapshot.vocab, JsonlFile), so a notebook sees what `make analyze` sees: only
verified snapshots, and the vocabulary the run was trained on.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from glassbox.errors import GlassboxError
from glassbox.interop import require
from glassbox.model import GPT
from glassbox.run.layout import METRICS, list_snapshots, run_or_its_latest
from glassbox.run.snapshots import Snapshot, load_snapshot
from glassbox.run.tracking import JsonlFile
from glassbox.text.vocab import Vocab


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

    def snapshot(self, step: int | None = None) -> Snapshot:
        """The verified snapshot of `step` (default: the last): weights, optimizer state, config, …"""
        step = self.steps[-1] if step is None else step
        if step not in self._snapshots:
            raise GlassboxError(f"{self.path} has no snapshot at step {step}; its steps: {self.steps}")
        return load_snapshot(self._snapshots[step])

    def model(self, step: int | None = None) -> GPT:
        """The model at `step` (default: the last) in eval mode, ready for run_with_cache."""
        return self.snapshot(step).model()

    @cached_property
    def _last(self) -> Snapshot:
        """The last snapshot, for its config and vocabulary."""
        return self.snapshot()

    @property
    def config(self) -> DictConfig:
        """The resolved config the run was trained with (as its last snapshot recorded it)."""
        return OmegaConf.create(self._last.config)

    @cached_property
    def vocab(self) -> Vocab:
        """The vocabulary the run was trained on, checked against the snapshots' hash."""
        return self._last.vocab()

    def metrics(self):
        """metrics.jsonl (one row per snapshot step: losses and every emergence metric) as a
        pandas DataFrame with a `step` column."""
        pandas = require("pandas", "Run.metrics()")
        return pandas.DataFrame(JsonlFile(self.path / METRICS).read())


def load_run(path: str | Path) -> Run:
    """The run at `path`: a run directory, or an experiment's folder (its `latest` run)."""
    path = Path(path)
    if not path.is_dir():
        raise GlassboxError(f"{path} is not a directory: give a run directory, e.g. outputs/<experiment>/latest")
    return Run(run_or_its_latest(path).resolve())
