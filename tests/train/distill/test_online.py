from __future__ import annotations

import math

import torch

from edgekd.train.distill.online import PeerGroup, mutual_loss_fn, mutual_losses


def _softmax(z):
    e = [math.exp(v) for v in z]
    return [v / sum(e) for v in e]


def test_mutual_loss_matches_hand_computation():
    a, b = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 2.0]])
    label = torch.tensor([0])
    pa, pb = _softmax([1.0, 0.0]), _softmax([0.0, 2.0])
    kl = lambda p, q: sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))  # noqa: E731
    expected_a = -math.log(pa[0]) + kl(pb, pa)
    expected_b = -math.log(pb[0]) + kl(pa, pb)
    got_a, got_b = mutual_losses([a, b], label, temperature=1.0)
    assert abs(float(got_a) - expected_a) < 1e-5
    assert abs(float(got_b) - expected_b) < 1e-5


def test_each_peer_only_gets_its_own_gradient():
    torch.manual_seed(0)
    group = PeerGroup([torch.nn.Linear(4, 3), torch.nn.Linear(4, 3)])
    x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
    mutual_loss_fn(2.0)(group(x), None, y).backward()
    alone = torch.nn.Linear(4, 3)
    alone.load_state_dict(group.peers[0].state_dict())
    other = group.peers[1](x).detach()
    mutual_losses([alone(x), other], y, 2.0)[0].backward()
    assert torch.allclose(alone.weight.grad, group.peers[0].weight.grad, atol=1e-6)
