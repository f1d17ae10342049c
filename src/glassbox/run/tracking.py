"""The sinks at the edge: a W&B run and a local `metrics.jsonl`, written side by side.

Nothing here computes a metric. Every number logged goes to the JSONL file first, so a run
can be read without W&B; W&B is failure-isolated: if it raises (no disk space, a bad
network, a bug), the run logs one warning and carries on with the local file alone. An
online run that cannot reach the server within wandb.init_timeout seconds logs offline
instead (`wandb sync` uploads it later), saying so before it waits and when it gives up.

The W&B mode is the user's as W&B users expect it: `wandb.mode=` on the command line, else the
WANDB_MODE environment variable, else what `wandb offline` / `wandb disabled` wrote into W&B's
settings files, else offline (`wandb_mode`). A run is named and tagged after how its stage was
launched (`Launch`: the Hydra choices and overrides, which its config records too), so runs in one
workspace can be told apart and filtered.

Offline runs (the default) cannot call `use_artifact` (W&B refuses without a server), so
lineage is recorded in the run's config under `inputs` instead, and with `use_artifact`
once the mode is online.
"""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from PIL import Image

from glassbox import fileio
from glassbox import metric_keys as keys
from glassbox.errors import GlassboxError

log = logging.getLogger(__name__)

STEP_KEY = "train/step"  # the x-axis of every metric, so analysis curves line up with training
WANDB_MODES = ("online", "offline", "disabled", "shared", "dryrun", "run")  # what wandb.init accepts
TAG_GROUPS = ("experiment", "corpus", "model", "train", "analysis")  # config groups a run is tagged with


def wandb_mode(configured: str | None) -> str:
    """The W&B mode a stage runs in: `configured` (wandb.mode) when set, else WANDB_MODE, else the mode in
    W&B's settings files (`wandb offline`, `wandb disabled`), else offline.

    The mode is always passed to wandb.init explicitly, which would override WANDB_MODE: hence it is
    resolved here, in W&B's own order. `wandb online` only clears the settings files' mode, so it
    leaves glassbox offline; WANDB_MODE=online or wandb.mode=online goes online.
    """
    mode = configured or os.environ.get("WANDB_MODE") or _settings_file_mode() or "offline"
    if mode not in WANDB_MODES:
        source = (
            "wandb.mode"
            if configured
            else "WANDB_MODE"
            if os.environ.get("WANDB_MODE")
            else "the mode in W&B's settings (`wandb online` clears it)"
        )
        raise GlassboxError(f"{source} is {mode!r}; use online, offline or disabled")
    return mode


def _settings_file_mode() -> str | None:
    """The mode `wandb offline` / `wandb disabled` wrote into the project's or the user's W&B settings."""
    from wandb.sdk import wandb_setup

    return wandb_setup.singleton().settings.read_system_settings().all().get("mode")


@dataclass(frozen=True)
class Launch:
    """How the running stage was started, as Hydra saw it; empty outside a Hydra app (a notebook, a test)."""

    choices: dict[str, str] = field(default_factory=dict)  # config group -> option, e.g. model -> seed
    overrides: list[str] = field(default_factory=list)  # from the command line, e.g. experiment=tiny seed=2
    job: int | None = None  # the job number within a multirun

    @classmethod
    def current(cls) -> Launch:
        if not HydraConfig.initialized():
            return cls()
        hydra_cfg = HydraConfig.get()
        choices = {
            group: option
            for group, option in hydra_cfg.runtime.choices.items()
            if option is not None and group.split("/")[0] != "hydra"
        }
        job = hydra_cfg.job.get("num") if hydra_cfg.mode == RunMode.MULTIRUN else None
        return cls(choices, list(hydra_cfg.overrides.task), job)

    @property
    def tags(self) -> list[str]:
        """`model=seed`, `corpus=xiyouji`, ...: one W&B tag per chosen config group of TAG_GROUPS."""
        return [f"{group}={self.choices[group]}" for group in TAG_GROUPS if group in self.choices]

    def run_name(self, cfg: DictConfig) -> str:
        """A training run's W&B name: experiment, model choice and seed (`xiyouji-seed-s1337`), and the
        job number in a sweep (`tiny-tiny-s1-job3`)."""
        parts = [cfg.name, self.choices.get("model"), f"s{cfg.seed}", None if self.job is None else f"job{self.job}"]
        return "-".join(str(part) for part in parts if part is not None)


