"""Carrying on after an interruption: which run to continue, from which snapshot, and stopping cleanly.

`make train` looks at the experiment's latest run (outputs/<name>/latest). If that run did not
complete (Ctrl-C, SIGTERM, kill -9, a crash), training continues from its newest valid snapshot,
in the same run directory and the same W&B run: `train.resume=auto`, the default.
`train.resume=never` always starts a new run; `train.resume=<path to a snapshot>` continues from
that snapshot, in its run. In a sweep (--multirun) `auto` means `never`: its jobs share one
experiment, so "the latest run" is not theirs to continue.

Continuing at step s rewinds the run to s: the rows of metrics.jsonl and progress.jsonl after s
and the snapshots after s are deleted, and the run writes them again exactly as an uninterrupted
run would (bit for bit on CPU): the snapshot holds the model, the optimizer, every RNG state and
the recent losses, and the evaluation batches and probe baselines are drawn from fixed seeds.

The resuming command's own Hydra directory is moved into the run it continues, as
`resumes/<its name>/` (its .hydra config and log), so no empty run is left beside the real one.

A run has one writer: the process training it holds its lock (run/lock.py), taken before
anything of the run is read. A second command on the same run stops with an error naming the
first, instead of resuming it too and interleaving their writes.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import shlex
import signal
import socket
import threading
from dataclasses import dataclass
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from glassbox.config.stages import TrainStage
from glassbox.errors import GlassboxError, Stopped
from glassbox.fileio import is_bare_hydra_dir
from glassbox.run import lock
from glassbox.run.layout import (
    CHECKPOINT_DIR,
    METRICS,
    PROGRESS,
    SWEEPS_DIR,
    latest_link,
    read_run_state,
    run_of_snapshot,
    write_run_state,
)
from glassbox.run.snapshots import (
    Snapshot,
    TrainingState,
    check_fits,
    load_snapshot,
    model_args,
    newest_valid_snapshot,
    remove_snapshots_after,
)
from glassbox.run.tracking import JsonlFile

log = logging.getLogger(__name__)

# Settings a resumed run may change without a word: where files go and how W&B runs.
QUIET_SETTINGS = ("paths.", "wandb.", "train.resume")


@dataclass(frozen=True)
class RunStart:
    """Where a training run begins: a new run at step 0, or an interrupted one at its snapshot's step."""

    dir: Path
    wandb_id: str
    resumed_step: int | None = None  # the step of the snapshot resumed from, None for a new run

    @property
    def step(self) -> int:
        return self.resumed_step or 0


def start_run(
    settings: TrainStage, config: DictConfig, new_run_dir: Path, state: TrainingState, vocab_hash: str, run_facts: dict
) -> RunStart:
    """Begin a new run in `new_run_dir`, or restore into `state` the run `train.resume` asks to continue.

    A resumed run's whole `config` is compared with its snapshot's, and what differs is named.

    `run_facts` go into a new run's run.json (e.g. n_params, the probe pairs), for readers that
    should not need a snapshot or the config to know them.
    The run returned is claimed for this process (run/lock.py); `lock.release(run.dir)` lets it go.
    """
    snapshot = find_snapshot_to_resume(settings)
    if snapshot is None:
        start = RunStart(dir=Path(new_run_dir), wandb_id=secrets.token_hex(4))
        with lock.claimed(start.dir):
            write_run_state(
                start.dir,
                status="running",
                experiment=settings.name,
                wandb_run_id=start.wandb_id,
                **run_facts,
                last_snapshot=None,
                **this_process(),
            )
        return start

    run_dir, step = run_of_snapshot(snapshot.path), snapshot.step
    with lock.claimed(run_dir):  # claimed already by find_snapshot_to_resume; let go if resuming fails
        check_fits(snapshot, model_args(state.model), vocab_hash)
        if step > settings.train.max_iters:
            raise GlassboxError(
                f"snapshot {snapshot.path} is at step {step}, past train.max_iters={settings.train.max_iters}"
            )
        warn_about_changed_settings(snapshot.config, OmegaConf.to_container(config, resolve=True))
        state.restore(snapshot)
        rewind_run(run_dir, step)
        move_into_run(Path(new_run_dir), run_dir)
        resumes = read_run_state(run_dir).get("resumed_at", [])
        write_run_state(run_dir, status="running", last_snapshot=step, resumed_at=[*resumes, step], **this_process())
    log.info("resuming run %s at step %d (train.resume=never starts a new run instead)", run_dir, step)
    return RunStart(dir=run_dir, wandb_id=snapshot.wandb_run_id, resumed_step=step)


def find_snapshot_to_resume(settings: TrainStage) -> Snapshot | None:
    """The snapshot `train.resume` points at, or None to start a new run.

    The run it would continue is claimed first (run/lock.py): a run another process is training
    raises a GlassboxError naming that process. It stays claimed when a snapshot is returned.
    """
    run_dir = _run_to_continue(settings)
    if run_dir is None:
        return None
    with lock.claimed(run_dir):
        found = _snapshot_to_resume(settings.train.resume, run_dir)
    if found is None:
        lock.release(run_dir)
    return found


