"""What goes wrong while training, each explained and leaving the last good snapshot: a NaN loss, a
diverging run, W&B failing to start, to log or to reach its server, and a full disk."""

from __future__ import annotations

import errno
import logging
import re
import time

import pytest
import torch
from omegaconf import OmegaConf

from glassbox.errors import GlassboxError
from glassbox.model import GPT
from glassbox.run.layout import list_snapshots, read_run_state, snapshot_path
from glassbox.run.snapshots import load_payload, load_snapshot, save_snapshot
from glassbox.run.tracking import JsonlFile, Tracker
from glassbox.train import train
from glassbox.training import loop
from helpers import (
    SCHEDULE,
    history,
    leftovers,
    tiny_cfg,
)

# --- NaN -----------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_nan_loss_stops_training_and_keeps_the_last_good_snapshot(root, outputs, monkeypatch):
    lr_at, forward = loop.lr_at, GPT.forward
    step_now = [0]

    def lr_noting_the_step(step, tc):
        step_now[0] = step
        return lr_at(step, tc)

    def forward_with_a_nan_loss_from_step_10(self, idx, targets=None, cache=None):
        logits, loss = forward(self, idx, targets, cache)
        return logits, loss * float("nan") if step_now[0] >= 10 else loss

    monkeypatch.setattr(loop, "lr_at", lr_noting_the_step)
    monkeypatch.setattr(GPT, "forward", forward_with_a_nan_loss_from_step_10)
    run_dir = outputs / "tiny" / "run"
    with pytest.raises(
        GlassboxError,
        match=r"the training loss became nan at step 10; the last good snapshot is "
        rf"{re.escape(str(snapshot_path(run_dir, 8)))} \(step 8\)",
    ):
        train(tiny_cfg(root, outputs), run_dir)
    monkeypatch.undo()
    assert read_run_state(run_dir)["status"] == "failed"
    assert [step for step, _ in list_snapshots(run_dir)] == [0, 1, 2, 4, 8]
    assert all(torch.isfinite(w).all() for w in load_snapshot(snapshot_path(run_dir, 8)).weights.values())
    assert train(tiny_cfg(root, outputs), outputs / "tiny" / "again") == run_dir  # the advice: run it again
    assert read_run_state(run_dir)["resumed_at"] == [8]


@pytest.mark.slow
def test_a_diverging_run_saves_no_non_finite_snapshot_and_its_advice_trains(root, outputs):
    with pytest.raises(GlassboxError) as error:
        # without dropout (TINY_RUN has 0.1): its weights, not only its loss, blow up
        train(tiny_cfg(root, outputs, "train.learning_rate=1e6", "model.dropout=0.0"), outputs / "tiny" / "run")
    message = str(error.value)
    run_dir = outputs / "tiny" / "run"
    assert read_run_state(run_dir)["status"] == "failed"
    saved = list_snapshots(run_dir)
    for _, path in saved:
        load_snapshot(path).check_finite()  # every snapshot written holds numbers
    assert f"the last snapshot with finite weights, {saved[-1][1]}" in message
    assert "Lower train.learning_rate (now 1e+06)" in message and "lower train.grad_clip" in message
    assert "raise" not in message
    assert "start a new run (train.resume=never)" in message  # its weights had blown up: resuming would not help
    fresh = train(tiny_cfg(root, outputs, "train.learning_rate=1e-3", "train.resume=never"), outputs / "tiny" / "new")
    assert read_run_state(fresh)["status"] == "complete"


