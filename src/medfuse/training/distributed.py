"""Training on several processes (``torchrun``): what the one training loop needs to know.

``torchrun --nproc-per-node N -m medfuse train ...`` starts N copies of the same command with
RANK, LOCAL_RANK and WORLD_SIZE in their environment. Each process then joins one process
group (NCCL on CUDA, each on its own GPU ``cuda:LOCAL_RANK``; gloo on the CPU), wraps the
model in DistributedDataParallel (gradients averaged over the ranks at every step), draws
its own crops, and leaves every file to rank 0. Without torchrun there is one rank and none
of this happens.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class Ranks:
    """This process's place: ``rank`` of ``world_size``, ``local_rank`` on its machine."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0, the one that writes."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def ranks_from_environment() -> Ranks:
    """The ranks torchrun set (RANK, WORLD_SIZE, LOCAL_RANK), or one rank."""
    return Ranks(
        int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))
    )


@contextmanager
def process_group(ranks: Ranks, device: torch.device) -> Iterator[torch.device]:
    """Join the ranks' process group for the duration (nothing for one rank); yields this
    rank's device (``cuda:LOCAL_RANK`` for CUDA)."""
    if not ranks.distributed:
        yield device
        return
    if device.type == "cuda":
        device = torch.device("cuda", ranks.local_rank)
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        yield device
    finally:
        dist.destroy_process_group()


def parallel(model: nn.Module, ranks: Ranks, device: torch.device) -> nn.Module:
    """The model wrapped in DistributedDataParallel for several ranks, else itself."""
    if not ranks.distributed:
        return model
    return nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def mean_over_ranks(value: float, ranks: Ranks, device: torch.device) -> float:
    """The mean of ``value`` over the ranks (itself for one rank)."""
    if not ranks.distributed:
        return value
    total = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(total)
    return float(total.item()) / ranks.world_size


def gather(value: object, ranks: Ranks) -> list[object]:
    """Every rank's ``value``, in rank order, on every rank."""
    if not ranks.distributed:
        return [value]
    values: list[object] = [None] * ranks.world_size
    dist.all_gather_object(values, value)
    return values


def parameters_digest(model: nn.Module) -> str:
    """SHA-256 of a model's parameters (to check that every rank holds the same weights)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def wait_for_all(ranks: Ranks) -> None:
    """A barrier (nothing for one rank)."""
    if ranks.distributed:
        dist.barrier()
