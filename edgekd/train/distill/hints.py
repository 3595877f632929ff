"""Feature (hint) distillation plumbing: forward hooks that capture named layers, and the learned adapters.

torchdistill's idea (hooks on named modules, declared in the config) with a typed config: see HintConfig.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import torch
from torch import nn

from edgekd.core.errors import ConfigError
from edgekd.train.config import HintConfig


class FeatureTap:
    """Keeps the latest output of one named module, via a forward hook."""

    def __init__(self, model: nn.Module, name: str, where: str):
        try:
            module = model.get_submodule(name)
        except AttributeError:
            names = [n for n, _ in model.named_modules() if n][:12]
            raise ConfigError(f"{where} '{name}': the model has no such module; some of its names: {', '.join(names)}") from None
        self.value: Optional[torch.Tensor] = None
        self._handle = module.register_forward_hook(self._keep)

    def _keep(self, _module, _inputs, output) -> None:
        self.value = output

    def take(self) -> torch.Tensor:
        value, self.value = self.value, None
        if value is None:
            raise RuntimeError("hooked layer did not run in the last forward pass")
        return value

    def remove(self) -> None:
        self._handle.remove()


def make_adapter(student_channels: int, teacher_channels: int, spatial: bool) -> nn.Module:
    """1x1 convolution (or linear map for flat features) from the student's channels to the teacher's."""
    if spatial:
        return nn.Conv2d(student_channels, teacher_channels, kernel_size=1, bias=False)
    return nn.Linear(student_channels, teacher_channels, bias=False)


class StudentWithHints(nn.Module):
    """The student plus its hint adapters, trained as one module: forward returns the student's logits and
    leaves each adapted student feature in `adapted` for the loss. Adapters run inside forward so DDP
    sees them as part of the model."""

    def __init__(self, student: nn.Module, hints: Sequence[HintConfig], teachers: Sequence[nn.Module], sample: torch.Tensor):
        super().__init__()
        self.student = student
        self.taps = [FeatureTap(student, h.student, f"distill.hints[{i}].student") for i, h in enumerate(hints)]
        teacher_taps = [FeatureTap(teachers[h.teacher_index], h.teacher, f"distill.hints[{i}].teacher")
                        for i, h in enumerate(hints)]
        shapes = _probe(student, teachers, hints, sample, self.taps, teacher_taps)
        for tap in teacher_taps:
            tap.remove()
        # Created after the student was placed: the adapters follow its device and dtype (autocast then casts
        # their inputs and weights alike on every device).
        where = next(student.parameters())
        self.adapters = nn.ModuleList(make_adapter(s[1], t[1], len(s) == 4 and len(t) == 4) for s, t in shapes).to(
            device=where.device, dtype=where.dtype)
        self.adapted: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.student(x)
        self.adapted = [adapter(tap.take()) for adapter, tap in zip(self.adapters, self.taps)]
        return logits

    def remove_hooks(self) -> None:
        for tap in self.taps:
            tap.remove()


@torch.no_grad()
def _probe(student, teachers, hints, sample, student_taps, teacher_taps) -> list[tuple[tuple, tuple]]:
    """One forward pass on a sample batch to learn each hooked feature's shape (the adapters' sizes)."""
    was_training = student.training
    student.eval()
    student(sample)
    student.train(was_training)
    shapes = []
    for index, (hint, s_tap, t_tap) in enumerate(zip(hints, student_taps, teacher_taps)):
        teachers[hint.teacher_index](sample)
        s_shape, t_shape = tuple(s_tap.take().shape), tuple(t_tap.take().shape)
        if len(s_shape) != len(t_shape) or len(s_shape) not in (2, 4):
            raise ConfigError(f"distill.hints[{index}]: student feature {s_shape} and teacher feature {t_shape} "
                              "must both be (N, C, H, W) or both (N, C); pick layers of the same kind")
        shapes.append((s_shape, t_shape))
    return shapes


class TeacherFeatures:
    """Live teacher features for the hints: the hinted teachers run on each training batch (features are
    far too large to cache, unlike logits)."""

    def __init__(self, teachers: Sequence[nn.Module], hints: Sequence[HintConfig]):
        self.hints = hints
        self.taps = [FeatureTap(teachers[h.teacher_index], h.teacher, f"distill.hints[{i}].teacher") for i, h in enumerate(hints)]
        self.teachers = teachers

    @torch.no_grad()
    def __call__(self, batch: torch.Tensor) -> tuple[list[torch.Tensor], dict[int, torch.Tensor]]:
        """Features for every hint, and the logits of each teacher that ran (reusable as soft targets)."""
        logits = {i: self.teachers[i](batch) for i in sorted({h.teacher_index for h in self.hints})}
        return [tap.take() for tap in self.taps], logits
