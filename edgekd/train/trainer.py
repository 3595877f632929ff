"""One training loop for teachers, students and fine-tuning, over in-memory tensors.

Batches are index slices of tensors already in memory: for datasets that fit in RAM (digits,
Fashion-MNIST) this keeps both cores on compute instead of on DataLoader worker overhead.
Under torchrun each rank trains a DDP replica on its shard of every epoch's permutation.
"""
from __future__ import annotations

import hashlib
import json
import math
import pickle
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch import nn

from edgekd.core.environment import has_cpu_flag
from edgekd.core.errors import StageError
from edgekd.core.metrics import batch_rows
from edgekd.core.progress import progress
from edgekd.train import distributed
from edgekd.train.config import TrainConfig
from edgekd.train.models.loading import save_torch

# loss(model_output, batch_indices, labels) -> scalar
LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
# inputs(batch_indices, epoch) -> the batch the model sees (e.g. augmented); default x[idx]
InputsFn = Callable[[torch.Tensor, int], torch.Tensor]


@dataclass
class TrainResult:
    epochs_run: int
    seconds: float
    images_per_second: float
    final_loss: Optional[float]  # None when no step ran (a resumed job that had finished every epoch)
    autocast: str
    resumed_from_epoch: int = 0
    epoch_seconds: float = 0.0  # median wall time of one epoch

    def summary(self) -> dict:
        return {"epochs": self.epochs_run, "seconds": round(self.seconds, 2), "epoch_seconds": round(self.epoch_seconds, 3),
                "images_per_second": round(self.images_per_second, 1), "autocast": self.autocast,
                "resumed_from_epoch": self.resumed_from_epoch, "final_loss": None if self.final_loss is None else round(self.final_loss, 4)}


def autocast_dtype(mode: str, device: torch.device) -> Optional[torch.dtype]:
    if mode == "off":
        return None
    if mode == "bf16":
        return torch.bfloat16
    if mode == "fp16":
        return torch.float16
    if device.type == "cuda":
        return torch.bfloat16
    # bf16 autocast only pays off with native bf16 matmul units (AMX / AVX512-BF16).
    return torch.bfloat16 if has_cpu_flag("amx_bf16") or has_cpu_flag("avx512_bf16") else None


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay)


