"""Which torch device a command runs on: one resolver for training, sampling and the benchmark."""

from __future__ import annotations

import os
import shutil

import torch

from glassbox.errors import GlassboxError
from glassbox.run.distributed import Ranks


def resolve_device(name: str, ranks: Ranks | None = None) -> torch.device:
    """auto: cuda > mps > cpu; a device this machine lacks is refused. Each rank of a multi-GPU job (`ranks`)
    takes its own GPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if torch.mps.is_available() else "cpu"
    available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": torch.mps.is_available()}
    if not available[name.partition(":")[0]]:
        raise GlassboxError(f"device={name}: this machine has none; use device=auto or device=cpu")
    if name == "cuda" and ranks is not None and ranks.distributed:
        return torch.device("cuda", ranks.local_rank)
    return torch.device(name)


def cpp_compiler() -> str | None:
    """The C++ compiler torch.compile would build CPU kernels with ($CXX, else g++ or clang++), if there is one."""
    candidates = [os.environ["CXX"]] if os.environ.get("CXX") else ["g++", "clang++"]
    return next(filter(None, map(shutil.which, candidates)), None)
