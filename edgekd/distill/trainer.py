"""One training loop for teachers, students and fine-tuning, over in-memory tensors.

Batches are index slices of tensors already in memory: for datasets that fit in RAM (digits,
Fashion-MNIST) this keeps both cores on compute instead of on DataLoader worker overhead.
"""
from __future__ import annotations

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
from tqdm.auto import tqdm

from ..config import TrainConfig
from ..environment import has_cpu_flag
from ..errors import StageError
from ..fileio import atomic_path

# loss(model_output, batch_indices, labels) -> scalar
LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class TrainResult:
    epochs_run: int
    seconds: float
    images_per_second: float
    final_loss: float
    autocast: str


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


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: TrainConfig, loss_fn: LossFn, seed: int,
          desc: str = "train", checkpoint: Optional[Path] = None, epochs: Optional[int] = None) -> TrainResult:
    """Train in place with a cosine schedule; checkpoint each epoch so `--resume` can continue."""
    epochs = cfg.epochs if epochs is None else epochs
    device = next(model.parameters()).device
    optimizer = make_optimizer(model, cfg)
    steps_per_epoch = max(1, math.ceil(len(y) / cfg.batch_size))
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=max(1, epochs * steps_per_epoch),
                                                   pct_start=0.15) if epochs else None
    start_epoch = _resume(checkpoint, model, optimizer, schedule)
    dtype = autocast_dtype(cfg.amp, device)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(start_epoch):  # keep the shuffling sequence identical after a resume
        torch.randperm(len(y), generator=generator)
    started, seen, loss_value = time.perf_counter(), 0, float("nan")
    model.train()
    bar = tqdm(total=(epochs - start_epoch) * steps_per_epoch, desc=desc, leave=False, unit="batch", mininterval=0.5)
    for epoch in range(start_epoch, epochs):
        order = torch.randperm(len(y), generator=generator)
        for step in range(steps_per_epoch):
            idx = order[step * cfg.batch_size:(step + 1) * cfg.batch_size]
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                loss = loss_fn(model(x[idx]), idx, y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            seen += len(idx)
            loss_value = float(loss.detach())
            bar.update()
            if step % 20 == 0:
                bar.set_postfix(epoch=f"{epoch + 1}/{epochs}", loss=f"{loss_value:.3f}", refresh=False)
        _save_progress(checkpoint, model, optimizer, schedule, epoch + 1)
    bar.close()
    elapsed = time.perf_counter() - started
    model.eval()
    return TrainResult(epochs - start_epoch, elapsed, seen / elapsed if elapsed else 0.0, loss_value,
                       str(dtype).replace("torch.", "") if dtype else "off")


def _save_progress(checkpoint: Optional[Path], model, optimizer, schedule, epoch: int) -> None:
    if checkpoint is None:
        return
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "schedule": schedule.state_dict(), "epoch": torch.tensor(epoch)}
    with atomic_path(checkpoint) as tmp:
        torch.save(state, tmp)


def _resume(checkpoint: Optional[Path], model, optimizer, schedule) -> int:
    if checkpoint is None or not checkpoint.is_file():
        return 0
    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if schedule is not None:
            schedule.load_state_dict(state["schedule"])
        epoch = int(state["epoch"])
    except (RuntimeError, KeyError, ValueError, TypeError, EOFError, pickle.UnpicklingError) as exc:
        raise StageError(f"{checkpoint}: cannot resume from this progress checkpoint ({str(exc).splitlines()[0][:120]}); "
                         "delete it, or run with --force to start the stage over") from None
    tqdm.write(f"{checkpoint.name}: resuming after epoch {epoch}", file=sys.stderr)
    return epoch


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor | np.ndarray, batch_size: int = 1024) -> np.ndarray:
    model.eval()
    x = torch.as_tensor(x)
    outputs = [model(x[i:i + batch_size]).float() for i in range(0, len(x), batch_size)]
    return torch.cat(outputs).numpy()


def cross_entropy_loss() -> LossFn:
    criterion = nn.CrossEntropyLoss()
    return lambda logits, _idx, labels: criterion(logits.float(), labels)
