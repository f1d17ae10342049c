"""Reliability, round two (issue 19): one writer per run, no silent garbage, no tracebacks.

Each case of the issue as a user meets it: two trains at once on one run, a diverging run, a changed
token file, analysing a run still training, forced encodings, the resume advice, a config that is not
valid, a full disk, an unwritable output folder, a damaged run.json or metrics.jsonl, a damaged old
snapshot, W&B online without a network, a short corpus, a vocabulary mismatch and paths with spaces
and CJK characters."""

from __future__ import annotations

import contextlib
import errno
import io
import logging
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from glassbox import fileio
from glassbox.analyze import analyze
from glassbox.config import validate
from glassbox.errors import GlassboxError
from glassbox.paths import CONF_DIR, PROJECT_ROOT
from glassbox.prepare import prepare
from glassbox.run import lock
from glassbox.run.layout import list_snapshots, point_latest, read_run_state, snapshot_path, write_run_state
from glassbox.run.resume import Interrupted, find_snapshot_to_resume, rewind_run
from glassbox.run.snapshots import Snapshot, check_vocab, load_payload, load_snapshot, save_snapshot
from glassbox.run.tracking import JsonlFile, Tracker
from glassbox.text.corpus import decode, mojibake_warning
from glassbox.text.tokens import TokenData
from glassbox.trace import trace
from glassbox.train import train
from glassbox.training import loop
from glassbox.training.schedule import snapshot_steps
from helpers import compose_config, find_corpus, project_with_corpus, run_stage, stage_config

TINY = ["experiment=tiny", "train.device=cpu", "train.max_iters=40"]
SCHEDULE = snapshot_steps(40, 16, 32)  # 0, 1, 2, 4, 8, 16, 32, 40
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_SILENT": "true", "PYTHONUNBUFFERED": "1"}


def tiny_cfg(root: Path, output_dir: Path, *overrides: str, config_name: str = "train"):
    """The tiny experiment's config as its stage composes it, W&B off, outputs in output_dir."""
    return stage_config(config_name, root, f"paths.output_dir={output_dir}", *TINY, *overrides)


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """A project directory with the tiny experiment's corpus prepared."""
    root = project_with_corpus(tmp_path_factory.mktemp("round2"))
    prepare(tiny_cfg(root, root / "outputs", config_name="prepare"))
    return root


@pytest.fixture(scope="module")
def reference(root) -> Path:
    """An uninterrupted run, what resumed runs must equal; tests copy it rather than damage it."""
    return train(tiny_cfg(root, root / "reference"), root / "reference" / "tiny" / "run")


@pytest.fixture
def outputs(tmp_path) -> Path:
    return tmp_path / "outputs"


def copy_run(reference: Path, outputs: Path, name: str = "run") -> Path:
    """A copy of the reference run as the latest run of the tiny experiment."""
    run_dir = outputs / "tiny" / name
    shutil.copytree(reference, run_dir)
    point_latest(run_dir, outputs, "tiny")
    return run_dir


def assert_equals_the_reference(run_dir: Path, reference: Path) -> None:
    metrics = JsonlFile(run_dir / "metrics.jsonl").read()
    assert [row["step"] for row in metrics] == SCHEDULE  # each step once, in order
    assert metrics == JsonlFile(reference / "metrics.jsonl").read()


def wait_for(condition, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)


# --- 1. one writer per run ---------------------------------------------------------------------------------


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


# --- 2. NaN ------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_diverging_run_saves_no_non_finite_snapshot_and_its_advice_trains(root, outputs):
    with pytest.raises(GlassboxError) as error:
        train(tiny_cfg(root, outputs, "train.learning_rate=1e6"), outputs / "tiny" / "run")
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


def poison(path: Path) -> None:
    """Re-save a snapshot with nan in its embedding (and a valid checksum), as a diverged run once wrote."""
    payload = load_payload(path)
    payload["model"]["wte.weight"][0, 0] = float("nan")
    save_snapshot(path, payload)


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
def test_trace_refuses_a_snapshot_with_non_finite_weights(root, reference, outputs):
    run_dir = copy_run(reference, outputs)
    poison(snapshot_path(run_dir, 40))
    with pytest.raises(GlassboxError, match="holds non-finite numbers .* use an earlier snapshot"):
        trace(tiny_cfg(root, outputs, "auto=true", config_name="trace"))


# --- analysis of a damaged run that is still training ------------------------------------------------------


