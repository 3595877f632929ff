import math

import pytest
import torch

from edgekd.train.distill.losses import dkd_loss, dkd_terms, ensemble_soft_targets, hint_loss, kd_loss, match_spatial, standardize


def _softmax(values):
    exps = [math.exp(v) for v in values]
    return [e / sum(exps) for e in exps]


def test_kd_loss_matches_hand_computation():
    student, teacher, T, alpha = [1.0, 0.0], [0.0, 1.0], 2.0, 0.25
    p = _softmax([v / T for v in teacher])          # teacher soft targets
    q = _softmax([v / T for v in student])          # student at temperature T
    kl = sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))
    ce = -math.log(_softmax(student)[1])            # label 1
    expected = alpha * T**2 * kl + (1 - alpha) * ce
    got = kd_loss(torch.tensor([student]), torch.tensor([p]), torch.tensor([1]), T, alpha)
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_kd_loss_without_labels_is_the_soft_term_alone():
    student, p, T = torch.tensor([[2.0, 0.0, -1.0]]), torch.tensor([[0.2, 0.5, 0.3]]), 3.0
    q = _softmax([2.0 / T, 0.0, -1.0 / T])
    expected = T**2 * sum(pi * math.log(pi / qi) for pi, qi in zip([0.2, 0.5, 0.3], q))
    assert kd_loss(student, p, None, T, 0.5).item() == pytest.approx(expected, rel=1e-5)


def test_ensemble_prob_mean_and_logit_mean_by_hand():
    a, b, T = [2.0, 0.0], [0.0, 0.0], 2.0
    pa, pb = _softmax([1.0, 0.0]), _softmax([0.0, 0.0])
    weights = [3.0, 1.0]
    prob_mean = [(3 * x + 1 * y) / 4 for x, y in zip(pa, pb)]
    logit_mean = _softmax([(3 * 2.0 + 0.0) / 4 / T, 0.0])
    logits = [torch.tensor([a]), torch.tensor([b])]
    got_prob = ensemble_soft_targets(logits, T, weights, "prob_mean")[0].tolist()
    got_logit = ensemble_soft_targets(logits, T, weights, "logit_mean")[0].tolist()
    assert got_prob == pytest.approx(prob_mean, rel=1e-6)
    assert got_logit == pytest.approx(logit_mean, rel=1e-6)


def test_ensemble_defaults_to_equal_weights():
    logits = [torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])]
    assert ensemble_soft_targets(logits, 1.0)[0].tolist() == pytest.approx([0.5, 0.5])


def test_hint_loss_is_mse_after_pooling_to_the_smaller_map():
    student = torch.tensor([[[[1.0, 3.0], [5.0, 7.0]]]])   # (1, 1, 2, 2): mean 4
    teacher = torch.tensor([[[[2.0]]]])                     # (1, 1, 1, 1)
    assert hint_loss(student, teacher).item() == pytest.approx((4.0 - 2.0) ** 2)
    same = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    other = torch.tensor([[[[0.0, 2.0], [3.0, 6.0]]]])
    assert hint_loss(same, other).item() == pytest.approx((1 + 0 + 0 + 4) / 4)


def test_hint_loss_sends_no_gradient_to_the_teacher():
    student = torch.ones(2, 3, requires_grad=True)
    teacher = torch.zeros(2, 3, requires_grad=True)
    hint_loss(student, teacher).backward()
    assert student.grad is not None and teacher.grad is None


def test_match_spatial_pools_the_larger_side():
    s, t = match_spatial(torch.zeros(1, 4, 8, 8), torch.zeros(1, 6, 4, 4))
    assert s.shape[-2:] == t.shape[-2:] == (4, 4)


def _composed_kd(logits, soft, labels, T, alpha):
    """The textbook composition the fused loss must equal, value and gradient."""
    kl = torch.nn.functional.kl_div(torch.log_softmax(logits / T, -1), soft, reduction="batchmean") * T**2
    if labels is None:
        return kl
    return alpha * kl + (1 - alpha) * torch.nn.functional.cross_entropy(logits, labels)


@pytest.mark.parametrize("with_labels,alpha", [(True, 0.7), (True, 0.0), (True, 1.0), (False, 0.4)])
def test_fused_kd_loss_value_and_gradient_match_autograd(with_labels, alpha):
    torch.manual_seed(0)
    logits = torch.randn(16, 10) * 3
    soft = torch.softmax(torch.randn(16, 10), -1)
    soft[0] = torch.nn.functional.one_hot(torch.tensor(3), 10).float()  # zeros in the targets: 0 log 0 = 0
    labels = torch.randint(0, 10, (16,)) if with_labels else None
    fused_in, ref_in = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    fused = kd_loss(fused_in, soft, labels, 4.0, alpha)
    reference = _composed_kd(ref_in, soft, labels, 4.0, alpha)
    (fused * 2.5).backward()
    (reference * 2.5).backward()
    assert fused.item() == pytest.approx(reference.item(), rel=1e-5, abs=1e-6)
    assert torch.allclose(fused_in.grad, ref_in.grad, rtol=1e-4, atol=1e-6)


