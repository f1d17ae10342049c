"""A process that imports torch, Hydra, W&B and glassbox's library once, then forks a fresh child for each
stage a test runs: `python -m glassbox.<stage>` without the seconds of imports every start costs.

Each child is a process of its own, as a user's command is: its own working directory, environment, argv,
stdin (/dev/null), stdout and stderr (files the test reads back), exit code and signals, and a normal
interpreter exit (atexit, flushes). Only the imports are shared, done before any torch work, so no thread
pool exists to be lost by the fork. The test side is `helpers.StageServer`.

Protocol, one JSON object per line: a request {"module", "args", "cwd", "env", "stdout", "stderr",
"ctrl_c_at"} on stdin; on stdout the child's {"pid"}, then its {"returncode"} once it has ended.
"""

from __future__ import annotations

import importlib
import io
import json
import os
import pkgutil
import runpy
import signal
import sys

import glassbox

# Stages run as __main__ in the child, as `python -m` runs them: they must not be imported here first.
STAGES = {"ablate", "analyze", "explore", "export", "inspect_hf", "inspect_model", "patch", "prepare"}
STAGES |= {"replicate", "sample", "scope", "steer", "sweep", "trace", "train"}


def import_the_library() -> None:
    """Every glassbox module but the stages, and through them torch, Hydra, W&B, matplotlib, transformers."""
    for module in pkgutil.walk_packages(glassbox.__path__, "glassbox."):
        if module.name.removeprefix("glassbox.") not in STAGES:
            importlib.import_module(module.name)
    imported = sorted(name for name in STAGES if f"glassbox.{name}" in sys.modules)
    assert not imported, f"the library imports stage modules {imported}: they would run twice"


def ctrl_c_at_a_call(where: str, nth: int) -> None:
    """Press Ctrl-C (SIGINT to this process) as the nth call of `where` ("module:Attribute.path") begins."""
    module, path = where.split(":")
    *owner_path, name = path.split(".")
    owner = importlib.import_module(module)
    for part in owner_path:
        owner = getattr(owner, part)
    real, calls = getattr(owner, name), []

    def pressed_at_the_nth_call(*args, **kwargs):
        calls.append(None)
        if len(calls) == nth:
            os.kill(os.getpid(), signal.SIGINT)
        return real(*args, **kwargs)

    setattr(owner, name, pressed_at_the_nth_call)


def text_stream(fd: int) -> io.TextIOWrapper:
    """An unbuffered UTF-8 text stream on fd, as PYTHONUNBUFFERED=1 gives a fresh interpreter."""
    raw = io.FileIO(fd, "w", closefd=False)
    return io.TextIOWrapper(raw, encoding="utf-8", line_buffering=True, write_through=True)


def become_the_stage(request: dict) -> None:
    """In the forked child: take the request's directory, environment and files, then run the stage module
    as __main__. Its SystemExit, an uncaught exception or Ctrl-C ends this process as they end `python -m`."""
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    for fd, (path, flags) in enumerate(
        [
            (os.devnull, os.O_RDONLY),
            (request["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
            (request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
        ]
    ):
        opened = os.open(path, flags, 0o644)
        os.dup2(opened, fd)
        os.close(opened)
    sys.stdin = sys.__stdin__ = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding="utf-8")
    sys.stdout = sys.__stdout__ = text_stream(1)
    sys.stderr = sys.__stderr__ = text_stream(2)
    sys.path[0] = request["cwd"]  # `python -m` puts the working directory first
    # Ctrl-C as in a user's terminal, whatever the test process inherited: a background job (`make test &`, CI)
    # ignores SIGINT, and a Python started ignoring it keeps ignoring it
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if request.get("ctrl_c_at"):
        ctrl_c_at_a_call(*request["ctrl_c_at"])
    sys.argv = [request["module"], *request["args"]]
    runpy.run_module(request["module"], run_name="__main__", alter_sys=True)


def serve() -> None:
    requests = os.fdopen(os.dup(0), "r", encoding="utf-8")
    replies = os.fdopen(os.dup(1), "w", encoding="utf-8")
    for line in requests:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            requests.close()
            replies.close()
            become_the_stage(request)
            return  # the stage returned: this child exits 0, as `python -m` does
        replies.write(json.dumps({"pid": pid}) + "\n")
        replies.flush()
        _, status = os.waitpid(pid, 0)
        replies.write(json.dumps({"returncode": os.waitstatus_to_exitcode(status)}) + "\n")
        replies.flush()


if __name__ == "__main__":
    import_the_library()
    serve()