@pytest.fixture(scope="module")
def analysed(root, reference, tmp_path_factory) -> dict:
    """One analysis of a copy of the reference run with: a damaged old snapshot (step 1 cut short), one
    with non-finite weights (step 2), a last metrics.jsonl line cut short, and a live process training it."""
    outputs = tmp_path_factory.mktemp("analysed") / "outputs"
    run_dir = copy_run(reference, outputs)
    step_1 = snapshot_path(run_dir, 1)
    step_1.write_bytes(step_1.read_bytes()[:5000])
    poison(snapshot_path(run_dir, 2))
    with open(run_dir / "metrics.jsonl", "a") as f:
        f.write('{"step": 41, "loss/va')
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    write_run_state(run_dir, status="running", pid=alive.pid, host=socket.gethostname())
    logged, printed = io.StringIO(), io.StringIO()
    handler = logging.StreamHandler(logged)
    logging.getLogger().addHandler(handler)
    try:
        with contextlib.redirect_stdout(printed):
            cfg = tiny_cfg(
                root, outputs, f"run={run_dir}", "analysis.suites=[embeddings,predictions]", config_name="analyze"
            )
            report_dir = analyze(cfg, run_dir / "analysis" / "now")
    finally:
        logging.getLogger().removeHandler(handler)
        alive.kill()
        alive.wait()
    return {
        "pid": alive.pid,
        "analysis": fileio.read_json(report_dir / "analysis.json"),
        "log": logged.getvalue(),
        "stdout": printed.getvalue(),
        "report": (report_dir / "report.md").read_text(encoding="utf-8"),
    }


def analysed_steps(analysed: dict) -> list[int]:
    return [s["step"] for s in analysed["analysis"]["snapshots"]]


@pytest.mark.slow
def test_analyze_skips_a_damaged_old_snapshot_and_analyses_the_rest(analysed):
    assert analysed_steps(analysed) == [0, 4, 8, 16, 32, 40]
    assert "skipping the snapshot at step 1: snapshot" in analysed["log"] and "is corrupt" in analysed["log"]
    assert "step 1 (snapshot" in analysed["report"]


@pytest.mark.slow
def test_analyze_skips_a_snapshot_with_non_finite_weights(analysed):
    assert 2 not in analysed_steps(analysed)
    (skipped,) = [s for s in analysed["analysis"]["skipped_snapshots"] if s["step"] == 2]
    assert "holds non-finite numbers" in skipped["reason"]


@pytest.mark.slow
def test_analyze_drops_a_last_metrics_line_cut_short_with_a_warning(analysed):
    assert [row["step"] for row in analysed["analysis"]["losses"]] == SCHEDULE
    assert "metrics.jsonl: its last line is cut short" in analysed["log"]


@pytest.mark.slow
def test_analysing_a_run_still_training_says_so_and_which_steps(analysed):
    pid, steps = analysed["pid"], "0, 4, 8, 16, 32, 40"
    assert f"the run is still training (pid {pid}): the report covers steps {steps}" in analysed["log"]
    assert f"still training (pid {pid}): analysing the snapshots it has saved so far" in analysed["log"]
    assert f"(status: still training, pid {pid})" in analysed["report"]
    assert f"this analysis covers the snapshots it had saved, steps {steps}" in analysed["report"]


def test_a_jsonl_file_damaged_before_its_last_line_is_explained(tmp_path):
    log = JsonlFile(tmp_path / "metrics.jsonl")
    log.append({"step": 0})
    with open(log.path, "a") as f:
        f.write('{"step": 1, "lo\n')
    log.append({"step": 2})
    with pytest.raises(GlassboxError, match="metrics.jsonl is damaged: line 2 is not JSON"):
        log.read()


# --- 3. token files ------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_changed_or_out_of_range_token_file_is_refused_until_prepared_again(tmp_path):
    project = project_with_corpus(tmp_path / "project")
    prepare_cfg = tiny_cfg(project, tmp_path / "outputs", config_name="prepare")
    processed = prepare(prepare_cfg)
    train_bin = processed / "train.bin"
    ids = np.fromfile(train_bin, dtype="<u2")

    np.random.default_rng(0).permutation(ids).tofile(train_bin)  # same length, same characters, garbage text
    with pytest.raises(GlassboxError, match=r"train.bin is not the file `make prepare` wrote.*Run `make prepare`"):
        train(tiny_cfg(project, tmp_path / "outputs"), tmp_path / "outputs" / "tiny" / "run")
    assert not (tmp_path / "outputs" / "tiny").exists()  # refused before the run existed

    bad = ids.copy()
    bad[1000] = 65  # the vocabulary has 65 characters: ids 0 to 64
    bad.tofile(train_bin)
    meta = fileio.read_json(processed / "meta.json")
    meta["files"]["train.bin"] = fileio.sha256_of(train_bin)  # as if the file had been written with it
    fileio.write_json(processed / "meta.json", meta)
    with pytest.raises(GlassboxError, match=r"train.bin holds token id 65, but the vocabulary has 65 characters"):
        TokenData(processed)

    shutil.rmtree(processed)  # as the message says, then prepare again
    prepare(prepare_cfg)
    assert np.array_equal(TokenData(processed).splits["train"], ids)


