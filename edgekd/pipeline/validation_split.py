"""The validation split in two parts when the int8 search may choose among models (quantize.confirm_fraction): the
search judges on one part, and the compile stage judges what the search chose on the other.

Why: a search that keeps whichever calibration, op set or count of float nodes passes on the validation samples
keeps the model those samples flatter, so its drop there is optimistic (the winner's curse), and a bound per
candidate (core.task_metrics.drop_bound) does not see how many candidates were tried. Samples that no search has
seen give the chosen model an honest number; a model no search chose is judged on the whole split.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from edgekd.core.metrics import take_rows
from edgekd.data.datasets import Split


def confirm_mask(samples: int, fraction: float) -> np.ndarray:
    """True for the samples held back from the search: `fraction` of them, spread evenly over the split (which its
    loader has shuffled or stratified already), so both parts see the same mix. All False when the split is too small
    to hold back one sample and keep one for the search."""
    index = np.arange(samples)
    mask = np.floor((index + 1) * fraction) > np.floor(index * fraction)
    return mask if 0 < mask.sum() < samples else np.zeros(samples, dtype=bool)


def part(split, indices: np.ndarray):
    """The same rows of every input, and their labels."""
    take = getattr(split, "take", None)
    return take(indices) if take is not None else Split(take_rows(split.x, indices), np.asarray(split.y)[indices])


def search_part(ctx) -> Any:
    """The validation samples the int8 search may judge on: all of them, less the held-back ones."""
    val = ctx.dataset.val
    held_back = confirm_mask(len(val.y), ctx.cfg.quantize.confirm_fraction)
    return part(val, np.flatnonzero(~held_back)) if held_back.any() else val


def confirm_indices(ctx) -> np.ndarray | None:
    """The held-back validation samples (None: none are held back)."""
    held_back = confirm_mask(len(ctx.dataset.val.y), ctx.cfg.quantize.confirm_fraction)
    return np.flatnonzero(held_back) if held_back.any() else None


def split_record(ctx) -> dict[str, int] | None:
    """How the validation split was cut, for the quantize stage's manifest (None: not cut)."""
    held_back = confirm_indices(ctx)
    if held_back is None:
        return None
    return {"search_samples": len(ctx.dataset.val.y) - len(held_back), "confirm_samples": len(held_back)}
