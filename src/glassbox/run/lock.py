"""One writer per run: the process that trains a run holds an exclusive lock on it.

Two `make train` started at once on one interrupted run would otherwise both resume it and
interleave their rows in metrics.jsonl. The lock is `fcntl.flock` on `<run>/train.lock`, taken
before anything of the run is read: taking it is atomic, so exactly one process gets it, and the
operating system drops it when that process ends, however it ends (kill -9 included), so a lock
left behind by a dead process never blocks anyone. The file holds the pid and host of the
process that took it last, for the message of the one refused.
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from glassbox.errors import GlassboxError
from glassbox.fileio import explain_write_errors
from glassbox.run.layout import LOCK

log = logging.getLogger(__name__)

_held: dict[Path, int] = {}  # run directory -> the open lock file of this process


def claim(run_dir: str | Path) -> None:
    """Take the run's lock for this process (a no-op if it holds it), or raise a GlassboxError naming its holder."""
    run_dir = Path(run_dir).resolve()
    if run_dir in _held:
        return
    with explain_write_errors(run_dir / LOCK):
        run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(run_dir / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(fd)
        os.close(fd)
        raise GlassboxError(
            f"run {run_dir} is being trained by {holder} right now (it holds {run_dir / LOCK}). Wait until it "
            "stops, or stop it; to train a new run meanwhile, add train.resume=never."
        ) from None
    except OSError as err:  # a file system without locks (some network mounts): train, but say what is lost
        log.warning(
            "could not lock %s (%s): nothing stops a second process from training this run at the same time",
            run_dir / LOCK,
            err.strerror or err,
        )
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
    _held[run_dir] = fd


def release(run_dir: str | Path) -> None:
    """Let go of the run's lock, if this process holds it."""
    fd = _held.pop(Path(run_dir).resolve(), None)
    if fd is not None:
        os.close(fd)  # closing the file drops the flock


@contextmanager
def claimed(run_dir: str | Path) -> Iterator[None]:
    """Claim the run for the block; if the block fails, release it again (on success it stays claimed)."""
    claim(run_dir)
    try:
        yield
    except BaseException:
        release(run_dir)
        raise


def _holder(fd: int) -> str:
    """'process <pid> on <host>', from the lock file; the holder writes it just after locking, so wait a moment."""
    for _ in range(20):
        text = os.pread(fd, 200, 0).decode(errors="replace").split()
        if len(text) == 2:
            return f"process {text[0]} on {text[1]}"
        time.sleep(0.05)
    return "another process"