# --- 5. forced encodings ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16-le", "utf-16-be", "utf-32-le"])
def test_a_byte_order_mark_is_never_a_character_of_the_text(encoding):
    assert decode("\ufeff悟空道".encode(encoding), encoding)[0] == "悟空道"


def test_gb18030_forced_through_latin_1_is_flagged_loudly(workdir, make_cfg, caplog):
    raw = find_corpus("xiyouji.txt").read_bytes()
    text, _ = decode(raw, "latin-1")
    warning = mojibake_warning(text, "latin-1")
    assert "looks like mojibake" in warning and "'£'" in warning and "corpus.encoding=auto" in warning
    assert mojibake_warning(raw.decode("gb18030"), "gb18030") is None  # the real decoding: Chinese text
    french = "Là où il était, l'été dernier, à côté de la forêt, nous avons mangé des crêpes. " * 50
    assert mojibake_warning(decode(french.encode("latin-1"), "latin-1")[0], "latin-1") is None  # real Latin-1 text
    prepare(make_cfg("prepare", ["experiment=xiyouji", "corpus.encoding=latin-1", "wandb.mode=disabled"]))
    assert [r.levelname for r in caplog.records if "mojibake" in r.getMessage()] == ["WARNING"]


# --- 6. the resume advice --------------------------------------------------------------------------------------


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
    lr_at = loop.lr_at

    def lr_and_sigterm_at_step_18(step, tc):
        if step == 18:
            os.kill(os.getpid(), signal.SIGTERM)
        return lr_at(step, tc)

    monkeypatch.setattr(loop, "lr_at", lr_and_sigterm_at_step_18)
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


# --- the config is validated before anything exists ------------------------------------------------------------


@pytest.mark.parametrize(
    "override, problem",
    [
        ("train.batch_size=0", "train.batch_size=0: Input should be greater than 0"),
        ("train.eval_iters=0", "train.eval_iters=0: Input should be greater than 0"),
        ("train.log_every=0", "train.log_every=0: Input should be greater than 0"),
        ("train.grad_accum_steps=0", "train.grad_accum_steps=0: Input should be greater than 0"),
        ("train.max_iters=-5", "train.max_iters=-5: Input should be greater than or equal to 0"),
        ("train.max_iters=abc", "train.max_iters='abc': Input should be a valid integer"),
        ("model.n_head=0", "model.n_head=0: Input should be greater than 0"),
        ("model.n_layer=-1", "model.n_layer=-1: Input should be greater than 0"),
        ("model.block_size=0", "model.block_size=0: Input should be greater than 0"),
        ("model.n_embd=33", "model: n_embd (33) must be divisible by n_head (2)"),
        ("train.dtype=float16", "train.dtype='float16': float16 is not supported"),
        ("train.device=gpu", "train.device='gpu': expected auto, cpu, cuda, cuda:<index> or mps"),
        ("wandb.mode=onlin", "wandb.mode='onlin': Input should be 'online', 'offline' or 'disabled'"),
    ],
)
def test_an_invalid_config_is_named_key_by_key(override, problem):
    with pytest.raises(GlassboxError) as error:
        validate(compose_config("train", ["experiment=tiny", override]), "train")
    assert problem in str(error.value)


def test_every_shipped_experiment_and_model_is_valid():
    for experiment in (CONF_DIR / "experiment").glob("*.yaml"):
        validate(compose_config("train", [f"experiment={experiment.stem}"]), "train")
    for model in (CONF_DIR / "model").glob("*.yaml"):
        validate(compose_config("train", ["experiment=tiny", f"model={model.stem}"]), "train")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_refused_when_training():
    cfg = compose_config("train", ["experiment=tiny", "train.device=cuda"])
    validate(cfg, "train")  # a config for a GPU machine may be analysed anywhere
    with pytest.raises(GlassboxError, match="train.device='cuda': this machine has no CUDA GPU"):
        validate(cfg, "train", training=True)


