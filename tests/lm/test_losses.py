from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from edgekd.lm.losses import TopKTargets, continuation_cross_entropy, distill_loss, forward_kl, lm_cross_entropy, reverse_kl  # noqa: E402

B, T, V = 2, 5, 50


def _targets(teacher, k, temperature, with_lse=True):
    values, indices = teacher.topk(k, dim=-1)
    lse = torch.logsumexp(teacher / temperature, dim=-1) if with_lse else None
    return TopKTargets(values, indices, lse)


@pytest.fixture
def logits():
    generator = torch.Generator().manual_seed(0)
    return torch.randn(B, T, V, generator=generator) * 3, torch.randn(B, T, V, generator=generator) * 3


def _full_kl(p_logits, q_logits, temperature):
    """KL(softmax(p/T) || softmax(q/T)) per token, averaged: the full-vocabulary reference."""
    log_p, log_q = F.log_softmax(p_logits / temperature, -1), F.log_softmax(q_logits / temperature, -1)
    return (log_p.exp() * (log_p - log_q)).sum(-1).mean()


@pytest.mark.parametrize("tail", [True, False])
def test_with_the_whole_vocabulary_both_kls_are_exact(logits, tail):
    teacher, student = logits
    targets = _targets(teacher, V, 2.0)
    assert torch.allclose(forward_kl(student, targets, 2.0, tail), 4.0 * _full_kl(teacher, student, 2.0), atol=1e-4)
    assert torch.allclose(reverse_kl(student, targets, 2.0, tail), 4.0 * _full_kl(student, teacher, 2.0), atol=1e-4)


def test_top_k_with_tail_is_a_lower_bound_of_the_full_kl(logits):
    teacher, student = logits
    full = _full_kl(teacher, student, 1.5) * 1.5 ** 2
    for k in (1, 5, 20):
        value = forward_kl(student, _targets(teacher, k, 1.5), 1.5, tail=True)
        assert 0 <= value <= full + 1e-5
    assert forward_kl(student, _targets(teacher, 20, 1.5), 1.5) > forward_kl(student, _targets(teacher, 5, 1.5), 1.5)


def test_a_student_equal_to_the_teacher_costs_nothing_with_the_tail(logits):
    teacher, _ = logits
    targets = _targets(teacher, 8, 2.0)
    assert forward_kl(teacher, targets, 2.0) < 1e-5 and reverse_kl(teacher, targets, 2.0) < 1e-5
    assert reverse_kl(teacher, targets, 2.0, tail=False) < 1e-5  # both renormalised over the top k
    # renormalised forward KL still charges the teacher's own tail: T^2 * -log(its top-k mass), the bias the tail removes
    top_mass = F.softmax(teacher / 2.0, -1).topk(8, dim=-1).values.sum(-1)
    assert torch.allclose(forward_kl(teacher, targets, 2.0, tail=False), 4.0 * -top_mass.log().mean(), atol=1e-5)


def test_renormalised_top_k_matches_kl_against_scattered_targets(logits):
    """Without the tail the teacher is its top k softmaxed among themselves, the student its full log-probs."""
    teacher, student = logits
    targets = _targets(teacher, 6, 2.0, with_lse=False)
    dense = torch.zeros(B, T, V).scatter(-1, targets.indices, F.softmax(targets.values / 2.0, -1))
    expected = F.kl_div(F.log_softmax(student / 2.0, -1).reshape(-1, V), dense.reshape(-1, V), reduction="batchmean") * 4.0
    assert torch.allclose(forward_kl(student, targets, 2.0, tail=False), expected, atol=1e-5)
    with pytest.raises(ValueError, match="log-sum-exp"):
        forward_kl(student, targets, 2.0, tail=True)


def test_gradients_flow_and_are_finite(logits):
    teacher, student = logits
    student = student.clone().requires_grad_(True)
    targets = _targets(teacher, 4, 1.0)
    targets = TopKTargets(targets.values.half(), targets.indices, targets.logsumexp)  # as read from the float16 cache
    for loss in (forward_kl(student, targets, 1.0), reverse_kl(student, targets, 1.0), reverse_kl(student, targets, 1.0, tail=False)):
        (grad,) = torch.autograd.grad(loss, student)
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_cross_entropy_is_next_token_prediction(logits):
    _, student = logits
    ids = torch.randint(0, V, (B, T))
    expected = F.cross_entropy(student[:, :-1].reshape(-1, V), ids[:, 1:].reshape(-1))
    assert torch.allclose(lm_cross_entropy(student, ids), expected)


def test_distill_loss_mixes_kd_and_cross_entropy(logits):
    teacher, student = logits
    ids = torch.randint(0, V, (B, T))
    targets = _targets(teacher, 8, 2.0)
    total, parts = distill_loss(student, ids, targets, 2.0, alpha=0.7, direction="reverse")
    assert torch.isclose(total, torch.tensor(0.7 * parts["kd"] + 0.3 * parts["ce"]), atol=1e-5)
    assert parts["kd"] == pytest.approx(float(reverse_kl(student, targets, 2.0)), rel=1e-6)
    only_kd, parts = distill_loss(student, ids, targets, 2.0, alpha=1.0)
    assert "ce" not in parts and torch.isclose(only_kd, forward_kl(student, targets, 2.0))
    with pytest.raises(ValueError, match="direction"):
        distill_loss(student, ids, targets, 2.0, 0.5, direction="sideways")


def test_continuation_cross_entropy_scores_only_the_teachers_tokens(logits):
    student, _ = logits
    ids = torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(1))
    prompt = 2
    # positions 1..3 predict tokens 2..4, the continuation; position 0 predicts a prompt token and is not scored
    expected = F.cross_entropy(student[:, prompt - 1:-1].reshape(-1, V), ids[:, prompt:].reshape(-1))
    assert torch.allclose(continuation_cross_entropy(student, ids, prompt), expected)
    changed = ids.clone()
    changed[:, 1] = (ids[:, 1] + 1) % V  # a different prompt token is context, not a target
    assert torch.allclose(continuation_cross_entropy(student, changed, prompt), expected)
    assert torch.allclose(continuation_cross_entropy(student, ids, 1), lm_cross_entropy(student, ids))  # all but the first
    with pytest.raises(ValueError, match="leaves no continuation"):
        continuation_cross_entropy(student, ids, T)
