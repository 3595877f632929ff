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

from edgekd.core.errors import ConfigError

# Ranks wait for rank 0 while it writes caches and checkpoints; teacher training can take a while.
_TIMEOUT = timedelta(hours=2)


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_env(setting: str = "auto") -> None:
    """Join the process group torchrun describes in the environment (once): nccl when training on GPUs."""
    if not launched_by_torchrun() or dist.is_initialized():
        return
    backend = "nccl" if setting != "cpu" and torch.cuda.is_available() else "gloo"
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


DEVICE_PATTERN = r"^(auto|cpu|cuda(:[0-9]+)?)$"
# Training data moves to the GPU whole when it takes at most this share of the free memory: batches are
# then index slices on the device, with no host-to-device copy per step.
DATA_ON_DEVICE_SHARE = 0.25


def device(setting: str = "auto") -> torch.device:
    """This process's training device for the config's `device`: auto is the GPU when there is one (under
    torchrun, its LOCAL_RANK's), else the CPU. Raises ConfigError, naming the field, when the asked GPU is absent."""
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if setting == "cpu" or (setting == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ConfigError(f"device '{setting}': this machine has no usable CUDA GPU (torch {torch.__version__}, "
                          f"CUDA build {torch.version.cuda or 'none'}); use device: cpu or auto")
    index = int(setting.split(":")[1]) if ":" in setting else local_rank
    if index >= torch.cuda.device_count():
        raise ConfigError(f"device '{setting}': this machine has {torch.cuda.device_count()} CUDA GPU(s) "
                          f"(cuda:0..cuda:{torch.cuda.device_count() - 1}); pick one of those, or auto")
    return torch.device("cuda", index)


def place(x: torch.Tensor, where: torch.device) -> torch.Tensor:
    """Training data for `where`: on the GPU when it fits comfortably, else in pinned host memory (batches are then
    copied asynchronously); unchanged on the CPU."""
    if where.type != "cuda":
        return x
    free, _total = torch.cuda.mem_get_info(where)
    if x.element_size() * x.nelement() <= DATA_ON_DEVICE_SHARE * free:
        return x.to(where)
    return x.pin_memory()


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