def is_sweep_job() -> bool:
    """Whether this process is a job of a sweep (--multirun): its run lives in the sweep, never at `latest`."""
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def _run_to_continue(settings: TrainStage) -> Path | None:
    """The run `train.resume` may continue, not yet looked into: the given snapshot's, or (auto) the latest."""
    setting = settings.train.resume
    if setting == "never":
        return None
    if setting != "auto":
        path = Path(setting)
        if path.parent.name != CHECKPOINT_DIR:
            raise GlassboxError(
                f"train.resume={setting}: expected auto, never or a snapshot of a run, "
                f"<run>/{CHECKPOINT_DIR}/step_NNNNNNN.pt"
            )
        if not path.exists():
            raise GlassboxError(f"train.resume={setting}: there is no such snapshot")
        return run_of_snapshot(path)
    if is_sweep_job():
        return None
    latest = latest_link(settings.paths.output_dir, settings.name)
    if latest.exists() and latest.resolve().parent.parent.name == SWEEPS_DIR:
        # an older glassbox pointed `latest` at sweep jobs: a plain train must not continue one in place
        log.warning(f"{latest} points at a sweep's job, {latest.resolve()}: training a new run instead")
        return None
    return latest.resolve() if latest.exists() else None


def _snapshot_to_resume(setting: str, run_dir: Path) -> Snapshot | None:
    """Which snapshot of `run_dir` train.resume=`setting` continues from; read only once the run is claimed."""
    if setting != "auto":
        return load_snapshot(setting)
    if read_run_state(run_dir).get("status", "complete") == "complete":
        return None
    found = newest_valid_snapshot(run_dir)
    if found is None:
        log.warning("the latest run %s stopped before its first usable snapshot; starting a new run", run_dir)
    return found


def rewind_run(run_dir: Path, step: int) -> None:
    """Forget what the run did after `step`, so its files hold each step once when it goes on."""
    for name in (METRICS, PROGRESS):
        JsonlFile(run_dir / name).keep_until(step)
    remove_snapshots_after(run_dir, step)


def move_into_run(invocation_dir: Path, run_dir: Path) -> None:
    """Move the resuming command's Hydra directory (.hydra/ and its log, nothing else) into the run."""
    if not invocation_dir.is_dir() or invocation_dir.resolve() == run_dir.resolve():
        return
    if not is_bare_hydra_dir(invocation_dir):
        return  # not a bare Hydra directory: leave it where it is
    destination = run_dir / "resumes" / invocation_dir.name
    destination.parent.mkdir(exist_ok=True)
    os.replace(invocation_dir, destination)  # the open log file moves with it and logs on there


def warn_about_changed_settings(saved: dict, now: dict) -> None:
    """Say which settings differ from the snapshot's: the resumed run is then not the one it continues."""
    saved, now = _flatten(saved), _flatten(now)
    changed = [
        f"{key}: {saved.get(key)!r} -> {now.get(key)!r}"
        for key in sorted(saved.keys() | now.keys())
        if saved.get(key) != now.get(key) and not key.startswith(QUIET_SETTINGS)
    ]
    if changed:
        log.warning("resuming with settings that differ from the snapshot's: %s", "; ".join(changed))


def _flatten(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat |= _flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def this_process() -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname()}


def is_running_elsewhere(state: dict) -> bool:
    """Whether another live process on this machine is training the run whose run.json is `state`."""
    pid = state.get("pid")
    if state.get("status") != "running" or state.get("host") != socket.gethostname() or pid in (None, os.getpid()):
        return False
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def how_to_resume(resume: str, snapshot: Path) -> str | None:
    """The command that continues this run from `snapshot`, or None when it is the same command again
    (`resume`: the run's train.resume).

    With train.resume=auto the same command resumes the run. With never (or a snapshot) it would start a
    new run (or rewind this one), and in a sweep auto means never: then it is the run's own overrides with
    train.resume=<this snapshot>.
    """
    multirun = is_sweep_job()
    if resume == "auto" and not multirun:
        return None
    overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    kept = [o for o in overrides if not re.match(r"[+~]*train\.resume=", o)]
    command = shlex.join(["python", "-m", "glassbox.train", *kept, f"train.resume={_hydra_value(str(snapshot))}"])
    if multirun:
        return f"To resume this run (in a sweep, train.resume=auto starts new runs):\n  {command}"
    return (
        f"To resume this run (the same command would not: it has train.resume={resume}):\n"
        f"  {command}\nor your make command with train.resume=auto in place of train.resume={resume} "
        "(auto continues the experiment's latest run: this one)."
    )


def _hydra_value(text: str) -> str:
    """`text` as a Hydra override value: as it is when Hydra's grammar takes it bare, else quoted."""
    if re.fullmatch(r"[\w./:@+-]+", text, re.ASCII):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


class Interrupted(Stopped):
    """Training stopped on Ctrl-C or SIGTERM after saving a snapshot; exits 128 + the signal's number."""

    def __init__(self, signum: int, step: int, resume: str | None) -> None:
        """`resume`: how to continue, when the same command would not (`how_to_resume`)."""
        super().__init__(
            f"stopped by {signal.Signals(signum).name} at step {step}, after saving a snapshot. "
            + (resume or "Run the same command again to resume (train.resume=auto)."),
            128 + signum,
        )


class StopSignals:
    """From creation until `uninstall`, Ctrl-C and SIGTERM only ask the training loop to stop.

    The loop then saves a snapshot and raises `Interrupted`. The first signal puts the usual
    handlers back, so a second one stops the process at once.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous = {}
        if threading.current_thread() is threading.main_thread():  # the only thread that may set handlers
            self._previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _handle(self, signum: int, frame) -> None:
        self.signum = signum
        self.uninstall()
        log.warning(
            "%s: stopping after this step, with a snapshot (again to stop at once)", signal.Signals(signum).name
        )

    def uninstall(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}
