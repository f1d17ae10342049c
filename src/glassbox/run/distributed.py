"""Data-parallel training under `torchrun`: who this process is, and agreeing on one run dir.

`torchrun --nproc_per_node=N -m glassbox.train ...` starts N copies of the train entry point.
Each copy is a rank; they hold identical weights, each computes gradients on its own slice of
the global batch, and DistributedDataParallel averages the gradients. Only rank 0 writes
(snapshots, metrics, W&B). Without torchrun everything here reduces to one process, rank 0.
"""

from __future__ import annotations

import os
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime

import torch
import torch.distributed as dist

RUN_STAMP_ENV = "GLASSBOX_RUN_STAMP"


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def current() -> Ranks:
    """This process's place in the job, from the environment torchrun sets (one process without it)."""
    if "RANK" not in os.environ:
        return Ranks()
    return Ranks(int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", 0)), int(os.environ["WORLD_SIZE"]))


def start() -> Ranks:
    """Join the process group (NCCL on GPU, gloo on CPU) and share rank 0's run timestamp.

    Hydra names the run directory after the time it starts, which differs between ranks by a few
    microseconds; conf/hydra/default.yaml reads GLASSBOX_RUN_STAMP first, so all ranks land in one
    directory. Must run before Hydra composes the config.
    """
    ranks = current()
    if not ranks.distributed or dist.is_initialized():
        return ranks
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(ranks.local_rank)
    dist.init_process_group(backend=backend)
    stamp = [datetime.now().strftime("%Y-%m-%d_%H-%M-%S-%f") if ranks.is_main else None]
    dist.broadcast_object_list(stamp, src=0)
    os.environ[RUN_STAMP_ENV] = stamp[0]
    return ranks


def stop() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def mean_across_ranks(value: float, device: torch.device) -> float:
    """The average of a scalar over all ranks (the loss of the global batch); itself on one process."""
    if not dist.is_initialized():
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.item() / dist.get_world_size()


def gradient_sync(model: torch.nn.Module, enabled: bool):
    """Context for one micro-step: ranks average gradients only on the last micro-step of a step."""
    if enabled or not dist.is_initialized():
        return nullcontext()
    return model.no_sync()


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank if it is true on any (a stop request must stop all ranks at the same step)."""
    if not dist.is_initialized():
        return flag
    tensor = torch.tensor([int(flag)], device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return bool(tensor.item())


def from_main(obj):
    """Rank 0's `obj` on every rank (e.g. where the run starts); `obj` itself on one process."""
    if not dist.is_initialized():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
