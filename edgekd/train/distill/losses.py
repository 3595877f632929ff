"""Distillation losses (Hinton et al. 2015; decoupled, Zhao et al. 2022) and ensemble soft targets."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import torch
import torch.nn.functional as F


def standardize(logits: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Each row z-scored over the classes (Sun et al. 2024, "Logit Standardization in Knowledge Distillation")."""
    logits = logits.float()
    return (logits - logits.mean(-1, keepdim=True)) / (logits.std(-1, keepdim=True) + eps)


def ensemble_soft_targets(teacher_logits: Sequence[torch.Tensor], temperature: float,
                          weights: Optional[Sequence[float]] = None, mode: str = "prob_mean",
                          standardized: bool = False) -> torch.Tensor:
    """Temperature-softened ensemble distribution.

    prob_mean: weighted mean of softmax(z_i / T); logit_mean: softmax(weighted mean of z_i / T). standardized:
    each teacher's z_i z-scored per image first (distill.logit_standardize).
    """
    stacked = torch.stack([standardize(z) if standardized else z.float() for z in teacher_logits])
    w = torch.tensor(weights if weights is not None else [1.0] * len(teacher_logits), dtype=stacked.dtype, device=stacked.device)
    w = (w / w.sum()).view(-1, *([1] * (stacked.dim() - 1)))
    if mode == "logit_mean":
        return F.softmax((stacked * w).sum(0) / temperature, dim=-1)
    if mode == "prob_mean":
        return (F.softmax(stacked / temperature, dim=-1) * w).sum(0)
    raise ValueError(f"unknown ensemble mode {mode!r}")


def kd_loss(student_logits: torch.Tensor, soft_targets: torch.Tensor, labels: Optional[torch.Tensor],
            temperature: float, alpha: float, standardized: bool = False) -> torch.Tensor:
    """alpha * T^2 * KL(soft_targets || softmax(s/T)) + (1 - alpha) * CE(s, labels).

    The T^2 factor keeps the soft-target gradients' scale independent of T (Hinton et al.).
    Without labels (unlabeled transfer data) only the soft term is used. standardized: the soft term sees the
    student's logits z-scored per image (soft_targets then come from standardized teachers); labels see them raw.
    """
    alpha = 1.0 if labels is None else min(alpha, 1.0)
    if not standardized:
        return _FusedKD.apply(student_logits.float(), soft_targets.float(), labels, float(temperature), float(alpha))
    soft = _FusedKD.apply(standardize(student_logits), soft_targets.float(), None, float(temperature), 1.0)
    return alpha * soft + (1.0 - alpha) * F.cross_entropy(student_logits.float(), labels) if alpha < 1.0 else soft


def dkd_terms(student_logits: torch.Tensor, soft_targets: torch.Tensor, labels: torch.Tensor,
              temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image TCKD and NCKD of Decoupled KD (Zhao et al. 2022): TCKD is the KL divergence between the teachers'
    and the student's binary split (labelled class, all the others); NCKD between their distributions over the
    other classes alone. Plain KD's KL is TCKD + (1 - p_label) * NCKD: the more confident the teachers, the less
    their ranking of the wrong classes counts, which is what DKD's separate weights undo.

    From the soft targets' probabilities, not from teacher logits as in the paper: an ensemble's prob_mean targets
    are a mixture of softmaxes with no logits of their own, and the split needs only probabilities."""
    log_q = F.log_softmax(student_logits.float() / temperature, dim=-1)
    target = F.one_hot(labels, log_q.shape[1]).bool()
    p = soft_targets.float()
    p_label, log_q_label = p[target], log_q[target]
    p_rest = (1.0 - p_label).clamp_min(1e-12)  # a teacher certain of the label leaves nothing to rank among the rest
    log_q_rest = torch.logsumexp(log_q.masked_fill(target, float("-inf")), dim=-1)
    tckd = torch.xlogy(p_label, p_label) - p_label * log_q_label + torch.xlogy(p_rest, p_rest) - p_rest * log_q_rest
    p_other = p.masked_fill(target, 0.0) / p_rest[:, None]
    log_q_other = (log_q - log_q_rest[:, None]).masked_fill(target, 0.0)  # log-softmax over the other classes
    nckd = (torch.xlogy(p_other, p_other) - p_other * log_q_other).sum(-1)
    return tckd, nckd


def dkd_loss(student_logits: torch.Tensor, soft_targets: torch.Tensor, labels: torch.Tensor, temperature: float,
             target_weight: float, nontarget_weight: float) -> torch.Tensor:
    """CE(s, labels) + T^2 * (target_weight * TCKD + nontarget_weight * NCKD), batch means (distill.dkd)."""
    tckd, nckd = dkd_terms(student_logits, soft_targets, labels, temperature)
    soft = target_weight * tckd.mean() + nontarget_weight * nckd.mean()
    return F.cross_entropy(student_logits.float(), labels) + temperature ** 2 * soft


class _FusedKD(torch.autograd.Function):
    """kd_loss as one autograd node with its closed-form gradient,
    d/ds = [alpha * T * (softmax(s/T) - p) + (1 - alpha) * (softmax(s) - onehot(y))] / N.

    Hand-written for speed: composed from F.kl_div, F.log_softmax and F.cross_entropy, the loss records about
    ten autograd nodes, and on a small student (a 13k-weight MLP, batch 128) their per-op overhead made a KD
    step cost 1.3-1.6x a plain cross-entropy step. tests/train/distill/test_losses.py checks it against autograd.
    """

    @staticmethod
    def forward(ctx, logits: torch.Tensor, soft: torch.Tensor, labels: Optional[torch.Tensor], temperature: float, alpha: float):
        n = logits.shape[0]
        # Fewer tensor ops is the point of this function: one log_softmax call serves both temperatures (on
        # (N, 10) logits a call costs ~20 us, mostly fixed overhead). The value stays a tensor: reading it as a
        # Python float would make a GPU wait for every step's loss before queueing the next step's kernels.
        if alpha < 1.0:
            log_q_t, log_q = F.log_softmax(torch.cat([logits / temperature, logits]), dim=-1).split(n)
        else:
            log_q_t, log_q = F.log_softmax(logits / temperature, dim=-1), None
        # KL(p || q) = sum p log p - sum p log q, with 0 log 0 = 0 (xlogy)
        kl = torch.xlogy(soft, soft).sum() - torch.dot(soft.reshape(-1), log_q_t.reshape(-1))
        value = kl * (alpha * temperature ** 2 / n)
        if log_q is not None:
            value = value - log_q.gather(1, labels.view(-1, 1)).sum() * ((1.0 - alpha) / n)
        ctx.save_for_backward(log_q_t, soft, labels if alpha < 1.0 else None, log_q)
        ctx.temperature, ctx.alpha = temperature, alpha
        return value

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        log_q_t, soft, labels, log_q = ctx.saved_tensors
        scale = grad_output / log_q_t.shape[0]  # a tensor, not a float: no wait for the GPU (see forward)
        grad = log_q_t.exp().sub_(soft).mul_(ctx.alpha * ctx.temperature)
        if log_q is not None:
            hard = log_q.exp().sub_(F.one_hot(labels, log_q.shape[1]).to(log_q.dtype))
            grad.add_(hard, alpha=1.0 - ctx.alpha)
        return grad.mul_(scale), None, None, None, None


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