@pytest.mark.e2e
def test_an_invalid_config_leaves_no_run_directory_and_does_not_move_latest(reference, outputs):
    copy_run(reference, outputs)
    before = sorted((outputs / "tiny").iterdir()), (outputs / "tiny" / "latest").resolve()
    bad = run_stage(
        "train",
        [
            f"paths.output_dir={outputs}",
            "experiment=tiny",
            "train.batch_size=0",
            "train.max_iters=abc",
            "model.n_embd=33",
        ],
        outputs.parent,
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    for problem in ("train.batch_size=0", "train.max_iters='abc'", "n_embd (33) must be divisible by n_head (2)"):
        assert problem in bad.stderr
    if not torch.cuda.is_available():  # a check of the machine, made once the stage runs: still nothing left
        no_gpu = run_stage(
            "train", [f"paths.output_dir={outputs}", "experiment=tiny", "train.device=cuda"], outputs.parent
        )
        assert no_gpu.returncode == 2 and "no CUDA GPU" in no_gpu.stderr and "Traceback" not in no_gpu.stderr
    assert (sorted((outputs / "tiny").iterdir()), (outputs / "tiny" / "latest").resolve()) == before


@pytest.mark.e2e
def test_an_unwritable_output_dir_is_explained(tmp_path):
    done = run_stage("train", ["experiment=tiny", "paths.output_dir=/proc/glassbox"], tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "could not write /proc/glassbox/tiny: No such file or directory" in done.stderr


# --- disk full, damaged files ------------------------------------------------------------------------------------


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
def test_a_damaged_run_json_is_explained_by_train_analyze_and_trace(root, reference, outputs):
    run_dir = copy_run(reference, outputs)
    (run_dir / "run.json").write_text('{"status": "runn')
    damaged = f"{run_dir / 'run.json'} is damaged"
    with pytest.raises(GlassboxError, match=damaged):
        train(tiny_cfg(root, outputs), outputs / "tiny" / "second")
    with pytest.raises(GlassboxError, match=damaged):
        analyze(tiny_cfg(root, outputs, config_name="analyze"), run_dir / "analysis" / "now")
    with pytest.raises(GlassboxError, match=damaged):
        trace(tiny_cfg(root, outputs, "auto=true", config_name="trace"))


# --- W&B online without a network ----------------------------------------------------------------------------


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


# --- the corpus, the vocabulary, paths ---------------------------------------------------------------------------


def test_the_corpus_length_is_checked_against_the_configured_model(workdir, make_cfg):
    short = workdir / "data" / "raw" / "short.txt"
    short.write_bytes(find_corpus("tinyshakespeare.txt").read_bytes()[:2000])  # 200 characters of validation text
    corpus = [
        "corpus.name=short",
        "corpus.file=short.txt",
        f"corpus.sha256={fileio.sha256_of(short)}",
        "wandb.mode=disabled",
    ]
    with pytest.raises(GlassboxError, match=r"200 characters, but the model's block_size is 256 .* at least 257"):
        prepare(make_cfg("prepare", [*corpus, "model=big"]))
    assert prepare(make_cfg("prepare", [*corpus, "model=tiny"])).is_dir()  # block 32: long enough


@pytest.mark.slow
def test_a_vocabulary_mismatch_names_the_runs_corpus_and_the_command_that_fixes_it(root, reference):
    snapshot = load_snapshot(snapshot_path(reference, 0))
    processed = root / "data" / "processed" / "shakespeare"
    meta = fileio.read_json(processed / "meta.json")
    renormalized = {**meta, "inputs": {**meta["inputs"], "normalize": {**meta["inputs"]["normalize"], "nfkc": True}}}
    fileio.write_json(processed / "meta.json", renormalized)
    try:
        with pytest.raises(GlassboxError) as error:
            check_vocab(snapshot, "f" * 64, processed)
    finally:
        fileio.write_json(processed / "meta.json", meta)
    message = str(error.value)
    assert "was trained on corpus 'shakespeare'" in message
    assert 'make prepare EXPERIMENT=tiny ARGS="corpus.normalize.nfkc=false"' in message
    assert "Use experiment=" not in message  # not the circular advice to use the experiment already in use

    elsewhere = Snapshot(
        snapshot.path,
        0,
        {},
        {},
        snapshot.vocab_hash,
        {**snapshot.config, "name": "xiyouji", "corpus": {"name": "xiyouji"}},
        "",
        {},
    )
    with pytest.raises(
        GlassboxError, match="holds corpus 'shakespeare'. Use the run's own experiment: EXPERIMENT=xiyouji"
    ):
        check_vocab(elsewhere, "f" * 64, processed)


@pytest.mark.e2e
def test_paths_with_spaces_and_cjk_work_through_make_when_quoted_as_the_readme_says(tmp_path):
    project = project_with_corpus(tmp_path / "project")
    data_dir, output_dir = tmp_path / "my data" / "数据", tmp_path / "my runs" / "西游"
    args = (
        f"paths.raw_dir={project / 'data' / 'raw'} wandb.mode=disabled "
        f"paths.data_dir='\"{data_dir}\"' paths.output_dir='\"{output_dir}\"'"
    )  # the README's quoting
    make = ["make", "-f", str(PROJECT_ROOT / "Makefile"), "-o", "install", f"PY={sys.executable}"]  # no venv
    done = subprocess.run(
        [*make, "prepare", "EXPERIMENT=tiny", f"ARGS={args}"],
        cwd=project,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (data_dir / "processed" / "shakespeare" / "meta.json").exists()
    assert (output_dir / "prepare" / "shakespeare").is_dir()
