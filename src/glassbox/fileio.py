"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Every stage writes through `atomic_path`: the bytes go to a temporary name beside the
target, are flushed to disk, and only then renamed over it. An interrupted run (Ctrl-C,
kill -9, a full disk) leaves at most a stray temporary file, never a truncated file that a
later stage would trust.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from glassbox.errors import GlassboxError


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write to; on success it replaces `path` in one rename.

    Errors of the file system (permissions, a full disk) become a `GlassboxError` naming the
    target; whatever the caller's own block raises passes through unchanged. Either way the
    temporary file is removed and the old `path`, if any, is untouched.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with explain_write_errors(path):
            path.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        with explain_write_errors(path):
            _fsync(tmp)
            os.replace(tmp, path)
            _fsync(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def explain_write_errors(path: Path, advice: str | None = None) -> Iterator[None]:
    """File-system errors while writing `path` as a GlassboxError: what failed and what to do.

    `advice` says what to do when the folder cannot be written (read-only, not the user's): by default
    write elsewhere with paths.*, which does not help a command that writes inside a run (run/layout.py
    `advice_for_writing`).
    """
    try:
        yield
    except OSError as err:
        if err.errno == errno.ENOSPC:
            raise GlassboxError(
                f"could not write {path}: {err.strerror}. The disk that holds {_existing_parent(path)} is full "
                f"({_free_space(path)} free): free some space, or write elsewhere (paths.output_dir=...)."
            ) from err
        if err.errno in (errno.EROFS, errno.EACCES, errno.EPERM) and advice:
            raise GlassboxError(f"could not write {path}: {err.strerror}. {advice}") from err
        raise GlassboxError(
            f"could not write {path}: {err.strerror or err}. Check that the directory is "
            "writable and the disk has space (paths.* overrides move the outputs elsewhere)."
        ) from err


def _existing_parent(path: Path) -> Path:
    """`path` or the nearest folder above it that exists."""
    return next(p for p in (path, *path.parents) if p.exists())


def _free_space(path: Path) -> str:
    return f"{shutil.disk_usage(_existing_parent(path)).free / 2**20:,.0f} MiB"


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def point_link(link: str | os.PathLike, target: str | os.PathLike) -> None:
    """Make `link` a relative symlink to `target`, replacing any old link in one rename."""
    link, target = Path(link), Path(target)
    link.parent.mkdir(parents=True, exist_ok=True)
    tmp = link.with_name(f".{link.name}.tmp-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(os.path.relpath(target.resolve(), link.parent.resolve()), target_is_directory=True)
    os.replace(tmp, link)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp, explain_write_errors(path):
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Human-readable UTF-8 JSON (CJK characters stay characters, not \\u escapes)."""
    write_text(path, json.dumps(obj, ensure_ascii=False, indent=2) + "\n")


def remove(path: str | os.PathLike) -> None:
    """Delete `path` if it is there; file-system errors are explained like those of a write."""
    with explain_write_errors(Path(path)):
        Path(path).unlink(missing_ok=True)


def is_bare_hydra_dir(path: str | os.PathLike) -> bool:
    """Whether `path` holds only what Hydra writes for a command (.hydra/ and its log): nothing of its own."""
    path = Path(path)
    return (path / ".hydra").is_dir() and all(p.name == ".hydra" or p.suffix == ".log" for p in path.iterdir())


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def sha256_of(path: str | os.PathLike) -> str:
    """The file's sha256 as hex, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
