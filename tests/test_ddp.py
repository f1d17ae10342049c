"""Data-parallel training: two CPU processes under torchrun (gloo) train like one process with the same global
batch, in float32 and under bf16 autocast, and write one run with one set of snapshots."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from glassbox.run.layout import list_snapshots
from glassbox.run.tracking import JsonlFile
from helpers import path_overrides, run_stage

TINY = [
    "experiment=tiny",
    "train.max_iters=24",
    "train.snapshots.log_spaced_until=8",
    "train.snapshots.every=12",
    "train.log_every=4",
    "train.grad_accum_steps=2",
]


def torchrun(root: Path, overrides: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_SILENT": "true", "PYTHONUNBUFFERED": "1"}
    env.pop("GLASSBOX_RUN_STAMP", None)
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "glassbox.train",
        *path_overrides(root),
        *overrides,
    ]
    return subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=300)


# How close two ranks with half the batch each come to one process: float32 sums the halves' gradients in another
# order (1e-4); bf16 autocast rounds each half's gradient matmul to 8 bits of mantissa before the sum (2^-8 ≈ 4e-3).
TOLERANCE = {"float32": dict(rel=1e-4, abs=1e-5), "bfloat16": dict(rel=1e-2, abs=1e-3)}


@pytest.mark.e2e
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_two_gloo_ranks_match_one_process_with_the_global_batch(workdir, dtype):
    assert run_stage("prepare", ["experiment=tiny"], workdir).returncode == 0
    single = run_stage("train", [*TINY, f"train.dtype={dtype}", "train.batch_size=8", "name=single"], workdir)
    assert single.returncode == 0, single.stderr[-2000:]
    ddp = torchrun(workdir, [*TINY, f"train.dtype={dtype}", "train.batch_size=4", "name=ddp"])
    assert ddp.returncode == 0, ddp.stderr[-3000:]

    runs = [p for p in (workdir / "outputs" / "ddp").iterdir() if p.name != "latest"]
    assert len(runs) == 1, f"the ranks wrote {len(runs)} run directories: {runs}"
    ddp_run, single_run = runs[0], (workdir / "outputs" / "single" / "latest").resolve()
    assert [s for s, _ in list_snapshots(ddp_run)] == [s for s, _ in list_snapshots(single_run)]

    ddp_rows, single_rows = JsonlFile(ddp_run / "metrics.jsonl").read(), JsonlFile(single_run / "metrics.jsonl").read()
    assert [r["step"] for r in ddp_rows] == [r["step"] for r in single_rows] == [0, 1, 2, 4, 8, 12, 24]
    for a, b in zip(ddp_rows, single_rows):
        assert a["tokens"] == b["tokens"]  # global batch × block × accumulation, counted over both ranks
        for key in ("loss/val", "loss/train", "cos/a_e", "emb/std", "resid_std/L1"):
            if key in b:
                assert a[key] == pytest.approx(b[key], **TOLERANCE[dtype]), (b["step"], key)
