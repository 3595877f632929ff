"""Training the text classifiers: length-bucketed batches, AdamW with linear warm-up and decay, the best epoch
kept by validation top-1, and the teacher's outputs (logits, last [CLS] state) computed once for KD.

Used by benchmarks/distill_text.py and the pipeline's text task alike, so both train the same way.
"""
from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgekd.core.errors import DataError
from edgekd.core.progress import progress
from edgekd.text import losses, models

# Batches are sorted by length inside windows of this many batches: close to fully sorted (little padding), still
# shuffled at the scale of an epoch.
BUCKET_WINDOW = 50


@dataclass(frozen=True)
class Encoded:
    """A tokenized split: (N, max_length) int64 input_ids and attention_mask, (N,) int64 labels."""
    input_ids: np.ndarray
    attention_mask: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, index: np.ndarray) -> Encoded:
        return Encoded(self.input_ids[index], self.attention_mask[index], self.labels[index])

    def inputs(self) -> dict[str, np.ndarray]:
        return {"input_ids": self.input_ids, "attention_mask": self.attention_mask}


@dataclass(frozen=True)
class Recipe:
    epochs: int = 2
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup: float = 0.1      # fraction of the steps with a linearly rising learning rate
    seed: int = 0
    # Gradients clipped to this norm, as BERT's recipe and transformers' Trainer do: a post-LN hidden-256 teacher at
    # lr 1e-3 without it collapsed to the majority class in its first epoch (loss 2.62, val top-1 10.6%).
    max_grad_norm: float = 1.0


@dataclass(frozen=True)
class KD:
    """DistilBERT's objective for a classifier: alpha * T^2 * KL + (1 - alpha) * CE, plus cosine_weight times the
    cosine between the student's and the teacher's last [CLS] states (cached, so a KD step costs a student step)."""
    temperature: float = 2.0
    alpha: float = 0.5
    cosine_weight: float = 1.0


def batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Index batches of similar length. Each batch is cut to its longest text, so sorting saves the padding
    (texts are 73 tokens at the median, 15% reach 128): shuffle, sort inside windows, shuffle the batches."""
    order = rng.permutation(len(lengths))
    window = batch_size * BUCKET_WINDOW
    chunks = []
    for start in range(0, len(order), window):
        part = order[start:start + window]
        part = part[np.argsort(lengths[part], kind="stable")]
        chunks += [part[i:i + batch_size] for i in range(0, len(part), batch_size)]
    return [chunks[i] for i in rng.permutation(len(chunks))]


def _tensors(data: Encoded, index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    mask = data.attention_mask[index]
    width = max(2, int(mask.sum(1).max()))  # padding is on the right: columns past the longest text are all pad
    return torch.from_numpy(data.input_ids[index, :width]), torch.from_numpy(mask[:, :width])


@torch.no_grad()
def outputs(model: nn.Module, data: Encoded, batch_size: int = 128, hidden: bool = False) -> dict[str, np.ndarray]:
    """Logits (and, with `hidden`, the last layer's [CLS] state) for every example, in order, in eval mode."""
    model.eval()
    lengths = data.attention_mask.sum(1)
    order = np.argsort(lengths, kind="stable")  # similar lengths together: less padding
    found: dict[str, list[np.ndarray]] = {"logits": [], "cls": []}
    for start in range(0, len(order), batch_size):
        ids, mask = _tensors(data, order[start:start + batch_size])
        logits, states = models.logits_and_hidden(model, ids, mask)
        found["logits"].append(logits.float().numpy())
        if hidden:
            found["cls"].append(states[-1][:, 0].float().numpy())
    inverse = np.argsort(order, kind="stable")
    return {key: np.concatenate(parts)[inverse] for key, parts in found.items() if parts}


def top1(model: nn.Module, data: Encoded) -> float:
    return float((outputs(model, data)["logits"].argmax(1) == data.labels).mean())


def _schedule(optimizer: torch.optim.Optimizer, total: int, warmup: float) -> torch.optim.lr_scheduler.LambdaLR:
    warm = max(1, int(total * warmup))
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min((step + 1) / warm, max(0.0, (total - step) / max(1, total - warm))))


def _loss_fn(kd: KD | None, teacher: dict[str, np.ndarray] | None, projection: nn.Module | None) -> Callable:
    if kd is None:
        return lambda model, ids, mask, labels, index: F.cross_entropy(model(input_ids=ids, attention_mask=mask).logits, labels)
    if teacher is None:
        raise DataError("KD needs the teacher's cached outputs (training.outputs(teacher, train, hidden=True))")

    def loss(model, ids, mask, labels, index):
        logits, states = models.logits_and_hidden(model, ids, mask)
        teacher_logits = torch.from_numpy(teacher["logits"][index])
        teacher_cls = torch.from_numpy(teacher["cls"][index])[:, None]
        total = losses.soft_kd(logits, teacher_logits, labels, kd.temperature, kd.alpha)
        cosine = losses.hidden_cosine(states[-1][:, :1], teacher_cls, mask[:, :1], projection)
        return total + kd.cosine_weight * cosine
    return loss


def fit(model: nn.Module, train: Encoded, val: Encoded, recipe: Recipe, kd: KD | None = None,
        teacher: dict[str, np.ndarray] | None = None, projection: nn.Module | None = None,
        log: Callable[[str], None] = print, name: str = "model") -> dict:
    """Train `model` in place (cross-entropy, or KD on `teacher`'s cached outputs for the same `train` rows) and
    leave it at the epoch with the best validation top-1. Returns the per-epoch history and the seconds."""
    torch.manual_seed(recipe.seed)
    rng = np.random.default_rng(recipe.seed)
    lengths = train.attention_mask.sum(1)
    trained = [*model.parameters(), *(projection.parameters() if projection is not None else [])]
    optimizer = torch.optim.AdamW(trained, lr=recipe.lr, weight_decay=recipe.weight_decay)
    steps_per_epoch = -(-len(train) // recipe.batch_size)
    scheduler = _schedule(optimizer, steps_per_epoch * recipe.epochs, recipe.warmup)
    loss_of = _loss_fn(kd, teacher, projection)
    history, best, started = [], (-1.0, None, 0), time.perf_counter()
    for epoch in range(1, recipe.epochs + 1):
        epoch_started, total = time.perf_counter(), 0.0
        model.train()
        for index in progress(batches(lengths, recipe.batch_size, rng), desc=f"{name} epoch {epoch}/{recipe.epochs}",
                              unit="batch"):
            ids, mask = _tensors(train, index)
            loss = loss_of(model, ids, mask, torch.from_numpy(train.labels[index]), index)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trained, recipe.max_grad_norm)
            optimizer.step()
            scheduler.step()
            total += float(loss.detach()) * len(index)
        train_seconds = time.perf_counter() - epoch_started
        val_top1 = top1(model, val)
        history.append({"epoch": epoch, "loss": round(total / len(train), 4), "val_top1": round(val_top1, 4),
                        "train_seconds": round(train_seconds, 1)})
        log(f"{name} epoch {epoch}/{recipe.epochs}: loss {total / len(train):.4f}, val top-1 {val_top1:.4f} "
            f"({train_seconds:.0f} s)")
        if val_top1 > best[0]:
            best = (val_top1, copy.deepcopy(model.state_dict()), epoch)
    model.load_state_dict(best[1])
    model.eval()
    return {"history": history, "best_epoch": best[2], "val_top1": round(best[0], 4),
            "seconds": round(time.perf_counter() - started, 1)}