def progress_tag(cfg: TrainConfig, epochs: int, seed: int, n: int, extra: str = "") -> str:
    """Identity of one training job: a progress checkpoint resumes only the job that wrote it."""
    job = {"train": cfg.model_dump(mode="json"), "epochs": epochs, "seed": seed, "samples": n,
           "world": distributed.world_size(), "extra": extra}
    return hashlib.sha256(json.dumps(job, sort_keys=True).encode()).hexdigest()[:16]


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: TrainConfig, loss_fn: LossFn, seed: int,
          desc: str = "train", checkpoint: Optional[Path] = None, epochs: Optional[int] = None,
          inputs: Optional[InputsFn] = None, on_epoch: Optional[Callable[[int], None]] = None,
          tag: str = "") -> TrainResult:
    """Train in place with a one-cycle schedule; checkpoint each epoch so `--resume` can continue mid-stage."""
    epochs = cfg.epochs if epochs is None else epochs
    device = distributed.model_device(model)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    net = distributed.wrap(model)
    optimizer = make_optimizer(model, cfg)
    local_batch = max(1, cfg.batch_size // distributed.world_size())  # the global batch stays cfg.batch_size
    steps_per_epoch = max(1, math.ceil(len(distributed.shard(torch.arange(len(y), device="cpu"))) / local_batch))
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=max(1, epochs * steps_per_epoch),
                                                   pct_start=0.15)
    tag = progress_tag(cfg, epochs, seed, len(y), f"{desc}|{tag}")
    start_epoch = _resume(checkpoint, tag, model, optimizer, schedule)
    dtype = autocast_dtype(cfg.amp, device)
    batch_of = inputs or (lambda idx, _epoch: x[idx])
    # Batches are index slices where the data lives (the GPU when it fits there): labels and each epoch's
    # order go there once, not a copy per step. The order is drawn on the CPU, the same on every device.
    y = y.to(x.device)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    for _ in range(start_epoch):  # keep the shuffling sequence identical after a resume
        torch.randperm(len(y), generator=generator, device="cpu")
    seen, loss_value, epoch_times = 0, None, []  # None, not NaN: it lands in manifest.json
    model.train()
    bar = progress(total=(epochs - start_epoch) * steps_per_epoch, desc=desc, unit="batch",
                   disable=None if distributed.is_main() else True)
    for epoch in range(start_epoch, epochs):
        epoch_started = time.perf_counter()
        if on_epoch:
            on_epoch(epoch)  # inside the epoch's time: preparing soft targets is part of what distillation costs
        order = distributed.shard(torch.randperm(len(y), generator=generator, device="cpu")).to(x.device)
        for step in range(steps_per_epoch):
            idx = order[step * local_batch:(step + 1) * local_batch]
            batch = _to(batch_of(idx, epoch), device, cfg.channels_last)
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                loss = loss_fn(net(batch), idx, y[idx].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            seen += len(idx)
            bar.update()
            if step % 20 == 0:  # reading the loss waits for the GPU: not every step, or it could not run ahead
                loss_value = float(loss.detach())
                bar.set_postfix(epoch=f"{epoch + 1}/{epochs}", loss=f"{loss_value:.3f}", refresh=False)
        loss_value = float(loss.detach())
        epoch_times.append(time.perf_counter() - epoch_started)
        _save_progress(checkpoint, tag, model, optimizer, schedule, epoch + 1)
    bar.close()
    elapsed = sum(epoch_times)
    model.eval()
    return TrainResult(epochs - start_epoch, elapsed, seen * distributed.world_size() / elapsed if elapsed else 0.0, loss_value,
                       str(dtype).replace("torch.", "") if dtype else "off", start_epoch,
                       float(np.median(epoch_times)) if epoch_times else 0.0)


def _to(batch: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    batch = batch.to(device, non_blocking=True)
    return batch.contiguous(memory_format=torch.channels_last) if channels_last and batch.dim() == 4 else batch


def _save_progress(checkpoint: Optional[Path], tag: str, model, optimizer, schedule, epoch: int) -> None:
    if checkpoint is None or not distributed.is_main():
        return
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "schedule": schedule.state_dict(), "epoch": torch.tensor(epoch, device="cpu"), "tag": tag}
    save_torch(state, checkpoint)  # its bytes depend on the state alone, not on a temporary file's name


def _resume(checkpoint: Optional[Path], tag: str, model, optimizer, schedule) -> int:
    """Continue from the last finished epoch of this same job; a checkpoint of another job is ignored."""
    if checkpoint is None or not checkpoint.is_file():
        return 0
    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        if state.get("tag") != tag:
            return 0
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        epoch = int(state["epoch"])
    except (RuntimeError, KeyError, ValueError, TypeError, AttributeError, EOFError, pickle.UnpicklingError) as exc:
        raise StageError(f"{checkpoint}: cannot resume from this progress checkpoint ({str(exc).splitlines()[0][:120]}); "
                         "delete it, or run with --force to start the stage over") from None
    if distributed.is_main():
        print(f"{checkpoint.name}: resuming after epoch {epoch}", file=sys.stderr, flush=True)  # before any bar starts
    return epoch


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor | np.ndarray, batch_size: Optional[int] = None,
                   autocast: Optional[torch.dtype] = None) -> np.ndarray:
    """Logits in batches of at most 1024 samples and core.metrics.BATCH_BYTES of input (unless `batch_size` is
    given): activations scale with the batch, and 1024 images of 3x224x224 made a mid-size CNN's forward pass
    hold gigabytes."""
    model.eval()
    device = distributed.model_device(model)
    batch_size = batch_size or batch_rows(x, limit=1024)
    outputs = []
    for i in range(0, len(x), batch_size):  # sliced before conversion: `x` may be a lazy image folder
        with torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
            outputs.append(model(torch.as_tensor(x[i:i + batch_size]).to(device)).float().cpu())
    return torch.cat(outputs).numpy()


def cross_entropy_loss() -> LossFn:
    criterion = nn.CrossEntropyLoss()
    return lambda logits, _idx, labels: criterion(logits.float(), labels)
