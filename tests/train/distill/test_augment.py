import torch

from edgekd.train.config import AugmentConfig
from edgekd.train.distill.augment import ShiftFlip, shift_flip


def test_shift_moves_pixels_and_fills_with_zero():
    x = torch.arange(9.0).view(1, 1, 3, 3)
    down_right = shift_flip(x, torch.tensor([[1, 1]]), torch.tensor([False]), 1)
    assert down_right[0, 0].tolist() == [[0, 0, 0], [0, 0, 1], [0, 3, 4]]
    flipped = shift_flip(x, torch.tensor([[0, 0]]), torch.tensor([True]), 1)
    assert flipped[0, 0, 0].tolist() == [2, 1, 0]


def test_draws_replay_per_sample_whatever_the_batching():
    x = torch.randn(10, 1, 6, 6)
    aug = ShiftFlip(AugmentConfig(shift=2, seed=3), len(x))
    whole = aug.apply(x, aug.draws(4), torch.arange(10))
    parts = torch.cat([aug.apply(x, aug.draws(4), torch.arange(i, i + 2)) for i in range(0, 10, 2)])
    assert torch.equal(whole, parts)
    assert not torch.equal(aug.draws(4).shifts, aug.draws(5).shifts)
    assert aug.describe(4) != aug.describe(5)
