from __future__ import annotations

import math

import torch

from edgekd.train.distill.losses import ensemble_soft_targets, kd_loss


def test_kd_loss_matches_hand_computation():
    student = torch.tensor([[2.0, 0.0]])
    teacher = torch.tensor([[0.0, 2.0]])
    T, alpha = 2.0, 0.25
    p = [math.exp(0) / (math.exp(0) + math.exp(1)), math.exp(1) / (math.exp(0) + math.exp(1))]
    q = [math.exp(1) / (math.exp(1) + math.exp(0)), math.exp(0) / (math.exp(1) + math.exp(0))]
    kl = sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))
    ce = -math.log(math.exp(2) / (math.exp(2) + 1))
    expected = alpha * kl * T**2 + (1 - alpha) * ce
    soft = ensemble_soft_targets([teacher], T)
    got = kd_loss(student, soft, torch.tensor([0]), T, alpha)
    assert abs(float(got) - expected) < 1e-5


def test_ensemble_weighted_probability_mean():
    a, b = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    soft = ensemble_soft_targets([a, b], 1.0, weights=[3.0, 1.0])
    pa, pb = torch.softmax(a, -1), torch.softmax(b, -1)
    assert torch.allclose(soft, 0.75 * pa + 0.25 * pb)
    logit_mean = ensemble_soft_targets([a, b], 1.0, mode="logit_mean")
    assert torch.allclose(logit_mean, torch.softmax((a + b) / 2, -1))