# --- W&B failing ---------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_wandb_init_failing_warns_once_and_training_goes_on(root, outputs, monkeypatch, caplog):
    import wandb

    def no_wandb(**kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(wandb, "init", no_wandb)
    run_dir = train(tiny_cfg(root, outputs, "wandb.mode=offline"), outputs / "tiny" / "run")
    assert [r.getMessage() for r in caplog.records if "W&B" in r.getMessage()] == [
        f"W&B init failed (OSError: [Errno 28] No space left on device); continuing without W&B, "
        f"{run_dir / 'metrics.jsonl'} stays complete"
    ]
    assert [row["step"] for row in JsonlFile(run_dir / "metrics.jsonl").read()] == SCHEDULE
    assert read_run_state(run_dir)["status"] == "complete"


@pytest.mark.slow
def test_wandb_log_failing_warns_once_and_metrics_jsonl_stays_complete(root, reference, outputs, monkeypatch, caplog):
    from wandb.sdk.wandb_run import Run

    def broken_log(self, *args, **kwargs):
        raise RuntimeError("wandb-core went away")

    monkeypatch.setattr(Run, "log", broken_log)
    run_dir = train(tiny_cfg(root, outputs, "wandb.mode=offline"), outputs / "tiny" / "run")
    warnings = [r.getMessage() for r in caplog.records if "W&B" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].startswith("W&B log failed (RuntimeError: wandb-core went away)")
    assert read_run_state(run_dir)["status"] == "complete"
    assert history(run_dir) == history(reference)


@pytest.mark.slow
def test_wandb_online_without_a_network_says_it_waits_and_falls_back_to_offline(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # a closed port: refused at once, every retry
    caplog.set_level(logging.INFO)
    cfg = OmegaConf.create(
        {
            "wandb": {
                "mode": "online",
                "project": "glassbox",
                "entity": None,
                "group": "tiny",
                "tags": [],
                "init_timeout": 2,
            }
        }
    )
    started = time.monotonic()
    with Tracker(cfg, tmp_path, job_type="train", run_id="abcd1234") as tracker:
        assert tracker.offline
        tracker.log({"loss": 1.0}, 0)
    assert time.monotonic() - started < 60
    messages = [r.getMessage() for r in caplog.records]
    assert any("giving up after wandb.init_timeout=2 s" in m for m in messages)
    assert any("W&B could not go online" in m and "logging offline instead" in m for m in messages)
    assert list((tmp_path / "wandb").glob("offline-run-*-abcd1234"))


# --- a full disk ---------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_full_disk_while_saving_a_snapshot_is_explained_and_the_old_one_survives(reference, tmp_path, monkeypatch):
    path = tmp_path / "run" / "checkpoints" / "step_0000016.pt"
    old = load_payload(snapshot_path(reference, 16))
    save_snapshot(path, old)

    def half_then_disk_full(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04" + bytes(1000))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", half_then_disk_full)
    with pytest.raises(GlassboxError, match=r"could not write .*step_0000016\.pt: No space left on device"):
        save_snapshot(path, {**old, "step": 17})
    monkeypatch.undo()
    assert load_snapshot(path).step == 16  # intact, checksum and all
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temporary file left


class FullDisk:
    """A file whose disk fills up after `room` bytes: writes then fail with ENOSPC, as on a real full disk."""

    def __init__(self, f, room: int) -> None:
        self.f, self.room = f, room

    def write(self, data) -> int:
        if len(data) > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= len(data)
        return self.f.write(data)

    def flush(self) -> None:
        self.f.flush()


@pytest.mark.slow
def test_a_full_disk_inside_torch_save_is_explained_not_unexpected_pos(reference, tmp_path, monkeypatch):
    path = tmp_path / "run" / "checkpoints" / "step_0000016.pt"
    old = load_payload(snapshot_path(reference, 16))
    save_snapshot(path, old)
    save = torch.save
    monkeypatch.setattr(torch, "save", lambda obj, f, *a, **k: save(obj, FullDisk(f, 4096), *a, **k))
    with pytest.raises(GlassboxError) as error:
        save_snapshot(path, {**old, "step": 17})
    monkeypatch.undo()
    assert "could not write" in str(error.value) and "step_0000016.pt: No space left on device" in str(error.value)
    assert "is full" in str(error.value) and "unexpected pos" not in str(error.value)
    assert load_snapshot(path).step == 16  # the old snapshot is intact, and no temporary file is left
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]


@pytest.mark.slow
def test_a_full_disk_during_training_fails_the_run_and_keeps_earlier_snapshots(root, outputs, monkeypatch):
    save = torch.save

    def disk_full_at_step_4(obj, f, *args, **kwargs):
        if obj["step"] == 4:
            raise OSError(errno.ENOSPC, "No space left on device")
        return save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", disk_full_at_step_4)
    with pytest.raises(GlassboxError, match="could not write .*step_0000004.pt: No space left on device"):
        train(tiny_cfg(root, outputs), outputs / "tiny" / "run")
    run_dir = outputs / "tiny" / "run"
    assert read_run_state(run_dir)["status"] == "failed"
    assert [load_snapshot(path).step for _, path in list_snapshots(run_dir)] == [0, 1, 2]
    assert not leftovers(run_dir)
