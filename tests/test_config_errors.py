"""The config is validated before anything exists: each invalid value named key by key, every shipped
experiment and model valid, CUDA without a GPU and compiling without a C++ compiler refused when training,
and a command refused with exit code 2 leaves no run or sweep directory behind."""

from __future__ import annotations

import pytest
import torch

from glassbox.config import validate
from glassbox.errors import GlassboxError
from glassbox.paths import CONF_DIR
from helpers import (
    compose_config,
    copy_run,
    run_stage,
)


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
        (
            "corpus.probes.position.pattern='(ab'",
            "corpus.probes.position.pattern='(ab': not a Python regular expression",
        ),
        ("corpus.probes.position.decided_after=[ab]", "decided_after=['ab']: expected single characters"),
        ("analysis.layer_probes.train_share=1.0", "analysis.layer_probes.train_share=1.0: Input should be less than 1"),
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


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_compiling_on_a_cpu_without_a_cpp_compiler_is_refused_when_training(monkeypatch, tmp_path):
    cfg = compose_config("train", ["experiment=tiny", "train.compile=true"])
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-c++"))
    validate(cfg, "train")  # analysing a run that was compiled needs no compiler
    with pytest.raises(GlassboxError, match="train: compile=true on a CPU needs a C\\+\\+ compiler"):
        validate(cfg, "train", training=True)
    monkeypatch.setenv("CXX", "sh")  # any program on PATH passes: torch itself says if it cannot build with it
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


@pytest.mark.slow
def test_a_sweep_that_repeats_a_job_is_refused_before_its_folder_exists(tmp_path):
    """`make replicate SEEDS=1,1`: the same seed twice would count as two seeds agreeing."""
    done = run_stage(
        "train",
        ["hydra.mode=MULTIRUN", "experiment=tiny", "hydra/callbacks=replicate", "seed=1,1", "wandb.mode=disabled"],
        tmp_path,
    )  # hydra.mode=MULTIRUN: `--multirun` may not follow run_stage's own overrides
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "repeats job 0" in done.stderr
    assert not (tmp_path / "outputs" / "tiny" / "sweeps").exists()


@pytest.mark.slow
@pytest.mark.parametrize("stage, swept", [("analyze", "seed=1,2"), ("sample", "prompt=a,b")])
def test_multirun_of_a_stage_other_than_train_is_refused_before_any_folder(tmp_path, stage, swept):
    """`make analyze ARGS=-m` once wrote its analysis into outputs/<experiment>/sweeps/ (not into the run, where
    `make explore` and the report link look), and `make sample ARGS="-m prompt=a,b"` ended in a traceback."""
    done = run_stage(stage, ["hydra.mode=MULTIRUN", "experiment=tiny", swept, "wandb.mode=disabled"], tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"--multirun (-m) runs only train (make sweep, make replicate); the {stage} stage runs once" in done.stderr
    assert not (tmp_path / "outputs").exists()


@pytest.mark.slow
@pytest.mark.parametrize(
    "override, answer",
    [
        ("num_sample=1", "error: num_sample is not a key of this config (did you mean num_samples?)"),
        ("model.nlayer=2", "error: model.nlayer is not a key of this config (did you mean model.n_layer?)"),
        ("model=nosuch", "Could not find 'model/nosuch'"),
        ("temperature=(", "Error parsing override 'temperature=('"),
    ],
)
def test_an_override_hydra_refuses_exits_2_with_its_message(tmp_path, override, answer):
    """Once exit code 1, and Hydra's advice to add a mistyped key with `+` (which the stage then refuses)."""
    done = run_stage("sample", ["experiment=tiny", override], tmp_path)
    assert done.returncode == 2, done.stderr[-2000:]
    assert answer in done.stderr and "+num_sample" not in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "outputs").exists()


@pytest.mark.slow
def test_a_sweep_over_a_mistyped_key_says_so_once_and_leaves_no_multirun_yaml(tmp_path):
    """`make sweep SWEEP="model.nlayer=1,2"` once said it twice behind a UserWarning, exit 1, and left a sweep
    folder holding multirun.yaml."""
    done = run_stage("train", ["hydra.mode=MULTIRUN", "experiment=tiny", "model.nlayer=1,2"], tmp_path)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.count("model.nlayer is not a key of this config (did you mean model.n_layer?)") == 1
    assert "UserWarning" not in done.stderr and not (tmp_path / "outputs").exists()
