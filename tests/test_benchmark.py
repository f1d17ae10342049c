"""scripts/benchmark.py against nanoGPT: its train.py runs where it finds its configurator and data, at the
experiment's sizes, and is timed round by round beside glassbox's train stage. nanoGPT's code is not part of
glassbox, so a stand-in train.py checks what it is given and prints nanoGPT's step lines."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from glassbox.paths import PROJECT_ROOT
from helpers import ENV

# What nanoGPT's train.py needs from the folder it runs in, and the line it prints after each step.
STAND_IN = """
import pickle, sys
from pathlib import Path
exec(open("configurator.py").read())  # as nanoGPT does: from the working folder
settings = dict(arg[2:].split("=", 1) for arg in sys.argv[1:])
vocab_size = pickle.load(open("data/glassbox/meta.pkl", "rb"))["vocab_size"]
assert vocab_size == 65 and Path("data/glassbox/train.bin").stat().st_size > 0, vocab_size
sizes = {k: settings[k] for k in ("n_layer", "n_head", "n_embd", "block_size", "batch_size", "device", "dtype")}
assert sizes == dict(n_layer="2", n_head="2", n_embd="32", block_size="32", batch_size="8", device="cpu",
                     dtype="float32"), sizes
assert (settings["compile"], settings["dropout"], settings["gradient_accumulation_steps"]) == ("False", "0.0", "1")
for step in range(int(settings["max_iters"]) + 1):
    print(f"iter {step}: loss 4.0000, time {100 if step < 2 else 16}.00ms, mfu 1.00%")
"""


@pytest.mark.slow
def test_nanogpt_train_py_is_run_at_the_experiments_sizes_and_timed_against_glassbox(root, tmp_path):
    nanogpt = tmp_path / "nanoGPT"
    nanogpt.mkdir()
    (nanogpt / "train.py").write_text(STAND_IN)
    (nanogpt / "configurator.py").write_text("")
    benchmark = [sys.executable, str(PROJECT_ROOT / "scripts" / "benchmark.py"), "--only", "nanogpt"]
    options = ["--nanogpt", str(nanogpt), "--iters", "6", "--rounds", "2", "experiment=tiny", "train.device=cpu"]
    done = subprocess.run([*benchmark, *options], cwd=root, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    # 8 sequences × 32 tokens in 16 ms: the steps after the first two (start-up, the first evaluation)
    assert [line for line in lines if line.startswith("round ") and "nanoGPT" in line] == [
        "round 1: nanoGPT float32             16,000 tokens/s",
        "round 2: nanoGPT float32             16,000 tokens/s",
    ]
    # the tiny experiment trains in float32, eager: glassbox float32 is the only other contender
    (glassbox,) = [line for line in lines if line.startswith("glassbox ") and "median" in line]
    assert glassbox.startswith("glassbox float32") and "x nanoGPT per round: " in glassbox
    assert len(glassbox.split("x nanoGPT per round: ")[1].split(", ")) == 2


def test_a_folder_without_nanogpts_train_py_is_refused(tmp_path):
    benchmark = [sys.executable, str(PROJECT_ROOT / "scripts" / "benchmark.py"), "--only", "nanogpt"]
    done = subprocess.run([*benchmark, "--nanogpt", str(tmp_path)], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 2
    assert f"--nanogpt {tmp_path}: no train.py there; give a checkout of github.com/karpathy/nanoGPT" in done.stderr
    assert not list(Path(tmp_path).iterdir())
