"""When things happen in training, and in what precision: the learning rate, the snapshot steps, autocast."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

import torch

from glassbox.config.groups import Train
from glassbox.device import cpp_compiler


def lr_at(step: int, tc: Train) -> float:
    """Linear warmup to learning_rate, then cosine decay to min_lr at lr_decay_iters."""
    if step < tc.warmup_iters:
        return tc.learning_rate * (step + 1) / tc.warmup_iters
    if step >= tc.lr_decay_iters:
        return tc.min_lr
    progress = (step - tc.warmup_iters) / max(1, tc.lr_decay_iters - tc.warmup_iters)
    return tc.min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (tc.learning_rate - tc.min_lr)


def snapshot_steps(max_iters: int, log_spaced_until: int, every: int) -> list[int]:
    """Step 0, then 1, 2, 4, … ≤ log_spaced_until (Pythia's schedule), then every `every`, then the end.

    Early steps are where the embeddings move fastest, so they are sampled densely.
    """
    steps = {0, max_iters}
    power = 1
    while power <= min(log_spaced_until, max_iters):
        steps.add(power)
        power *= 2
    if every > 0:
        steps.update(range(every, max_iters + 1, every))
    return sorted(steps)


def cpu_has_native_bf16() -> bool:
    """The CPU multiplies bf16 in hardware (avx512_bf16, or AMX tiles). Without either, oneDNN emulates bf16
    through float32 and a bf16 step is slower than a float32 one."""
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


def compute_dtype(device: torch.device, dtype: str) -> tuple[str, str]:
    """(the dtype the matmuls train in, why): train.dtype as given; for `auto`, bf16 autocast wherever the
    hardware multiplies bf16 natively (a GPU with bf16, a CPU with avx512_bf16 or AMX), float32 elsewhere.
    Both default runs' claims keep their float32 verdicts under bf16 over three seeds (README)."""
    if dtype != "auto":
        return dtype, f"train.dtype={dtype}"
    if device.type == "cuda":
        native = torch.cuda.is_bf16_supported()
        return ("bfloat16", "auto: this GPU has bf16") if native else ("float32", "auto: this GPU has no bf16")
    if device.type == "cpu":
        if cpu_has_native_bf16():
            return "bfloat16", "auto: this CPU has avx512_bf16 or AMX; train.dtype=float32 for float32"
        return "float32", "auto: this CPU has neither avx512_bf16 nor AMX (emulated bf16 is slower)"
    return "float32", f"auto: float32 on {device.type}"


def compile_choice(device: torch.device, dtype: str, world_size: int, setting: str | bool) -> tuple[bool, str]:
    """(whether the training step runs torch.compiled, why): train.compile as given; for `auto`, compiled on a
    CPU training in bf16 in one process, where inductor fuses what eager runs op by op, autocast's casts among
    them (1.2x a step under deterministic_kernels, for 17 s of compiling; scripts/benchmark.py --nanogpt); eager
    elsewhere: in float32 on a CPU it gained nothing, on a GPU `train=gpu` turns it on, and compiled
    data-parallel ranks on a CPU are not tested here."""
    if setting != "auto":
        return setting, f"train.compile={str(setting).lower()}"
    if device.type != "cpu":
        return False, f"auto: eager on {device.type}; train.compile=true compiles"
    if dtype != "bfloat16":
        return False, "auto: eager in float32 on a CPU, where compiling gains nothing"
    if world_size > 1:
        return False, "auto: eager with several processes on a CPU"
    if cpp_compiler() is None:
        return False, "auto: eager, for torch.compile finds no C++ compiler here (g++ or clang++)"
    return True, "auto: a bf16 step on a CPU, which compiling makes about 1.2x faster"


@contextmanager
def deterministic_kernels() -> Iterator[None]:
    """torch's deterministic flag while a compiled step is built and run. Inductor's CPU code adds the
    embedding's gradient rows with atomic adds from several threads, so two runs of the same compiled step
    differ in the last bits; under the flag it uses ATen's ordered kernels there and runs repeat exactly. The
    flag is set for the step alone: the rest of the process (eager float32, the metrics) is left as it was."""
    before = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])


def autocast_in(device: torch.device, dtype: str):
    """bf16 autocast for compute dtype `bfloat16` (weights, optimizer state and the loss stay float32); a no-op
    for float32."""
    if dtype != "bfloat16":
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
