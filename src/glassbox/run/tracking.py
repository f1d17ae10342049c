"""The sinks at the edge: a W&B run and a local `metrics.jsonl`, written side by side.

Nothing here computes a metric. Every number logged goes to the JSONL file first, so a run
can be read without W&B; W&B is failure-isolated: if it raises (no disk space, a bad
network, a bug), the run logs one warning and carries on with the local file alone.

Offline runs (the default) cannot call `use_artifact` (W&B refuses without a server), so
lineage is recorded in the run's config under `inputs` instead, and with `use_artifact`
once the mode is online.
"""
from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from glassbox import fileio

log = logging.getLogger(__name__)

STEP_KEY = "train/step"  # the x-axis of every metric, so analysis curves line up with training


def dataset_artifact_name(corpus_name: str) -> str:
    """The W&B artifact a prepared corpus is logged as (prepare) and consumed as (train)."""
    return f"dataset-{corpus_name}"


class JsonlFile:
    """Append-only JSON lines, flushed per record so a killed run loses at most the last line."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def append(self, record: dict[str, Any]) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text(encoding="utf-8").splitlines() if line.strip()]

    def keep_until(self, step: int) -> None:
        """Drop the rows after `step`, and a last line a kill cut short: a resumed run writes them again."""
        if not self.path.exists():
            return
        kept = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if row["step"] <= step:
                kept.append(line + "\n")
        fileio.write_text(self.path, "".join(kept))


class Tracker:
    """One stage's W&B run plus its local metrics file. Use as a context manager."""

    def __init__(
        self,
        cfg: DictConfig,
        run_dir: str | os.PathLike,
        job_type: str,
        *,
        metrics_path: str | os.PathLike | None = None,
        name: str | None = None,
        run_id: str | None = None,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.metrics = JsonlFile(metrics_path or self.run_dir / "metrics.jsonl")
        self._run = None
        self._warned = False
        wb = cfg.wandb
        if wb.mode == "disabled":
            return
        self._call(
            "init",
            self._init,
            mode=wb.mode,
            project=wb.project,
            entity=wb.entity,
            group=wb.group,
            tags=list(wb.tags),
            job_type=job_type,
            name=name,
            id=run_id,
            config=OmegaConf.to_container(cfg, resolve=True),
        )

    def _init(self, **kwargs) -> None:
        import wandb

        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._run = wandb.init(
            dir=str(self.run_dir), resume="allow" if kwargs["id"] else None, reinit="finish_previous", **kwargs
        )
        self._run.define_metric(STEP_KEY)
        self._run.define_metric("*", step_metric=STEP_KEY)

    def stream(self, name: str) -> JsonlFile:
        """Another local JSONL file beside metrics.jsonl (e.g. per-step progress), local only."""
        return JsonlFile(self.metrics.path.with_name(f"{name}.jsonl"))

    @property
    def wandb_run(self):
        """The live W&B run, or None when disabled or after a failure."""
        return self._run

    @property
    def offline(self) -> bool:
        return self._run is not None and self._run.settings.mode == "offline"

    def _call(self, what: str, fn, *args, **kwargs):
        """Run one W&B operation; on any error warn once and stop using W&B for this run."""
        try:
            return fn(*args, **kwargs)
        except Exception as err:  # noqa: BLE001 - isolation is the point
            if not self._warned:
                log.warning("W&B %s failed (%s: %s); continuing without W&B, %s stays complete",
                            what, type(err).__name__, err, self.metrics.path)
                self._warned = True
            self._run = None
            return None

    def log(self, metrics: dict[str, float], step: int) -> None:
        """Numbers: to metrics.jsonl, then to W&B against the training step."""
        self.metrics.append({"step": step, **metrics})
        self.log_media(metrics, step)

    def log_media(self, payload: dict[str, Any], step: int) -> None:
        """Anything W&B can show (tables, images, numbers) at `step`; W&B only."""
        if self._run is not None:
            self._call("log", self._run.log, {**payload, STEP_KEY: step})

    def log_tables(self, tables: dict[str, tuple[list[str], list[list]]], step: int) -> None:
        """{name: (columns, rows)} as W&B tables `tables/<name>` at `step`; W&B only (the stage keeps them in JSON)."""
        if self._run is not None:
            import wandb

            self.log_media({f"tables/{name}": wandb.Table(columns=columns, data=rows)
                            for name, (columns, rows) in tables.items()}, step)

    def summary(self, values: dict[str, Any]) -> None:
        if self._run is not None:
            self._call("summary", self._run.summary.update, values)

    def log_artifact(
        self,
        name: str,
        type: str,
        files: Iterable[str | os.PathLike],
        *,
        aliases: Iterable[str] = (),
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """Log files as a new artifact version; they are referenced in place, not copied."""
        if self._run is None:
            return

        def _log() -> None:
            import wandb

            artifact = wandb.Artifact(name, type=type, metadata=metadata or {})
            for path in files:
                artifact.add_file(str(path), policy="immutable")  # never rewritten, so no staging copy
            self._run.log_artifact(artifact, aliases=["latest", *aliases])

        self._call("log_artifact", _log)

    def use_artifact(self, name: str, type: str, alias: str = "latest", **identity: Any) -> None:
        """Record that this run consumed an artifact: real lineage online, a config entry offline."""
        if self._run is None:
            return
        record = {"artifact": f"{name}:{alias}", "type": type, **identity}
        self._call("config", self._run.config.update, {"inputs": {f"{name}:{alias}": record}}, allow_val_change=True)
        if not self.offline:
            self._call("use_artifact", self._run.use_artifact, f"{name}:{alias}", type=type)

    def finish(self, exit_code: int = 0) -> None:
        if self._run is not None:
            self._call("finish", self._run.finish, exit_code=exit_code)
            self._run = None

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.finish(exit_code=0 if exc_type is None else 1)
