"""The DistilBERT objective on tiny tensors: soft KD + CE (edgekd's kd_loss) and masked hidden-state cosine."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from edgekd.text import losses


def _hidden(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(sum(shape)))


def test_everything_is_zero_when_the_student_is_the_teacher():
    logits, hidden = torch.randn(4, 5), _hidden(4, 6, 8)
    mask = torch.ones(4, 6, dtype=torch.long)
    out = losses.distilbert_loss(logits.clone().requires_grad_(), logits, None, [hidden], [hidden], mask, [(0, 0)], temperature=3.0)
    assert abs(out["kd"].item()) < 1e-5 and abs(out["cosine"].item()) < 1e-6 and abs(out["total"].item()) < 1e-5


def test_soft_kd_is_t_squared_kl_plus_weighted_ce():
    student, teacher, labels, t, alpha = torch.randn(6, 4), torch.randn(6, 4), torch.tensor([0, 1, 2, 3, 0, 1]), 2.0, 0.7
    expected = (alpha * t * t * F.kl_div(F.log_softmax(student / t, -1), F.softmax(teacher / t, -1), reduction="batchmean")
                + (1 - alpha) * F.cross_entropy(student, labels))
    assert losses.soft_kd(student, teacher, labels, t, alpha).item() == pytest.approx(expected.item(), rel=1e-5)


def test_cosine_ignores_padding_and_grows_with_disagreement():
    teacher = _hidden(2, 5, 8)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    student = teacher.clone()
    student[0, 3:] = -99.0  # padded positions: whatever is there does not count
    assert losses.hidden_cosine(student, teacher, mask).item() == pytest.approx(0.0, abs=1e-6)
    student[1, 0] = -teacher[1, 0]  # one real token pointing the opposite way: (1 - (-1)) / 8 real tokens
    assert losses.hidden_cosine(student, teacher, mask).item() == pytest.approx(2.0 / 8, abs=1e-5)


def test_projection_of_a_narrow_student_is_trained_by_the_cosine_loss():
    projection = torch.nn.Linear(4, 8)
    student, teacher, mask = _hidden(2, 3, 4).requires_grad_(), _hidden(2, 3, 8), torch.ones(2, 3, dtype=torch.long)
    loss = losses.hidden_cosine(student, teacher, mask, projection)
    loss.backward()
    assert loss.item() > 0 and projection.weight.grad.abs().sum() > 0 and student.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="give a projection"):
        losses.hidden_cosine(student, teacher, mask)


def test_no_gradient_reaches_the_teacher():
    teacher_logits, teacher_hidden = torch.randn(2, 3, requires_grad=True), _hidden(2, 4, 8).requires_grad_()
    student_logits, student_hidden = torch.randn(2, 3, requires_grad=True), _hidden(2, 4, 9)[..., :8].requires_grad_()
    out = losses.distilbert_loss(student_logits, teacher_logits, torch.tensor([0, 2]), [student_hidden], [teacher_hidden],
                                 torch.ones(2, 4, dtype=torch.long), [(0, 0)], cosine_weight=2.0)
    out["total"].backward()
    assert teacher_logits.grad is None and teacher_hidden.grad is None
    assert out["total"].item() == pytest.approx(out["kd"].item() + 2.0 * out["cosine"].item(), rel=1e-6)
