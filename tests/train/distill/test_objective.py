"""Which soft loss the distillation objective applies per batch."""
import torch

from edgekd.train.config import DistillConfig
from edgekd.train.distill.losses import dkd_loss, ensemble_soft_targets, kd_loss
from edgekd.train.distill.objective import DistillObjective


def _batch():
    torch.manual_seed(0)
    logits, labels = torch.randn(16, 10), torch.randint(0, 10, (16,))
    return logits, ensemble_soft_targets([torch.randn(16, 10) * 3], 4.0), labels


def test_the_objective_applies_decoupled_kd_when_configured():
    logits, soft, labels = _batch()
    cfg = DistillConfig(temperature=4.0, alpha=0.9, dkd={"target_weight": 0.5, "nontarget_weight": 3.0})
    got = DistillObjective(cfg, torch.zeros(16, 1))._soft_loss(logits, soft, labels)
    assert torch.allclose(got, dkd_loss(logits, soft, labels, 4.0, 0.5, 3.0))
    assert not torch.allclose(got, kd_loss(logits, soft, labels, 4.0, 0.9))


def test_the_objective_applies_hinton_kd_by_default():
    logits, soft, labels = _batch()
    got = DistillObjective(DistillConfig(temperature=4.0, alpha=0.9), torch.zeros(16, 1))._soft_loss(logits, soft, labels)
    assert torch.allclose(got, kd_loss(logits, soft, labels, 4.0, 0.9))