def test_standardize_gives_each_row_mean_zero_and_unit_spread():
    z = standardize(torch.tensor([[1.0, 2.0, 3.0, 10.0], [-5.0, 0.0, 5.0, 0.0]]))
    assert torch.allclose(z.mean(-1), torch.zeros(2), atol=1e-6)
    assert torch.allclose(z.std(-1), torch.ones(2), atol=1e-5)


def test_standardized_kd_ignores_the_logit_scale_of_student_and_teachers():
    """Logit standardization's point: a student whose logits are the teachers' up to scale and shift is already
    matched, whatever its magnitude; plain KD still pulls it towards the teachers' scale."""
    torch.manual_seed(0)
    teacher = torch.randn(8, 10) * 6
    soft = ensemble_soft_targets([teacher, teacher * 0.5 + 1], 2.0, standardized=True)  # scaled teachers agree
    assert torch.allclose(soft, ensemble_soft_targets([teacher], 2.0, standardized=True), atol=1e-6)
    small_student = teacher * 0.1 - 3
    assert kd_loss(small_student, soft, None, 2.0, 1.0, standardized=True).item() == pytest.approx(0.0, abs=1e-5)
    assert kd_loss(small_student, ensemble_soft_targets([teacher], 2.0), None, 2.0, 1.0).item() > 0.1


def test_standardized_kd_gradient_matches_autograd_and_labels_see_raw_logits():
    torch.manual_seed(1)
    logits = (torch.randn(16, 10) * 3).requires_grad_()
    soft = ensemble_soft_targets([torch.randn(16, 10) * 4], 2.0, standardized=True)
    labels = torch.randint(0, 10, (16,))
    loss = kd_loss(logits, soft, labels, 2.0, 0.7, standardized=True)
    ref_in = logits.detach().clone().requires_grad_()
    reference = 0.7 * _composed_kd(standardize(ref_in), soft, None, 2.0, 1.0) + 0.3 * torch.nn.functional.cross_entropy(ref_in, labels)
    loss.backward()
    reference.backward()
    assert loss.item() == pytest.approx(reference.item(), rel=1e-5)
    assert torch.allclose(logits.grad, ref_in.grad, rtol=1e-4, atol=1e-6)


def test_dkd_terms_add_up_to_plain_kd_with_the_confidence_weight():
    """Zhao et al.'s identity: KL(p || q) = TCKD + (1 - p_label) * NCKD, image by image."""
    torch.manual_seed(2)
    logits, labels = torch.randn(32, 10) * 3, torch.randint(0, 10, (32,))
    soft = ensemble_soft_targets([torch.randn(32, 10) * 4, torch.randn(32, 10) * 2], 4.0)
    tckd, nckd = dkd_terms(logits, soft, labels, 4.0)
    log_q = torch.log_softmax(logits / 4.0, dim=-1)
    kl = (torch.xlogy(soft, soft) - soft * log_q).sum(-1)
    p_label = soft.gather(1, labels[:, None]).squeeze(1)
    assert torch.allclose(tckd + (1 - p_label) * nckd, kl, atol=1e-5)
    assert (tckd >= -1e-6).all() and (nckd >= -1e-6).all()


def test_dkd_loss_by_hand_on_three_classes():
    student, p, T = [1.0, 0.5, -1.0], [0.7, 0.2, 0.1], 2.0  # label 0
    q = _softmax([v / T for v in student])
    tckd = 0.7 * math.log(0.7 / q[0]) + 0.3 * math.log(0.3 / (1 - q[0]))
    p_other, q_other = [0.2 / 0.3, 0.1 / 0.3], [q[1] / (1 - q[0]), q[2] / (1 - q[0])]
    nckd = sum(a * math.log(a / b) for a, b in zip(p_other, q_other))
    expected = -math.log(_softmax(student)[0]) + T**2 * (1.0 * tckd + 3.0 * nckd)
    got = dkd_loss(torch.tensor([student]), torch.tensor([p]), torch.tensor([0]), T, 1.0, 3.0)
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_dkd_stays_finite_when_the_teachers_are_certain_of_the_label():
    logits = torch.randn(4, 10, requires_grad=True)
    soft = torch.nn.functional.one_hot(torch.tensor([1, 2, 3, 4]), 10).float()  # p_label 1: nothing left to rank
    loss = dkd_loss(logits, soft, torch.tensor([1, 2, 3, 4]), 4.0, 1.0, 8.0)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
