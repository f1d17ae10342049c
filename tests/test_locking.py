"""One writer per run: two trains at once on one run, one resumes it and the other is refused naming the
process that holds it; a live process's lock refuses, a dead one's never blocks."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from glassbox.errors import GlassboxError
from glassbox.run import lock
from glassbox.run.layout import read_run_state, snapshot_path, write_run_state
from glassbox.run.resume import find_snapshot_to_resume, rewind_run
from helpers import (
    ENV,
    assert_equals_the_reference,
    copy_run,
    run_stage,
    tiny_cfg,
)
from helpers import TINY_RUN as TINY


def wait_for(condition, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)


@pytest.mark.e2e
def test_two_trains_at_once_on_one_interrupted_run_one_resumes_the_other_names_its_pid(
    root, reference, outputs, tmp_path
):
    run_dir = copy_run(reference, outputs)
    rewind_run(run_dir, 16)  # interrupted after the snapshot at step 16
    write_run_state(run_dir, status="interrupted", last_snapshot=16)

    # Both start at once; whoever claims the run first resumes it and freezes while saving step 32 (holding
    # the run), so the other always finds it taken.
    args = [f"paths.root_dir={root}", f"paths.output_dir={outputs}", "wandb.mode=disabled", *TINY]
    runner = Path(__file__).with_name("pausing_train.py")
    logs = [tmp_path / f"train{i}.out" for i in range(2)]
    procs = []
    for log in logs:
        with open(log, "w") as out:
            procs.append(
                subprocess.Popen(
                    [sys.executable, str(runner), "step_0000032.pt", *args],
                    cwd=root,
                    env=ENV,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            )
    try:
        wait_for(
            lambda: (
                any(p.poll() is not None for p in procs)
                and any("paused while saving" in log.read_text() for log in logs)
            )
        )
        (loser,) = [i for i, p in enumerate(procs) if p.poll() is not None]
        winner = 1 - loser
        assert "paused while saving" in logs[winner].read_text()
    finally:
        for p in procs:
            p.kill()  # kill -9: the winner's lock goes with it
            p.wait()
    lost = logs[loser].read_text()
    assert procs[loser].returncode == 2, lost[-3000:]
    assert f"is being trained by process {procs[winner].pid} on {socket.gethostname()}" in lost
    assert "train.resume=never" in lost and "Traceback" not in lost
    assert sorted(p.name for p in (outputs / "tiny").iterdir()) == ["latest", "run"]  # the loser left nothing

    resumed = run_stage("train", [f"paths.output_dir={outputs}", "wandb.mode=disabled", *TINY], root)  # stale lock
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    state = read_run_state(run_dir)
    assert state["status"] == "complete" and state["resumed_at"] == [16, 16]  # the winner's resume, then this one
    assert_equals_the_reference(run_dir, reference)


@pytest.mark.slow
def test_a_run_held_by_a_live_process_is_refused_and_a_dead_ones_lock_never_blocks(reference, outputs):
    run_dir = copy_run(reference, outputs)
    write_run_state(run_dir, status="interrupted")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from glassbox.run import lock; "
            f"lock.claim({str(run_dir)!r}); print('held', flush=True); time.sleep(120)",
        ],
        env=ENV,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline() == "held\n"
        for setting in ("auto", str(snapshot_path(run_dir, 8))):
            cfg = tiny_cfg(outputs.parent, outputs, f"train.resume={setting}")
            with pytest.raises(GlassboxError, match=f"being trained by process {holder.pid} on "):
                find_snapshot_to_resume(cfg)
    finally:
        holder.kill()
        holder.wait()
    found = find_snapshot_to_resume(tiny_cfg(outputs.parent, outputs))  # its process is gone: the run is free
    lock.release(run_dir)
    assert found.path == snapshot_path(run_dir, 40)
