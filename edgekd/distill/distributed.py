"""DistributedDataParallel plumbing for `torchrun --nproc-per-node N edgekd run CONFIG`.

torchrun sets WORLD_SIZE, RANK and LOCAL_RANK; without them every function here is a no-op, so the
single-process path stays the default. gloo on CPU, nccl on CUDA. Rank 0 alone writes files.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn

# Ranks wait for rank 0 while it writes caches and checkpoints; teacher training can take a while.
_TIMEOUT = timedelta(hours=2)


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_env() -> None:
    """Join the process group torchrun describes in the environment (once)."""
    if not launched_by_torchrun() or dist.is_initialized():
        return
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend, timeout=_TIMEOUT)


def active() -> bool:
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    if active():
        dist.barrier()


def device() -> torch.device:
    """This process's device: its own GPU under torchrun with CUDA, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


@contextmanager
def main_first() -> Iterator[None]:
    """Rank 0 runs the block first (filling a cache, writing a file); the others run it after, finding it done."""
    if not is_main():
        barrier()
    yield
    if is_main():
        barrier()


def wrap(model: nn.Module) -> nn.Module:
    """DDP-wrap a model when running distributed; DDP averages gradients so every rank stays identical."""
    if not active():
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [model_device(model).index] if model_device(model).type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def shard(order: torch.Tensor) -> torch.Tensor:
    """This rank's slice of an epoch's permutation (every rank draws the same one from the same seed).

    Like torch's DistributedSampler with drop_last: equal lengths, so every rank takes the same number of
    steps and DDP's all-reduce never waits on a rank that has run out of data.
    """
    world = world_size()
    if world == 1:
        return order
    per_rank = len(order) // world
    return order[rank()::world][:per_rank]


def model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def finish() -> None:
    """Leave the process group cleanly (torchrun warns otherwise)."""
    if active():
        dist.barrier()
        dist.destroy_process_group()
