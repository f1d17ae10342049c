"""Training survives what happens to real runs: kill -9 in the middle of a snapshot, Ctrl-C and
SIGTERM, corrupt or truncated snapshots, a config that no longer fits, a NaN loss, W&B failing,
a full disk, and snapshot files crafted to run code. A resumed run must reproduce the
uninterrupted one exactly (CPU, same seed and config): every metric at every snapshot step."""

from __future__ import annotations

import errno
import os
import re
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import open_dict

from glassbox.errors import GlassboxError
from glassbox.model import GPT
from glassbox.paths import PROJECT_ROOT
from glassbox.prepare import prepare
from glassbox.run.layout import list_snapshots, read_run_state, snapshot_path, write_run_state
from glassbox.run.resume import Interrupted, find_snapshot_to_resume, warn_about_changed_settings
from glassbox.run.snapshots import check_fits, load_payload, load_snapshot, save_snapshot
from glassbox.run.tracking import JsonlFile
from glassbox.train import train
from glassbox.training import loop
from glassbox.training.schedule import snapshot_steps
from helpers import compose_config, project_with_corpus, run_stage, stage_config, wandb_records

# The tiny experiment cut to 40 steps: snapshots at 0, 1, 2, 4, 8, 16, 32 and 40, about a second.
# Dropout draws from torch's global RNG, so exact equality after a resume needs its state too.
TINY = ["experiment=tiny", "train.device=cpu", "train.max_iters=40", "model.dropout=0.1"]
SCHEDULE = snapshot_steps(40, 16, 32)


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """A project directory with the tiny experiment's corpus prepared, shared by the tests here."""
    root = project_with_corpus(tmp_path_factory.mktemp("reliability"))
    prepare(tiny_cfg(root, root / "outputs"))
    return root


def tiny_cfg(root: Path, output_dir: Path, *overrides: str):
    """The train config as `make train EXPERIMENT=tiny` composes it, W&B off, outputs in output_dir."""
    return stage_config("train", root, f"paths.output_dir={output_dir}", *TINY, *overrides)


@pytest.fixture(scope="module")
def reference(root) -> Path:
    """An uninterrupted run: what every interrupted and resumed run must end up equal to."""
    return train(tiny_cfg(root, root / "reference"), root / "reference" / "tiny" / "run")


@pytest.fixture
def outputs(tmp_path) -> Path:
    return tmp_path / "outputs"


def history(run_dir: Path) -> tuple[list[dict], list[dict]]:
    """metrics.jsonl and progress.jsonl, without the one wall-clock number (tokens/s)."""
    progress = [
        {k: v for k, v in row.items() if k != "tokens_per_sec"} for row in JsonlFile(run_dir / "progress.jsonl").read()
    ]
    return JsonlFile(run_dir / "metrics.jsonl").read(), progress


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


def leftovers(run_dir: Path) -> list[str]:
    return [p.name for p in (run_dir / "checkpoints").iterdir() if ".tmp-" in p.name]


def interrupted_run(root: Path, outputs: Path) -> Path:
    """A finished run marked as if it had been killed: the test then damages or changes what it needs."""
    run_dir = train(tiny_cfg(root, outputs), outputs / "tiny" / "first")
    write_run_state(run_dir, status="interrupted")
    return run_dir


# --- kill -9 and signals, as a user runs it ---------------------------------------------------------


@pytest.mark.e2e
def test_kill_9_while_saving_a_snapshot_then_resume_equals_an_uninterrupted_run(root, reference, tmp_path):
    out = tmp_path / "outputs"
    args = [*TINY, f"paths.output_dir={out}"]

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
    lr_at = loop.lr_at

    def lr_and_sigterm_at_step_18(step, tc):
        if step == 18:
            os.kill(os.getpid(), signal.SIGTERM)
        return lr_at(step, tc)

    monkeypatch.setattr(loop, "lr_at", lr_and_sigterm_at_step_18)
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


# --- which snapshot a run resumes from ----------------------------------------------------------------


def flip_a_byte_of_the_embedding(path: Path) -> None:
    """Damage the stored token embedding, well inside its tensor data, as a bad disk would."""
    with zipfile.ZipFile(path) as archive:
        entry = next(i for i in archive.infolist() if i.filename.endswith("/data/0"))
    data = bytearray(path.read_bytes())
    data[entry.header_offset + entry.file_size // 2] ^= 0xFF
    path.write_bytes(data)


@pytest.mark.slow
def test_a_flipped_byte_loads_silently_with_torch_but_not_with_load_snapshot(root, reference, tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    path = run_dir / "checkpoints" / "step_0000016.pt"
    save_snapshot(path, torch.load(snapshot_path(reference, 16), weights_only=True))
    flip_a_byte_of_the_embedding(path)
    damaged = torch.load(path, weights_only=True)["model"]["wte.weight"]  # torch alone does not notice
    assert not torch.equal(damaged, load_snapshot(snapshot_path(reference, 16)).weights["wte.weight"])
    with pytest.raises(GlassboxError, match=r"step_0000016.pt is corrupt: its sha256 is"):
        load_snapshot(path)


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


def test_rewinding_a_jsonl_file_drops_later_rows_and_a_line_cut_short(tmp_path):
    log = JsonlFile(tmp_path / "metrics.jsonl")
    for step in (0, 1, 2, 4):
        log.append({"step": step, "loss": 1.0 / (step + 1)})
    with open(log.path, "a") as f:
        f.write('{"step": 8, "lo')  # kill -9 in the middle of a line
    log.keep_until(2)
    assert log.read() == [{"step": 0, "loss": 1.0}, {"step": 1, "loss": 0.5}, {"step": 2, "loss": 1 / 3}]


# --- a snapshot that does not fit ---------------------------------------------------------------------


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


# --- failures while training ----------------------------------------------------------------------------


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


# --- loading never runs code ---------------------------------------------------------------------------


class RunsCode:
    """Unpickling this calls Path.touch: what a malicious .pt file could do with os.system instead."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_snapshot_carrying_code_is_refused_and_the_code_never_runs(tmp_path):
    marker = tmp_path / "code-ran"
    path = tmp_path / "run" / "checkpoints" / "step_0000000.pt"
    save_snapshot(path, {"step": 0, "payload": RunsCode(marker)})  # its checksum is recorded: it is "valid"
    with pytest.raises(GlassboxError, match="unreadable"):
        load_snapshot(path)
    assert not marker.exists()


def test_every_torch_load_is_weights_only_and_nothing_unpickles_or_evaluates():
    sources = {p: p.read_text(encoding="utf-8") for p in (PROJECT_ROOT / "src" / "glassbox").rglob("*.py")}
    loads = [(p.name, call) for p, text in sources.items() for call in re.findall(r"torch\.load\([^)]*\)", text)]
    assert loads and all("weights_only=True" in call for _, call in loads), loads
    for p, text in sources.items():
        assert not re.search(r"\bimport pickle\b|\bpickle\.|(?<![.\w])(eval|exec)\(|allow_pickle=True", text), p