def sweep_report_tracker(
    job_cfg: DictConfig, sweep_dir: Path, job_type: str, name: str, about: dict[str, Any]
) -> Tracker:
    """The W&B run of a report made from a sweep's jobs (named `<group>-<name>`), in their group with
    their W&B settings; its config: the experiment's name, that W&B section and `about`."""
    cfg = OmegaConf.create(
        {"name": job_cfg.name, "wandb": OmegaConf.to_container(job_cfg.wandb, resolve=True), **about}
    )
    return Tracker(cfg, sweep_dir, job_type=job_type, name=f"{cfg.wandb.group}-{name}")


def dataset_artifact_name(corpus_name: str) -> str:
    """The W&B artifact a prepared corpus is logged as (prepare) and consumed as (train)."""
    return f"dataset-{corpus_name}"


class JsonlFile:
    """Append-only JSON lines, flushed per record so a killed run loses at most the last line."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def append(self, record: dict[str, Any]) -> None:
        with fileio.explain_write_errors(self.path), open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def read(self) -> list[dict[str, Any]]:
        """Every record; a last line cut short (a process killed while appending it) is dropped with a warning."""
        if not self.path.exists():
            return []
        lines = [line for line in self.path.read_text(encoding="utf-8").splitlines() if line.strip()]
        records = []
        for number, line in enumerate(lines, start=1):
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as err:
                if number < len(lines):
                    raise GlassboxError(
                        f"{self.path} is damaged: line {number} is not JSON ({err}), and it is not "
                        "the last line, which a crash could have cut short"
                    ) from err
                log.warning(
                    "%s: its last line is cut short (%s), as a process killed while writing it leaves "
                    "it; reading the %d lines before it",
                    self.path,
                    err,
                    len(records),
                )
        return records

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


@dataclass
class ReportLog:
    """A report as W&B shows it (`Tracker.log_report`): tables {key: (columns, rows)} at `step`, images
    (key, png, caption, step; drawn as they are logged), numbers for the run's summary, and the report's
    files as one artifact of type "report"."""

    tables: dict[str, tuple[list[str], list[list]]]
    step: int = 0
    images: Iterable[tuple[str, bytes, str, int]] = ()
    summary: dict[str, Any] = field(default_factory=dict)
    artifact: str | None = None
    files: list[Path] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)


class Tracker:
    """One stage's W&B run plus its local metrics file. Use as a context manager.

    The run's config is the stage's resolved config plus `choices` and `overrides` (how it was
    launched, `Launch`) and `facts` (e.g. n_params); its tags add the Hydra choices to wandb.tags.
    """

    def __init__(
        self,
        cfg: DictConfig,
        run_dir: str | os.PathLike,
        job_type: str,
        *,
        metrics_path: str | os.PathLike | None = None,
        name: str | None = None,
        run_id: str | None = None,
        facts: dict[str, Any] | None = None,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.metrics = JsonlFile(metrics_path or self.run_dir / "metrics.jsonl")
        self._run = None
        self._warned = False
        wb = cfg.wandb
        mode = wandb_mode(wb.mode)
        if mode == "disabled":
            return
        launch = Launch.current()
        self._call(
            "init",
            self._init,
            init_timeout=wb.get("init_timeout", 90),  # 90 s, W&B's own default, for configs saved without it
            mode=mode,
            project=wb.project,
            entity=wb.entity,
            group=wb.group,
            tags=list(dict.fromkeys([*wb.tags, *launch.tags])),
            job_type=job_type,
            name=name,
            id=run_id,
            config={
                **OmegaConf.to_container(cfg, resolve=True),
                "choices": launch.choices,
                "overrides": launch.overrides,
                **(facts or {}),
            },
        )

    def _init(self, init_timeout: float, **kwargs) -> None:
        import wandb

        self.run_dir.mkdir(parents=True, exist_ok=True)
        start = dict(dir=str(self.run_dir), resume="allow" if kwargs["id"] else None, reinit="finish_previous")
        if kwargs["mode"] != "online":
            self._run = wandb.init(**start, **kwargs)
        else:
            log.info(
                "W&B: connecting to the server (giving up after wandb.init_timeout=%g s, then logging offline) …",
                init_timeout,
            )
            try:
                self._run = wandb.init(**start, **kwargs, settings=wandb.Settings(init_timeout=init_timeout))
            except Exception as err:  # noqa: BLE001 - whatever stopped it, offline still records the run
                log.warning(
                    "W&B could not go online (%s: %s); logging offline instead: `wandb sync %s` uploads the run later",
                    type(err).__name__,
                    str(err).splitlines()[0],
                    self.run_dir / "wandb" / "offline-run-*",
                )
                wandb.teardown()  # the failed attempt holds the run id in W&B's service; a new service frees it
                self._run = wandb.init(**start, **{**kwargs, "mode": "offline"})
        self._run.define_metric(STEP_KEY)
        self._run.define_metric("*", step_metric=STEP_KEY)
        self._run.define_metric(keys.LOSS_VAL, step_metric=STEP_KEY, summary="min")  # the best val loss

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
                log.warning(
                    "W&B %s failed (%s: %s); continuing without W&B, %s stays complete",
                    what,
                    type(err).__name__,
                    err,
                    self.metrics.path,
                )
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

    def log_histogram(self, key: str, values: Sequence[float], step: int) -> None:
        """A histogram of `values` at `step`; W&B only."""
        self._log_built(key, lambda wandb: wandb.Histogram(values), step)

    def log_table(self, key: str, columns: list[str], rows: list[list[Any]], step: int) -> None:
        """A table at `step`; W&B only."""
        self._log_built(key, lambda wandb: wandb.Table(columns=columns, data=rows), step)

    def log_tables(self, tables: dict[str, tuple[list[str], list[list]]], step: int) -> None:
        """{name: (columns, rows)} as W&B tables `tables/<name>` at `step`; W&B only (the stage keeps them in JSON)."""
        for name, (columns, rows) in tables.items():
            self.log_table(f"tables/{name}", columns, rows, step)

    def log_image(self, key: str, png: bytes, caption: str, step: int) -> None:
        """A PNG image at `step`; W&B only."""
        self._log_built(key, lambda wandb: wandb.Image(Image.open(io.BytesIO(png)), caption=caption), step)

    def log_report(self, report: ReportLog) -> None:
        """A report's tables, images, summary numbers and artifact; W&B only (its files are on disk)."""
        if self._run is None:
            return  # nothing is drawn for no run
        for key, (columns, rows) in report.tables.items():
            self.log_table(key, columns, rows, report.step)
        for key, png, caption, step in report.images:
            self.log_image(key, png, caption, step)
        if report.summary:
            self.summary(report.summary)
        if report.artifact:
            self.log_artifact(report.artifact, "report", report.files, metadata=report.metadata)

    def _log_built(self, key: str, build, step: int) -> None:
        """Log what `build(wandb)` makes (a wandb.Table, wandb.Image, ...) at `step`, isolated like every W&B call."""
        if self._run is None:
            return

        def _log() -> None:
            import wandb

            self._run.log({key: build(wandb), STEP_KEY: step})

        self._call("log", _log)

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
