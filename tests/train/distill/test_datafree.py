from __future__ import annotations

import numpy as np
import pytest
import torch

from edgekd.train.config import ModelConfig
from edgekd.train.distill.datafree import BatchNormStatistics, DataFreeSettings, Generator, ReplayBank, synthesize_and_distill
from edgekd.train.models import build_model


def _teacher_with_known_statistics():
    """A teacher whose BN running statistics come from a known input distribution."""
    torch.manual_seed(0)
    teacher = build_model(ModelConfig(arch="convnet", width=4), (1, 8, 8), 10)
    teacher.train()
    with torch.no_grad():
        for _ in range(20):
            teacher(torch.randn(64, 1, 8, 8) * 0.5 + 0.3)
    return teacher.eval()


def test_batch_norm_matching_loss_is_zero_for_the_running_statistics():
    bn = torch.nn.BatchNorm2d(2)
    bn.running_mean.fill_(1.0)
    bn.running_var.fill_(4.0)
    hooks = BatchNormStatistics(bn)
    bn.eval()(torch.randn(4096, 2, 4, 4) * 2.0 + 1.0)
    assert float(hooks.pop()) < 0.2
    bn(torch.zeros(16, 2, 4, 4))
    assert float(hooks.pop()) > 3.0


@pytest.mark.parametrize("replay", [0, 256], ids=["fresh-batches", "replay-bank"])
def test_short_synthesis_run_lowers_batch_norm_loss(replay):
    teacher = _teacher_with_known_statistics()
    student = build_model(ModelConfig(arch="convnet", width=2), (1, 8, 8), 10)
    settings = DataFreeSettings(steps=40, batch_size=32, latent_dim=16, generator_width=8, generator_lr=5e-3, keep_samples=32,
                                replay=replay)
    result = synthesize_and_distill([teacher], student, (1, 8, 8), [0.3], [0.5], settings)
    first, last = np.mean(result.bn_loss[:5]), np.mean(result.bn_loss[-5:])
    assert last < 0.7 * first, (first, last)
    assert result.samples.shape == (32, 1, 8, 8) and np.isfinite(result.samples).all()


def test_generator_outputs_normalised_images():
    gen = Generator(8, (1, 28, 28), [0.5], [0.25], width=8).eval()
    with torch.no_grad():
        out = gen(torch.randn(4, 8))
    assert out.shape == (4, 1, 28, 28)
    assert float(out.min()) >= -2.0 - 1e-5 and float(out.max()) <= 2.0 + 1e-5


def test_replay_bank_keeps_the_most_recent_samples_with_their_targets():
    bank = ReplayBank(5)
    for start in (0, 3, 6):  # 9 samples into 5 slots: 0..3 are overwritten
        values = torch.arange(start, start + 3, dtype=torch.float32)
        bank.add(values.view(3, 1, 1, 1), values.view(3, 1) * 10)
    assert bank.filled == 5
    assert sorted(bank.x.flatten().tolist()) == [4, 5, 6, 7, 8]
    x, soft = bank.batch(64)
    assert torch.equal(soft.flatten(), x.flatten() * 10)  # each sample keeps its own soft targets
    assert set(x.flatten().tolist()) <= {4, 5, 6, 7, 8}
