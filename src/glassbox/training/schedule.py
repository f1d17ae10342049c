"""When things happen in training, and in what precision: the learning rate, the snapshot steps, autocast."""

from __future__ import annotations

import math
from contextlib import nullcontext

import torch

from glassbox.config.groups import Train


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


def autocast_for(device: torch.device, dtype: str):
    """bf16 autocast on CUDA by default; plain float32 elsewhere (CPU bf16 is slower, not faster)."""
    use_bf16 = dtype == "bfloat16" or (dtype == "auto" and device.type == "cuda")
    if not use_bf16:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
