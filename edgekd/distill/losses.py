"""Distillation losses (Hinton et al. 2015) and ensemble soft targets."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import torch
import torch.nn.functional as F


def ensemble_soft_targets(teacher_logits: Sequence[torch.Tensor], temperature: float,
                          weights: Optional[Sequence[float]] = None, mode: str = "prob_mean") -> torch.Tensor:
    """Temperature-softened ensemble distribution.

    prob_mean: weighted mean of softmax(z_i / T); logit_mean: softmax(weighted mean of z_i / T).
    """
    stacked = torch.stack([z.float() for z in teacher_logits])
    w = torch.tensor(weights if weights is not None else [1.0] * len(teacher_logits), dtype=stacked.dtype)
    w = (w / w.sum()).view(-1, *([1] * (stacked.dim() - 1)))
    if mode == "logit_mean":
        return F.softmax((stacked * w).sum(0) / temperature, dim=-1)
    if mode == "prob_mean":
        return (F.softmax(stacked / temperature, dim=-1) * w).sum(0)
    raise ValueError(f"unknown ensemble mode {mode!r}")


def kd_loss(student_logits: torch.Tensor, soft_targets: torch.Tensor, labels: Optional[torch.Tensor],
            temperature: float, alpha: float) -> torch.Tensor:
    """alpha * T^2 * KL(soft_targets || softmax(s/T)) + (1 - alpha) * CE(s, labels).

    The T^2 factor keeps the soft-target gradients' scale independent of T (Hinton et al.).
    Without labels (unlabeled transfer data) only the soft term is used.
    """
    log_student = F.log_softmax(student_logits.float() / temperature, dim=-1)
    soft = F.kl_div(log_student, soft_targets.float(), reduction="batchmean") * temperature**2
    if labels is None or alpha >= 1.0:
        return soft
    hard = F.cross_entropy(student_logits.float(), labels)
    return alpha * soft + (1.0 - alpha) * hard


def match_spatial(student_feature: torch.Tensor, teacher_feature: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Average-pool the larger of two (N, C, H, W) maps down to the other's H x W, so stages of different
    resolution can be compared; (N, C) vectors pass through."""
    if student_feature.dim() != 4 or teacher_feature.dim() != 4:
        return student_feature, teacher_feature
    s_size, t_size = student_feature.shape[-2:], teacher_feature.shape[-2:]
    if s_size == t_size:
        return student_feature, teacher_feature
    if s_size[0] * s_size[1] > t_size[0] * t_size[1]:
        return F.adaptive_avg_pool2d(student_feature, t_size), teacher_feature
    return student_feature, F.adaptive_avg_pool2d(teacher_feature, s_size)


def hint_loss(adapted_student: torch.Tensor, teacher_feature: torch.Tensor) -> torch.Tensor:
    """FitNets-style hint: mean squared error between the adapted student feature and the teacher's
    (Romero et al. 2015), after matching spatial sizes. The teacher side carries no gradient."""
    student, teacher = match_spatial(adapted_student.float(), teacher_feature.detach().float())
    return F.mse_loss(student, teacher)
