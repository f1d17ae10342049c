"""train.py: the learning-rate and snapshot schedules, a tiny model memorising a tiny text
through the real train(), atomic snapshot files, the article model's size, and the tiny
experiment end to end as a user runs it (subprocess), read back from metrics.jsonl, the
snapshot files and the offline W&B run; bad input (no prepared data, an unwritable output folder)."""

from __future__ import annotations

import hashlib
import math
from itertools import pairwise
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from glassbox import fileio
from glassbox.analysis.measurements import Measurements
from glassbox.config import validate
from glassbox.model import GPT, GPTConfig
from glassbox.prepare import prepare
from glassbox.run.snapshots import Snapshot, save_snapshot
from glassbox.run.tracking import STEP_KEY, JsonlFile
from glassbox.text.tokens import TokenData
from glassbox.text.vocab import Vocab
from glassbox.train import train
from glassbox.training import schedule as precision
from glassbox.training.schedule import (
    autocast_in,
    compile_choice,
    compute_dtype,
    deterministic_kernels,
    lr_at,
    snapshot_steps,
)
from helpers import run_stage, wandb_records

XIYOUJI_VOCAB_SIZE = 4490  # distinct characters of the prepared 西游记

# A periodic text of 17 characters: one character alone predicts the next with 0.98 nats of
# uncertainty left (the bigram entropy), so a loss far below that means the model learnt to
# read its context. 3,290 characters: each 10 % split outlasts the longest block_size + 1.
OVERFIT_TEXT = "hello glassbox, a tiny text to learn by heart. " * 70


# --- learning rate -----------------------------------------------------------------------------


@pytest.fixture
def default_train(make_cfg):
    return make_cfg("train").train


def test_lr_warms_up_linearly_to_the_peak(default_train):
    tc = default_train
    warmup = [lr_at(step, tc) for step in range(tc.warmup_iters)]
    assert warmup[0] == pytest.approx(tc.learning_rate / tc.warmup_iters)
    assert warmup[-1] == pytest.approx(tc.learning_rate)
    increments = [b - a for a, b in pairwise(warmup)]
    assert increments == pytest.approx([tc.learning_rate / tc.warmup_iters] * len(increments))


