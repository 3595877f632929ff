"""Data-free distillation: a generator learns to produce inputs the teacher recognises, and the
student learns from the teacher on those inputs only (no real training image).

The generator's loss combines the ideas that work on MNIST-like data:
- batch-norm statistics matching (DeepInversion, Yin et al. 2020): each teacher BN layer should see
  the mean and variance it saw during training;
- one-hot confidence and class-balance entropy (DAFL, Chen et al. 2019);
- an adversarial term (DFAD, Fang et al. 2019): seek inputs where student and teacher disagree.
Hand-written because no maintained library implements data-free distillation for plain torch models.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from edgekd.core.progress import progress
from edgekd.train.config import DataFreeConfig
from edgekd.train.distill.losses import ensemble_soft_targets, kd_loss
from edgekd.train.trainer import autocast_dtype


class Generator(nn.Module):
    """DCGAN-style generator producing normalised images of the teacher's input shape."""

    def __init__(self, latent_dim: int, shape: tuple[int, int, int], mean: Sequence[float], std: Sequence[float], width: int):
        super().__init__()
        channels, height, width_px = shape
        self.init_h, self.init_w = math.ceil(height / 4), math.ceil(width_px / 4)
        self.shape, self.width = shape, width
        self.project = nn.Sequential(nn.Linear(latent_dim, width * 2 * self.init_h * self.init_w), nn.BatchNorm1d(width * 2 * self.init_h * self.init_w))
        self.body = nn.Sequential(
            nn.Upsample(scale_factor=2), nn.Conv2d(width * 2, width * 2, 3, 1, 1, bias=False), nn.BatchNorm2d(width * 2), nn.LeakyReLU(0.2),
            nn.Upsample(scale_factor=2), nn.Conv2d(width * 2, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.LeakyReLU(0.2),
            nn.Conv2d(width, channels, 3, 1, 1), nn.Sigmoid(),
        )
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.project(z).view(len(z), self.width * 2, self.init_h, self.init_w)
        pixels = self.body(h)[:, :, :self.shape[1], :self.shape[2]]  # in [0, 1], like real data
        return (pixels - self.mean) / self.std


class BatchNormStatistics:
    """Forward hooks that measure how far a batch's statistics are from each BN layer's running ones."""

    def __init__(self, model: nn.Module):
        self.losses: list[torch.Tensor] = []
        self._device = next(model.parameters()).device
        self._handles = [m.register_forward_hook(self._hook) for m in model.modules() if isinstance(m, nn.BatchNorm2d)]

    def _hook(self, module: nn.BatchNorm2d, inputs, _output) -> None:
        x = inputs[0].float()
        mean = x.mean(dim=(0, 2, 3))
        var = x.var(dim=(0, 2, 3), unbiased=False)
        self.losses.append(torch.norm(mean - module.running_mean, 2) + torch.norm(var - module.running_var, 2))

    def pop(self) -> torch.Tensor:
        total = torch.stack(self.losses).sum() if self.losses else torch.zeros((), device=self._device)
        self.losses = []
        return total

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()


class DataFreeSettings(DataFreeConfig):
    """The distill.data_free config (one home for the defaults) plus the distillation temperature."""

    temperature: float = Field(4.0, gt=0, le=100)


@dataclass
class DataFreeResult:
    steps: int
    seconds: float
    bn_loss: list[float]
    samples: np.ndarray


class ReplayBank:
    """The most recent synthesized inputs with the teachers' soft targets on them.

    Student steps draw from it, so they cost one student forward/backward only (no generator or
    teacher pass) and the student keeps seeing what earlier generators produced, which limits
    forgetting as the generator moves (as in Fast-DFKD / CMI's memory banks).
    """

    def __init__(self, capacity: int):
        self.capacity, self.filled, self.cursor = capacity, 0, 0
        self.x: torch.Tensor | None = None
        self.soft: torch.Tensor | None = None

    def add(self, x: torch.Tensor, soft: torch.Tensor) -> None:
        """Overwrite the oldest entries; a batch is never larger than the bank (see synthesize_and_distill)."""
        if self.x is None:  # on the device the batches come from
            self.x = torch.empty(self.capacity, *x.shape[1:], device=x.device)
            self.soft = torch.empty(self.capacity, *soft.shape[1:], device=soft.device)
        index = (self.cursor + torch.arange(len(x), device=self.x.device)) % self.capacity
        self.x[index], self.soft[index] = x.float(), soft.float()
        self.cursor = (self.cursor + len(x)) % self.capacity
        self.filled = min(self.capacity, self.filled + len(x))

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.randint(self.filled, (size,), device=self.x.device)
        return self.x[index], self.soft[index]


def generator_losses(teacher_logits: Sequence[torch.Tensor], bn: torch.Tensor, student_logits: torch.Tensor,
                     s: DataFreeSettings) -> torch.Tensor:
    """The generator's total loss, from the teachers' and the student's outputs on its samples."""
    mean_logits = torch.stack([z.float() for z in teacher_logits]).mean(0)
    one_hot = F.cross_entropy(mean_logits, mean_logits.argmax(1))
    class_mix = F.softmax(mean_logits, 1).mean(0)
    neg_entropy = (class_mix * torch.log(class_mix + 1e-8)).sum()  # minimising spreads samples over classes
    disagreement = F.l1_loss(F.softmax(student_logits.float(), 1), F.softmax(mean_logits, 1))
    return s.bn_weight * bn + s.oh_weight * one_hot + s.entropy_weight * neg_entropy - s.adversarial_weight * disagreement


def synthesize_and_distill(teachers: Sequence[nn.Module], student: nn.Module, shape: tuple[int, int, int],
                           mean: Sequence[float], std: Sequence[float], s: DataFreeSettings, seed: int = 0,
                           temperature_weights: Sequence[float] | None = None,
                           on_step: Callable[[int], None] | None = None,
                           device: torch.device | str = "cpu") -> DataFreeResult:
    """Train a generator against the (frozen) teachers and the student on its samples, alternately, on `device`
    (teachers and student are moved there).

    `on_step(step)` runs after each step (e.g. to evaluate the student while it learns)."""
    device = torch.device(device)
    torch.manual_seed(seed)
    generator = Generator(s.latent_dim, shape, mean, std, width=s.generator_width).to(device)
    student.to(device)
    for t in teachers:
        t.to(device).eval().requires_grad_(False)
    hooks = [BatchNormStatistics(t) for t in teachers]
    g_opt = torch.optim.Adam(generator.parameters(), lr=s.generator_lr, betas=(0.5, 0.999))
    s_opt = torch.optim.SGD(student.parameters(), lr=s.student_lr, momentum=0.9, weight_decay=5e-4)
    s_sched = torch.optim.lr_scheduler.CosineAnnealingLR(s_opt, T_max=max(1, s.steps))
    bank = ReplayBank(max(s.replay, s.batch_size)) if s.replay else None
    dtype = autocast_dtype(s.amp, device)
    started, bn_trace, step = time.perf_counter(), [], 0
    bar = progress(total=s.steps, desc="data-free", unit="step")
    try:
        while step < s.steps and (s.seconds is None or time.perf_counter() - started < s.seconds):
            x, soft, bn = _generator_step(teachers, hooks, student, generator, g_opt, s, temperature_weights, dtype)
            bn_trace.append(bn)
            if bank is not None:
                bank.add(x, soft)
            _student_steps(teachers, hooks, student, generator, s_opt, s, temperature_weights, bank, dtype)
            s_sched.step()
            step += 1
            bar.update()
            if on_step:
                on_step(step)
            if step % 20 == 0:
                bar.set_postfix(bn=f"{bn_trace[-1]:.3f}", refresh=False)
    finally:
        bar.close()
        for h in hooks:
            h.close()
    student.eval()
    return DataFreeResult(step, time.perf_counter() - started, bn_trace, sample(generator, s.keep_samples, s.latent_dim))


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _generator_step(teachers, hooks, student, generator, optimizer, s: DataFreeSettings, weights, dtype):
    """One generator update; returns its batch (detached), the teachers' soft targets on it and the BN loss."""
    generator.train()
    student.eval()
    device = _device_of(generator)
    with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
        x = generator(torch.randn(s.batch_size, s.latent_dim, device=device))
        teacher_logits = [t(x) for t in teachers]
        bn = torch.stack([h.pop() for h in hooks]).mean()
        total = generator_losses(teacher_logits, bn, student(x), s)
    optimizer.zero_grad(set_to_none=True)
    total.backward()
    optimizer.step()
    with torch.no_grad():
        soft = ensemble_soft_targets([z.detach() for z in teacher_logits], s.temperature, weights)
    return x.detach().float(), soft, float(bn.detach())


def _student_steps(teachers, hooks, student, generator, optimizer, s: DataFreeSettings, weights, bank, dtype) -> None:
    student.train()
    generator.eval()
    device = _device_of(generator)
    for _ in range(s.student_steps):
        if bank is not None:
            x, soft = bank.batch(s.batch_size)
        else:
            with torch.no_grad(), torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                x = generator(torch.randn(s.batch_size, s.latent_dim, device=device))
                soft = ensemble_soft_targets([t(x) for t in teachers], s.temperature, weights)
                for h in hooks:
                    h.pop()  # the student step does not train the generator: drop the BN terms
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = kd_loss(student(x), soft, None, s.temperature, 1.0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


@torch.no_grad()
def sample(generator: Generator, count: int, latent_dim: int) -> np.ndarray:
    generator.eval()
    device = _device_of(generator)
    return torch.cat([generator(torch.randn(min(256, count - i), latent_dim, device=device)).float().cpu()
                      for i in range(0, count, 256)]).numpy()
