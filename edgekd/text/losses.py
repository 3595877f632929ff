"""The DistilBERT objective for classifiers: soft-target KD with temperature plus cross-entropy (edgekd's own
kd_loss, reused as is), plus the cosine alignment of student and teacher hidden states over real tokens."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from edgekd.train.distill.losses import ensemble_soft_targets, kd_loss


def soft_kd(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: Optional[torch.Tensor],
            temperature: float, alpha: float) -> torch.Tensor:
    """alpha * T^2 * KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) * CE(s, labels)."""
    soft = ensemble_soft_targets([teacher_logits.detach()], temperature)
    return kd_loss(student_logits, soft, labels, temperature, alpha)


def hidden_cosine(student_hidden: torch.Tensor, teacher_hidden: torch.Tensor, attention_mask: torch.Tensor,
                  projection: Optional[nn.Module] = None) -> torch.Tensor:
    """Mean (1 - cos) between student and teacher vectors of each real token (attention_mask 1), padding left
    out as DistilBERT does; `projection` maps a narrower student to the teacher's width first."""
    student = projection(student_hidden) if projection is not None else student_hidden
    if student.shape != teacher_hidden.shape:
        raise ValueError(f"student hidden states {tuple(student.shape)} and teacher's {tuple(teacher_hidden.shape)} "
                         "differ: give a projection to the teacher's width")
    real = attention_mask.bool()
    student, teacher = student[real].float(), teacher_hidden.detach()[real].float()
    return F.cosine_embedding_loss(student, teacher, torch.ones(len(student), device=student.device))


def distilbert_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: Optional[torch.Tensor],
                    student_hidden: Sequence[torch.Tensor], teacher_hidden: Sequence[torch.Tensor],
                    attention_mask: torch.Tensor, pairs: Sequence[tuple[int, int]], temperature: float = 2.0,
                    alpha: float = 0.5, cosine_weight: float = 1.0,
                    projection: Optional[nn.Module] = None) -> dict[str, torch.Tensor]:
    """The pieces and their sum: `pairs` are (student, teacher) indices into the hidden_states tuples
    (edgekd.text.models.aligned_layers; DistilBERT uses only the last pair)."""
    kd = soft_kd(student_logits, teacher_logits, labels, temperature, alpha)
    cosine = torch.stack([hidden_cosine(student_hidden[s], teacher_hidden[t], attention_mask, projection)
                          for s, t in pairs]).mean() if pairs else student_logits.new_zeros(())
    return {"kd": kd, "cosine": cosine, "total": kd + cosine_weight * cosine}