def test_lr_decays_along_a_cosine_to_min_lr_and_stays_there(default_train):
    tc = default_train
    start, end = tc.warmup_iters, tc.lr_decay_iters
    assert lr_at(start, tc) == pytest.approx(tc.learning_rate)
    assert lr_at((start + end) // 2, tc) == pytest.approx((tc.learning_rate + tc.min_lr) / 2)
    quarter = start + (end - start) / 4  # cos(π/4): 85 % of the way from min_lr to the peak
    assert lr_at(quarter, tc) == pytest.approx(tc.min_lr + (1 + math.sqrt(0.5)) / 2 * (tc.learning_rate - tc.min_lr))
    decay = [lr_at(step, tc) for step in range(start, end + 1)]
    assert all(b < a for a, b in pairwise(decay))
    assert lr_at(end, tc) == pytest.approx(tc.min_lr)
    assert [lr_at(step, tc) for step in (end + 1, 2 * end)] == [tc.min_lr, tc.min_lr]


def test_lr_decay_ends_at_max_iters_unless_told_otherwise(make_cfg):
    assert make_cfg("train", ["train.max_iters=300"]).train.lr_decay_iters == 300


# --- snapshot schedule ---------------------------------------------------------------------------


def test_default_snapshot_schedule(default_train):
    tc = default_train
    assert snapshot_steps(tc.max_iters, tc.snapshots.log_spaced_until, tc.snapshots.every) == [
        0,
        1,
        2,
        4,
        8,
        16,
        32,
        64,
        128,
        200,
        256,
        400,
        512,
        600,
        700,
    ]


def test_log_spaced_snapshots_stop_at_max_iters_and_the_final_step_is_kept():
    assert snapshot_steps(100, 512, 200) == [0, 1, 2, 4, 8, 16, 32, 64, 100]
    assert snapshot_steps(1000, 16, 300) == [0, 1, 2, 4, 8, 16, 300, 600, 900, 1000]
    assert snapshot_steps(20, 4, 0) == [0, 1, 2, 4, 20]  # every=0: log-spaced and final only


# --- the model -------------------------------------------------------------------------------------


def test_seed_model_on_xiyouji_has_the_articles_size(make_cfg):
    cfg = make_cfg("train")  # the default experiment: the seed model on 西游记
    model = GPT(GPTConfig(vocab_size=XIYOUJI_VOCAB_SIZE, **cfg.model))
    assert model.num_params() / 1e6 == pytest.approx(4.33, abs=0.01)


# --- snapshot files --------------------------------------------------------------------------------


def test_a_failed_snapshot_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "checkpoints" / "step_0000010.pt"
    save_snapshot(path, {"step": 10, "weights": torch.ones(3)})
    with pytest.raises(Exception, match="pickle"):
        save_snapshot(path, {"step": 20, "not_data": lambda: None})  # torch.save fails mid-write
    assert [p.name for p in path.parent.iterdir()] == [path.name]
    assert torch.load(path, weights_only=True)["step"] == 10


# --- training in-process -----------------------------------------------------------------------------


def test_tiny_model_memorises_a_tiny_text(workdir, make_cfg):
    (workdir / "data" / "raw" / "overfit.txt").write_text(OVERFIT_TEXT, encoding="utf-8")
    sha256 = hashlib.sha256(OVERFIT_TEXT.encode("utf-8")).hexdigest()
    cfg = make_cfg(
        "train",
        [
            "name=overfit",
            "corpus.name=overfit",
            "corpus.file=overfit.txt",
            f"corpus.sha256={sha256}",
            "corpus.url=http://127.0.0.1:9/unused",
            "wandb.mode=disabled",
            "model=tiny",
            "train.device=cpu",
            "train.max_iters=150",
            "train.batch_size=8",
            "train.learning_rate=1e-2",
            "train.warmup_iters=10",
            "train.eval_iters=2",
            "train.snapshots.log_spaced_until=0",
            "train.snapshots.every=0",
            "analysis.at_snapshots=false",
        ],
    )
    prepare(cfg)
    run_dir = train(cfg, workdir / "outputs" / "overfit" / "run")

    first, last = JsonlFile(run_dir / "metrics.jsonl").read()
    assert (first["step"], last["step"]) == (0, 150)
    assert first["loss/val"] > 2.5  # ≈ ln 17: the untrained model guesses uniformly
    assert last["loss/val"] < 0.3
    assert last["loss/train"] < 0.3


# --- the tiny experiment end to end ----------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_run(tiny_project) -> Path:
    return (tiny_project / "outputs" / "tiny" / "latest").resolve()


def run_config(run_dir: Path):
    """The resolved config the run was started with (Hydra's record of it)."""
    return OmegaConf.load(run_dir / ".hydra" / "config.yaml")


def schedule(cfg) -> list[int]:
    tc = cfg.train
    return snapshot_steps(tc.max_iters, tc.snapshots.log_spaced_until, tc.snapshots.every)


def emergence_keys(cfg) -> set[str]:
    """Keys every snapshot must carry: embedding, similarity, z-score and per-layer statistics."""
    stats = ("std", "min", "max", "l2_mean")
    vocab_size = Vocab.load(Path(cfg.paths.processed_dir) / "vocab.json").size
    n = min(cfg.analysis.embedding.n_frequent, vocab_size // 2)  # the two ends never overlap
    keys = {f"emb/{s}" for s in stats} | {f"emb/{part}{n}/{s}" for part in ("top", "bottom") for s in stats}
    pairs = [pair.id for pair in cfg.corpus.probes.pairs]
    keys |= {f"{kind}/{pair}" for kind in ("cos", "z", "zf") for pair in pairs}
    keys |= {"cos/within_mean", "cos/cross_mean", "baseline/mean", "baseline/std"}
    layers = ["embed", *(f"L{i}" for i in range(cfg.model.n_layer)), "final"]
    keys |= {f"resid_{s}/{layer}" for layer in layers for s in ("mean", "std", "max")}
    return keys | {"loss/val", "lr", "tokens"}


@pytest.mark.e2e
def test_tiny_run_is_complete_and_latest_points_at_it(tiny_project, tiny_run):
    runs = [p for p in (tiny_project / "outputs" / "tiny").iterdir() if p.name != "latest"]
    assert runs == [tiny_run]
    state = fileio.read_json(tiny_run / "run.json")
    assert state["status"] == "complete"
    assert state["last_snapshot"] == run_config(tiny_run).train.max_iters
    # the dtype and compilation it trained with (the tiny experiment's float32, hence eager), recorded and said
    assert state["dtype"] == "float32" and state["compiled"] is False
    assert "float32 (train.dtype=float32); eager (auto: eager in float32 on a CPU, where compiling gains nothing)" in (
        tiny_run / "train.log"
    ).read_text(encoding="utf-8")


@pytest.mark.parametrize("native", [True, False])
def test_auto_trains_in_bf16_on_a_cpu_only_where_bf16_is_native_and_says_why(monkeypatch, native):
    """auto picks bf16 autocast on a CPU with avx512_bf16 or AMX (2x a float32 step there) and float32 where
    bf16 would be emulated (slower than float32); float32 and bfloat16 asked by name are what trains."""
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native)
    cpu = torch.device("cpu")
    dtype, reason = compute_dtype(cpu, "auto")
    assert dtype == ("bfloat16" if native else "float32")
    assert ("this CPU has avx512_bf16 or AMX" if native else "emulated bf16 is slower") in reason
    assert compute_dtype(cpu, "float32")[0] == "float32" and compute_dtype(cpu, "bfloat16")[0] == "bfloat16"
    x = torch.randn(4, 8)
    for name, expected in (("bfloat16", torch.bfloat16), ("float32", torch.float32)):
        with autocast_in(cpu, name):
            assert (x @ x.T).dtype == expected


def test_auto_compiles_only_a_single_process_bf16_step_on_a_cpu_with_a_cpp_compiler(monkeypatch):
    """Where compiling was measured to pay (1.2x a bf16 step on a CPU) and nowhere else; true and false as asked."""
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    monkeypatch.setattr(precision, "cpp_compiler", lambda: "/usr/bin/g++")
    assert compile_choice(cpu, "bfloat16", 1, "auto") == (
        True,
        "auto: a bf16 step on a CPU, which compiling makes about 1.2x faster",
    )
    assert compile_choice(cpu, "float32", 1, "auto")[0] is False
    assert compile_choice(cpu, "bfloat16", 2, "auto")[0] is False
    assert compile_choice(cuda, "bfloat16", 1, "auto")[0] is False
    assert compile_choice(cpu, "float32", 1, True) == (True, "train.compile=true")
    assert compile_choice(cpu, "bfloat16", 1, False) == (False, "train.compile=false")
    monkeypatch.setattr(precision, "cpp_compiler", lambda: None)
    assert compile_choice(cpu, "bfloat16", 1, "auto") == (
        False,
        "auto: eager, for torch.compile finds no C++ compiler here (g++ or clang++)",
    )


def test_the_deterministic_flag_is_set_for_the_compiled_step_alone_and_put_back():
    """Inductor's atomic adds would make two compiled runs differ in the last bits; the flag that avoids them must
    not leak into the eager code around the step (float32 training, the metrics)."""
    assert not torch.are_deterministic_algorithms_enabled()
    with deterministic_kernels():
        assert torch.are_deterministic_algorithms_enabled()
    assert not torch.are_deterministic_algorithms_enabled()
    with pytest.raises(KeyboardInterrupt), deterministic_kernels():
        raise KeyboardInterrupt
    assert not torch.are_deterministic_algorithms_enabled()


@pytest.mark.e2e
def test_metrics_jsonl_has_every_emergence_metric_at_every_snapshot(tiny_run):
    cfg = run_config(tiny_run)
    records = JsonlFile(tiny_run / "metrics.jsonl").read()
    assert [r["step"] for r in records] == schedule(cfg)
    for record in records:
        missing = emergence_keys(cfg) - record.keys()
        assert not missing, f"step {record['step']} lacks {sorted(missing)}"
        assert all(math.isfinite(v) for v in record.values())


@pytest.mark.e2e
def test_wandb_history_holds_the_same_values_as_metrics_jsonl(tiny_run):
    records = wandb_records(tiny_run)
    history = [r["history"]["item"] for r in records if r["type"] == "history"]
    assert all(STEP_KEY in item for item in history)  # every point sits on the training-step axis
    at_snapshots = {item[STEP_KEY]: item for item in history if "loss/val" in item}
    local = JsonlFile(tiny_run / "metrics.jsonl").read()
    assert sorted(at_snapshots) == [r["step"] for r in local]
    for record in local:
        logged = at_snapshots[record["step"]]
        differing = {k: (v, logged.get(k)) for k, v in record.items() if k != "step" and logged.get(k) != v}
        assert not differing, f"step {record['step']}: metrics.jsonl vs W&B {differing}"
    assert [r["exit"]["exit_code"] for r in records if r["type"] == "exit"] == [0]


@pytest.mark.e2e
def test_every_snapshot_is_a_weights_only_wandb_model_artifact(tiny_run):
    cfg = run_config(tiny_run)
    run_id = fileio.read_json(tiny_run / "run.json")["wandb_run_id"]
    records = wandb_records(tiny_run)
    artifacts = [r["artifact"] for r in records if r["type"] == "artifact" and r["artifact"]["type"] == "model"]
    by_step = {}
    for artifact in artifacts:
        assert artifact["name"] == f"model-{run_id}" and "latest" in artifact["aliases"]
        (alias,) = [a for a in artifact["aliases"] if a.startswith("step-")]
        by_step[int(alias.removeprefix("step-"))] = artifact["manifest"]["contents"]
    assert sorted(by_step) == schedule(cfg)
    for step, contents in by_step.items():
        (entry,) = contents
        assert entry["path"] == f"step_{step:07d}.weights.pt"
        weights = torch.load(entry["local_path"], weights_only=True)
        assert set(weights) == {"step", "model", "model_args", "vocab_hash", "config", "wandb_run_id"}  # no optimizer
        snapshot = Snapshot.from_payload(Path(entry["local_path"]), weights)
        full = torch.load(tiny_run / "checkpoints" / f"step_{step:07d}.pt", weights_only=True)
        assert snapshot.step == step and all(torch.equal(full["model"][k], v) for k, v in snapshot.weights.items())
        if step > 0:  # AdamW's two moments per weight stay in the local snapshot
            assert int(entry["size"]) < 0.5 * (tiny_run / "checkpoints" / f"step_{step:07d}.pt").stat().st_size
    # Lineage: the run names the prepare stage's dataset artifact, down to its vocabulary.
    inputs = [i for r in records if r["type"] == "config" for i in r["config"]["update"]["inputs"].values()]
    vocab_hash = fileio.read_json(Path(cfg.paths.processed_dir) / "meta.json")["vocab_hash"]
    assert [(i["artifact"].split(":")[0], i["type"], i["vocab_hash"]) for i in inputs] == [
        (f"dataset-{cfg.corpus.name}", "dataset", vocab_hash)
    ]


@pytest.mark.e2e
def test_snapshots_are_plain_data_and_hold_what_resuming_needs(tiny_run):
    cfg = run_config(tiny_run)
    folder = tiny_run / "checkpoints"
    files = [f"step_{s:07d}{kind}.pt" for s in schedule(cfg) for kind in ("", ".weights")]
    assert sorted(p.name for p in folder.iterdir()) == files  # snapshots and their W&B copies, no temporaries
    vocab_hash = fileio.read_json(Path(cfg.paths.processed_dir) / "meta.json")["vocab_hash"]
    for step in schedule(cfg):
        snapshot = torch.load(folder / f"step_{step:07d}.pt", weights_only=True)
        assert {"step", "model", "optimizer", "rng", "config", "model_args", "vocab_hash"} <= snapshot.keys()
        assert snapshot["step"] == step and snapshot["vocab_hash"] == vocab_hash
        assert {"torch", "batches"} <= snapshot["rng"].keys()
        assert snapshot["config"] == OmegaConf.to_container(cfg, resolve=True)
        assert (len(snapshot["optimizer"]["state"]) > 0) == (step > 0)  # AdamW moments after the first update


@pytest.mark.e2e
def test_a_snapshot_replays_to_the_metrics_logged_at_its_step(tiny_run):
    """The file at step N is the model measured at step N: analysis of snapshots sees training's numbers."""
    cfg = run_config(tiny_run)
    final = cfg.train.max_iters
    path = tiny_run / "checkpoints" / f"step_{final:07d}.pt"
    model = Snapshot.from_payload(path, torch.load(path, weights_only=True)).model()
    settings = validate(cfg, "train")
    measurements = Measurements.from_config(
        settings.corpus, settings.analysis, TokenData(cfg.paths.processed_dir), cfg.model.block_size
    )
    replayed = measurements.of(model)
    logged = next(r for r in JsonlFile(tiny_run / "metrics.jsonl").read() if r["step"] == final)
    assert replayed == pytest.approx({k: logged[k] for k in replayed}, abs=1e-6)


# --- bad input --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_training_before_prepare_says_to_run_make_prepare(workdir):
    done = run_stage("train", ["experiment=tiny"], workdir)
    assert done.returncode == 2
    assert "make prepare" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.e2e
def test_an_unwritable_output_dir_is_explained(tmp_path):
    done = run_stage("train", ["experiment=tiny", "paths.output_dir=/proc/glassbox"], tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "could not write /proc/glassbox/tiny: No such file or directory" in done.stderr
