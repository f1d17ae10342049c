"""Resuming a run after what stops real runs: kill -9 in the middle of a snapshot, Ctrl-C and SIGTERM;
which snapshot a run resumes from (corrupt, truncated, unchecksummed or non-finite ones skipped, a given
one, never for a sweep job); a snapshot that no longer fits the config; the advice printed to resume.
A resumed run must reproduce the uninterrupted one exactly (CPU, same seed and config): every metric at
every snapshot step."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import open_dict

from glassbox.device import cpp_compiler
from glassbox.errors import GlassboxError
from glassbox.run import lock
from glassbox.run.layout import list_snapshots, read_run_state, snapshot_path, write_run_state
from glassbox.run.resume import Interrupted, find_snapshot_to_resume, warn_about_changed_settings
from glassbox.run.snapshots import check_fits, load_snapshot
from glassbox.run.tracking import JsonlFile
from glassbox.train import train
from glassbox.training import loop
from helpers import (
    SCHEDULE,
    assert_equals_the_reference,
    compose_config,
    copy_run,
    flip_a_byte_of_the_embedding,
    history,
    leftovers,
    poison,
    run_stage,
    tiny_cfg,
    wandb_records,
)
from helpers import TINY_RUN as TINY

# --- kill -9 and signals, as a user runs it ------------------------------------------------------------------------


def assert_same_run(run_dir: Path, reference: Path) -> None:
    metrics, progress = history(run_dir)
    ref_metrics, ref_progress = history(reference)
    assert [row["step"] for row in metrics] == SCHEDULE  # each step once: rows after the resume point were rewritten
    assert metrics == ref_metrics  # exact: losses and every emergence metric, bit for bit
    assert progress == ref_progress
    final = f"step_{SCHEDULE[-1]:07d}.pt"
    weights = load_snapshot(run_dir / "checkpoints" / final).weights
    ref_weights = load_snapshot(reference / "checkpoints" / final).weights
    assert all(torch.equal(weights[k], ref_weights[k]) for k in ref_weights)


def sigterm_at_step_18(monkeypatch) -> None:
    """SIGTERM arrives while training works out step 18's learning rate: in the middle of a step."""
    lr_at = loop.lr_at

    def lr_and_sigterm_at_step_18(step, tc):
        if step == 18:
            os.kill(os.getpid(), signal.SIGTERM)
        return lr_at(step, tc)

    monkeypatch.setattr(loop, "lr_at", lr_and_sigterm_at_step_18)


def interrupted_run(root: Path, outputs: Path) -> Path:
    """A finished run marked as if it had been killed: the test then damages or changes what it needs."""
    run_dir = train(tiny_cfg(root, outputs), outputs / "tiny" / "first")
    write_run_state(run_dir, status="interrupted")
    return run_dir


# What train.dtype=auto and train.compile=auto pick on a CPU with avx512_bf16 or AMX (the tiny experiment itself
# trains in float32): a resumed run must reproduce the uninterrupted one as exactly there.
BF16_COMPILED = ["train.dtype=bfloat16", "train.compile=true"]


