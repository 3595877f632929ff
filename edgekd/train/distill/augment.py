"""Random shift and flip whose draws are a pure function of (seed, epoch, sample index).

Hand-written rather than torchvision.transforms.v2 because the draws must be replayable per sample:
the teacher-logit cache stores each epoch's teacher outputs on exactly the images the student will see,
whatever the batch order, the number of ranks or a resume in between.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from edgekd.train.config import AugmentConfig

IMPLEMENTATION = "shift-flip/1"  # part of the cache key: change it when the drawing scheme changes


@dataclass
class EpochDraws:
    shifts: torch.Tensor  # (N, 2) int64 in [-shift, shift]: rows, columns
    flips: torch.Tensor   # (N,) bool

    def to(self, device: torch.device) -> EpochDraws:
        """The same draws on `device` (drawn on the CPU by numpy, so every device replays the same ones)."""
        return EpochDraws(self.shifts.to(device), self.flips.to(device))


class ShiftFlip:
    def __init__(self, cfg: AugmentConfig, num_samples: int):
        self.cfg, self.num_samples = cfg, num_samples

    def describe(self, epoch: int) -> dict:
        return {"augment": IMPLEMENTATION, **self.cfg.model_dump(mode="json", exclude={"teachers"}), "epoch": epoch}

    def draws(self, epoch: int) -> EpochDraws:
        rng = np.random.default_rng([self.cfg.seed, epoch])
        shifts = rng.integers(-self.cfg.shift, self.cfg.shift + 1, size=(self.num_samples, 2))
        flips = rng.random(self.num_samples) < 0.5 if self.cfg.flip else np.zeros(self.num_samples, dtype=bool)
        return EpochDraws(torch.from_numpy(shifts), torch.from_numpy(flips))

    def apply(self, x: torch.Tensor, draws: EpochDraws, idx: torch.Tensor) -> torch.Tensor:
        """The augmented batch x[idx], on x's device (idx and the draws may live on another)."""
        at = idx.to(draws.shifts.device)
        return shift_flip(x[idx.to(x.device)], draws.shifts[at], draws.flips[at], self.cfg.shift)


def shift_flip(x: torch.Tensor, shifts: torch.Tensor, flips: torch.Tensor, max_shift: int) -> torch.Tensor:
    """Shift each (C, H, W) image by its own (dy, dx) with zero fill, then flip the chosen ones left-right.
    Runs on x's device: the draws follow it."""
    shifts, flips = shifts.to(x.device), flips.to(x.device)
    if max_shift:
        n, _, h, w = x.shape
        padded = torch.nn.functional.pad(x, (max_shift,) * 4)
        rows = torch.arange(h, device=x.device)[None, :] + max_shift - shifts[:, :1]   # (N, H): source row of each output row
        cols = torch.arange(w, device=x.device)[None, :] + max_shift - shifts[:, 1:]   # (N, W)
        batch = torch.arange(n, device=x.device)[:, None, None]
        x = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    return torch.where(flips.view(-1, 1, 1, 1), x.flip(-1), x).contiguous()
