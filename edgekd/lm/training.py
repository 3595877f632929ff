"""The training loop of a GPT-2-style decoder, shared by the teacher, the students and the benchmark.

AdamW (betas 0.9 / 0.95, weight decay 0.1), gradient norm clipped at 1, linear warm-up over the first 5% of the
steps then cosine decay to 10% of the peak learning rate: nanoGPT's recipe for small GPT-2 models, which trains
stably at the higher learning rates these small models need.
"""
from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from typing import Optional

import numpy as np
import torch

from edgekd.core.progress import progress
from edgekd.lang.perplexity import checked_blocks

LOG_EVERY = 25


def lr_at(step: int, steps: int, peak: float) -> float:
    """Linear warm-up over the first 5% of steps, then cosine decay to 10% of the peak."""
    warmup = max(1, steps // 20)
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def block_batches(train_blocks: np.ndarray, rows: np.ndarray, batch: int) -> Callable[[int], torch.Tensor]:
    """step -> the token ids of that step's batch: `rows` of `train_blocks` in order, wrapping around."""
    def batches(step: int) -> torch.Tensor:
        picked = rows[(step * batch) % len(rows):][:batch]
        return torch.from_numpy(train_blocks[picked].astype(np.int64))
    return batches


def sequence_steps(steps: int, share: float) -> np.ndarray:
    """(steps,) bool: which steps train on the teacher's sequences, `share` of them spread evenly among the others
    (step s is one when floor((s + 1) * share) passes floor(s * share)): 0.5 alternates, 1/3 is every third step."""
    marks = np.floor(np.arange(steps + 1) * float(share))
    return marks[1:] > marks[:-1]


def train_lm(model: torch.nn.Module, batches: Callable[[int], torch.Tensor], steps: int, peak_lr: float,
             loss_fn: Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor], what: str = "model",
             log: Optional[Callable[[str], None]] = None) -> dict:
    """Train `model` for `steps`; `loss_fn(logits, ids, step)` gives each step's loss. Returns steps, seconds and
    the mean loss of the last LOG_EVERY steps. Progress: a line every LOG_EVERY steps to `log`, or without one
    edgekd's progress bar (a plain line every 15 s in a log file), as the image pipeline's training shows it."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=peak_lr, betas=(0.9, 0.95), weight_decay=0.1)
    model.train()
    started, losses = time.perf_counter(), []
    bar = progress(total=steps, desc=what, unit="step") if log is None else None
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, steps, peak_lr)
        ids = batches(step)
        loss = loss_fn(model(input_ids=ids).logits, ids, step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(float(loss.detach()))
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.3f}", refresh=False)
        if log is not None and ((step + 1) % LOG_EVERY == 0 or step + 1 == steps):
            log(f"{what}: step {step + 1}/{steps}, loss {statistics.fmean(losses[-LOG_EVERY:]):.3f}, {time.perf_counter() - started:.0f} s")
    if bar is not None:
        bar.close()
    model.eval()
    return {"steps": steps, "seconds": round(time.perf_counter() - started, 1), "final_loss": round(statistics.fmean(losses[-LOG_EVERY:]), 4)}


def torch_perplexity(model, blocks: np.ndarray, batch_size: int = 16) -> float:
    """Perplexity of a PyTorch causal LM over (n, length) token blocks, exp(mean next-token cross-entropy) as
    lm/evaluate.onnx_perplexity computes it for an exported decoder (batched: each row is independent)."""
    import torch.nn.functional as F

    blocks = checked_blocks(blocks)
    total = 0.0
    with torch.no_grad():
        for start in range(0, len(blocks), batch_size):
            ids = torch.from_numpy(blocks[start:start + batch_size].astype(np.int64))
            logits = model(input_ids=ids).logits[:, :-1].double()
            total += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), reduction="sum"))
    return math.exp(total / (blocks.shape[0] * (blocks.shape[1] - 1)))