@pytest.mark.e2e
@pytest.mark.parametrize("precision", [[], BF16_COMPILED], ids=["float32", "bf16-compiled"])
def test_kill_9_while_saving_a_snapshot_then_resume_equals_an_uninterrupted_run(root, reference, tmp_path, precision):
    if precision:
        if cpp_compiler() is None:
            pytest.skip("torch.compile on a CPU needs a C++ compiler")
        reference = train(tiny_cfg(root, tmp_path / "whole", *precision), tmp_path / "whole" / "tiny" / "run")
    out = tmp_path / "outputs"
    args = [*TINY, *precision, f"paths.output_dir={out}"]

    # Frozen with step_0000032.pt half written (its metrics row already logged), then kill -9.
    log = tmp_path / "killed.out"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_SILENT": "true"}
    runner = Path(__file__).with_name("pausing_train.py")
    with open(log, "w") as stdout:
        killed = subprocess.Popen(
            [sys.executable, str(runner), "step_0000032.pt", f"paths.root_dir={root}", *args, "wandb.mode=offline"],
            cwd=root,
            env=env,
            stdout=stdout,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 120
        while "paused while saving" not in log.read_text() and killed.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "paused while saving" in log.read_text(), log.read_text()[-3000:]
    finally:
        killed.kill()
        killed.wait()
    assert killed.returncode == -signal.SIGKILL
    run_dir = (out / "tiny" / "latest").resolve()
    assert read_run_state(run_dir)["status"] == "running"
    assert JsonlFile(run_dir / "metrics.jsonl").read()[-1]["step"] == 32
    assert leftovers(run_dir)
    assert [step for step, _ in list_snapshots(run_dir)] == [0, 1, 2, 4, 8, 16]

    resumed = run_stage("train", args, root)  # the same command again: train.resume=auto
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert (out / "tiny" / "latest").resolve() == run_dir
    state = read_run_state(run_dir)
    assert state["status"] == "complete" and state["resumed_at"] == [16]
    assert sorted(p.name for p in (out / "tiny").iterdir()) == sorted([run_dir.name, "latest"])
    (resume_dir,) = (run_dir / "resumes").iterdir()  # the resuming command's Hydra directory, moved in
    assert (resume_dir / ".hydra" / "overrides.yaml").exists()
    assert not leftovers(run_dir)
    assert read_run_state(run_dir)["compiled"] is bool(precision)
    assert_same_run(run_dir, reference)
    wandb_runs = sorted((run_dir / "wandb").glob("offline-run-*"))  # killed and resumed: one W&B run id
    assert len(wandb_runs) == 2 and all(p.name.endswith(f"-{state['wandb_run_id']}") for p in wandb_runs)


@pytest.mark.e2e
def test_ctrl_c_saves_a_snapshot_finishes_wandb_and_exits_130(root, tmp_path):
    out = tmp_path / "outputs"
    command = [
        sys.executable,
        "-m",
        "glassbox.train",
        f"paths.root_dir={root}",
        f"paths.output_dir={out}",
        "experiment=tiny",
        "train.device=cpu",
        "train.max_iters=100000",
        "wandb.mode=offline",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_SILENT": "true"}
    training = subprocess.Popen(command, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not list(out.glob("tiny/*/progress.jsonl")) and time.monotonic() < deadline:
            time.sleep(0.05)
        training.send_signal(signal.SIGINT)
        _, stderr = training.communicate(timeout=120)
    finally:
        training.kill()
    assert training.returncode == 130, stderr[-3000:]
    assert "Run the same command again to resume" in stderr
    run_dir = (out / "tiny" / "latest").resolve()
    state = read_run_state(run_dir)
    assert state["status"] == "interrupted"
    stopped_at = int(re.search(r"stopped by SIGINT at step (\d+)", stderr).group(1))
    assert state["last_snapshot"] == stopped_at
    assert load_snapshot(snapshot_path(run_dir, stopped_at)).step == stopped_at
    exits = [r["exit"]["exit_code"] for r in wandb_records(run_dir) if r["type"] == "exit"]
    assert exits == [1]  # the W&B run was finished, as failed, not left dangling


@pytest.mark.slow
def test_sigterm_stops_after_the_step_with_a_snapshot_and_the_resumed_run_matches(
    root, reference, outputs, monkeypatch, caplog
):
    cfg = tiny_cfg(root, outputs)
    sigterm_at_step_18(monkeypatch)
    with pytest.raises(Interrupted) as stopped:
        train(cfg, outputs / "tiny" / "first")
    monkeypatch.undo()
    assert stopped.value.exit_code == 128 + signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the usual handler is back
    run_dir = outputs / "tiny" / "first"
    state = read_run_state(run_dir)
    assert state["status"] == "interrupted" and state["last_snapshot"] == 19  # step 18 finished, then the snapshot
    assert load_snapshot(snapshot_path(run_dir, 19)).step == 19

    assert train(cfg, outputs / "tiny" / "second") == run_dir
    assert not (outputs / "tiny" / "second").exists()
    assert read_run_state(run_dir)["status"] == "complete"
    assert_same_run(run_dir, reference)
    assert not [r for r in caplog.records if "differ" in r.getMessage()]  # same settings: nothing to warn about


def test_resuming_with_changed_settings_names_them(caplog):
    saved = {"seed": 1, "train": {"max_iters": 40, "resume": "auto"}, "paths": {"root_dir": "."}}
    now = {"seed": 1, "train": {"max_iters": 64, "resume": "x.pt"}, "paths": {"root_dir": "/elsewhere"}}
    warn_about_changed_settings(saved, now)
    assert [r.getMessage() for r in caplog.records] == [
        "resuming with settings that differ from the snapshot's: train.max_iters: 40 -> 64"
    ]


# --- which snapshot a run resumes from -----------------------------------------------------------------------------


@pytest.mark.slow
def test_auto_resume_skips_corrupt_truncated_and_unchecksummed_snapshots(root, reference, outputs, caplog):
    run_dir = interrupted_run(root, outputs)
    flip_a_byte_of_the_embedding(snapshot_path(run_dir, 40))
    truncated = snapshot_path(run_dir, 32)
    truncated.write_bytes(truncated.read_bytes()[:50_000])
    state = read_run_state(run_dir)
    del state["snapshot_sha256"]["step_0000016.pt"]  # as if killed between the rename and the checksum
    write_run_state(run_dir, **state)

    assert train(tiny_cfg(root, outputs), outputs / "tiny" / "second") == run_dir
    warnings = "\n".join(r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    assert "step_0000040.pt is corrupt" in warnings
    assert "step_0000032.pt is corrupt" in warnings
    assert "step_0000016.pt has no checksum" in warnings
    assert read_run_state(run_dir)["resumed_at"] == [8]
    assert_same_run(run_dir, reference)


@pytest.mark.slow
def test_resuming_skips_a_snapshot_with_non_finite_weights(reference, outputs, caplog):
    run_dir = copy_run(reference, outputs)
    write_run_state(run_dir, status="failed")
    poison(snapshot_path(run_dir, 40))
    found = find_snapshot_to_resume(tiny_cfg(outputs.parent, outputs))
    lock.release(run_dir)
    assert found.path == snapshot_path(run_dir, 32)
    assert "step_0000040.pt holds non-finite numbers (nan or inf in wte.weight" in caplog.text


@pytest.mark.slow
def test_resume_never_starts_a_new_run(root, outputs):
    run_dir = interrupted_run(root, outputs)
    before = history(run_dir)
    fresh = train(tiny_cfg(root, outputs, "train.resume=never", "train.max_iters=2"), outputs / "tiny" / "fresh")
    assert fresh == outputs / "tiny" / "fresh" and (outputs / "tiny" / "latest").resolve() == fresh
    assert history(run_dir) == before


@pytest.mark.slow
def test_resume_from_a_given_snapshot_rewinds_its_run_to_that_step(root, reference, outputs):
    run_dir = interrupted_run(root, outputs)
    write_run_state(run_dir, status="complete")
    given = snapshot_path(run_dir, 4)
    assert train(tiny_cfg(root, outputs, f"train.resume={given}"), outputs / "tiny" / "second") == run_dir
    assert read_run_state(run_dir)["resumed_at"] == [4]
    assert_same_run(run_dir, reference)


@pytest.mark.slow
def test_a_sweep_job_never_auto_resumes_the_experiments_latest_run(root, outputs):
    interrupted_run(root, outputs)
    cfg = tiny_cfg(root, outputs)
    hydra_cfg = compose_config("train", TINY, hydra_node=True)
    with open_dict(hydra_cfg):
        hydra_cfg.hydra.mode = RunMode.MULTIRUN
    HydraConfig.instance().set_config(hydra_cfg)
    try:
        assert find_snapshot_to_resume(cfg) is None
    finally:
        HydraConfig.instance().cfg = None
    assert find_snapshot_to_resume(cfg) is not None


@pytest.mark.slow
def test_a_latest_left_at_a_sweep_job_is_never_continued_by_a_plain_train(root, reference, outputs, caplog):
    """Older glassbox pointed `latest` at a sweep's last job; a plain train then continued that job in place."""
    job = copy_run(reference, outputs, name="sweeps/2026-11-30_15-59-10/0")  # as Hydra lays out a sweep's job
    write_run_state(job, status="interrupted")
    assert find_snapshot_to_resume(tiny_cfg(root, outputs)) is None
    assert "points at a sweep's job" in caplog.text


def test_a_sweep_job_leaves_latest_at_the_users_run(root, reference, outputs, monkeypatch):
    users_run = copy_run(reference, outputs)
    job = outputs / "tiny" / "sweeps" / "2026-11-30_15-59-10" / "0"
    monkeypatch.setattr(loop, "is_sweep_job", lambda: True)
    train(tiny_cfg(root, outputs, "train.max_iters=2", "train.resume=never"), job)
    assert list_snapshots(job) and (outputs / "tiny" / "latest").resolve() == users_run.resolve()


def test_rewinding_a_jsonl_file_drops_later_rows_and_a_line_cut_short(tmp_path):
    log = JsonlFile(tmp_path / "metrics.jsonl")
    for step in (0, 1, 2, 4):
        log.append({"step": step, "loss": 1.0 / (step + 1)})
    with open(log.path, "a") as f:
        f.write('{"step": 8, "lo')  # kill -9 in the middle of a line
    log.keep_until(2)
    assert log.read() == [{"step": 0, "loss": 1.0}, {"step": 1, "loss": 0.5}, {"step": 2, "loss": 1 / 3}]


# --- a snapshot that does not fit ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_check_fits_names_every_mismatched_key_with_both_values(reference):
    snapshot = load_snapshot(snapshot_path(reference, 8))
    fitting = dict(snapshot.model_args)
    check_fits(snapshot, fitting, snapshot.vocab_hash)
    with pytest.raises(GlassboxError) as err:
        check_fits(snapshot, {**fitting, "n_layer": 3, "vocab_size": 70}, "f" * 64)
    message = str(err.value)
    assert "model.n_layer: snapshot 2, now 3" in message
    assert "vocab_size: snapshot 65, now 70" in message
    assert f"vocab_hash: snapshot {snapshot.vocab_hash[:12]}…, now ffffffffffff…" in message
    assert "n_embd" not in message and "dropout" not in message  # only what differs
    check_fits(snapshot, {**fitting, "dropout": 0.5}, snapshot.vocab_hash)  # no shape change


@pytest.mark.slow
def test_resuming_with_a_different_model_is_refused_before_anything_changes(root, outputs):
    run_dir = interrupted_run(root, outputs)
    before = history(run_dir), read_run_state(run_dir)
    with pytest.raises(GlassboxError, match=r"model\.n_embd: snapshot 32, now 64.*train\.resume=never"):
        train(tiny_cfg(root, outputs, "model.n_embd=64"), outputs / "tiny" / "second")
    assert (history(run_dir), read_run_state(run_dir)) == before


# --- the resume advice ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_run_stopped_with_resume_never_prints_the_command_that_resumes_it(root, reference, outputs, monkeypatch):
    overrides = [
        f"paths.root_dir={root}",
        f"paths.output_dir={outputs}",
        "wandb.mode=disabled",
        *TINY,
        "train.resume=never",
    ]
    HydraConfig.instance().set_config(compose_config("train", overrides, hydra_node=True))  # what the command was
    sigterm_at_step_18(monkeypatch)
    try:
        with pytest.raises(Interrupted) as stopped:
            train(compose_config("train", overrides), outputs / "tiny" / "first")
    finally:
        HydraConfig.instance().cfg = None
        monkeypatch.undo()
    message = str(stopped.value)
    assert "Run the same command again" not in message
    assert "train.resume=auto in place of train.resume=never" in message
    command = shlex.split(message.split("\n")[1])
    run_dir = outputs / "tiny" / "first"
    assert command[:3] == ["python", "-m", "glassbox.train"]
    assert command[-1] == f"train.resume={snapshot_path(run_dir, 19)}" and "train.resume=never" not in command

    assert train(compose_config("train", command[3:]), outputs / "tiny" / "second") == run_dir  # it resumes the run
    assert read_run_state(run_dir)["resumed_at"] == [19]
    assert_equals_the_reference(run_dir, reference)
