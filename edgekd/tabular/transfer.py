"""A transfer set for table distillation: synthetic rows made from the training split, labelled by the teachers.

MUNGE (Bucila, Caruana and Niculescu-Mizil 2006, "Model Compression"): each training row is paired with its nearest
neighbour; with probability p each of its features takes the neighbour's value instead, a number perturbed by a
gaussian of standard deviation |a - b| / s, a category as it is. Repeated `size` times from the original rows, this
fills the space around the training data with rows the teachers have not memorised, so the student learns the
ensemble's function there and not only its (overfitted) outputs on the rows it was fitted on.

The rows are raw columns in the table's own form ({column: (n, 1)}, float32 with NaN, strings with ''), so every
teacher kind (fitted, ONNX, skops) labels them through its own logits(), exactly as it does the real splits.

Written by hand: no maintained library implements MUNGE (imbalanced-learn's SMOTE interpolates between same-class
neighbours, which is another method); the neighbour search is scikit-learn's.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from edgekd.data.table_schema import NUMERIC, Schema

TRANSFER_SPLIT = "transfer"


def describe(cfg) -> dict[str, Any]:
    """What the rows depend on (the teacher-output cache key and the manifest record)."""
    return cfg.model_dump(mode="json")


def munge(schema: Schema, x: dict[str, np.ndarray], size: int, p: float, s: float, seed: int) -> dict[str, np.ndarray]:
    """size * n synthetic rows from the n rows of x (one pass over them per multiple, each with fresh draws)."""
    rng = np.random.default_rng(seed)
    neighbour = nearest_neighbours(schema, x)
    passes = [_one_pass(schema, x, neighbour, p, s, rng) for _ in range(size)]
    return {name: np.concatenate([made[name] for made in passes]) for name in x}


def nearest_neighbours(schema: Schema, x: dict[str, np.ndarray]) -> np.ndarray:
    """Each row's nearest other row: euclidean on standardized numbers (median-imputed) and one-hot categories (so a
    category mismatch counts as Bucila et al.'s Hamming distance does, a fixed step)."""
    from sklearn.neighbors import NearestNeighbors

    from edgekd.tabular.student import features, fit_preprocessing

    points = features(fit_preprocessing(schema, x), x)
    found = NearestNeighbors(n_neighbors=2).fit(points).kneighbors(points, return_distance=False)
    rows = np.arange(len(points))
    # the row itself is normally its own first neighbour; with duplicates it may come second
    return np.where(found[:, 0] == rows, found[:, 1], found[:, 0])


def _one_pass(schema: Schema, x: dict[str, np.ndarray], neighbour: np.ndarray, p: float, s: float, rng) -> dict[str, np.ndarray]:
    out = {}
    for column in schema.columns:
        mine, theirs = x[column.name], x[column.name][neighbour]
        swap = rng.random(mine.shape) < p
        if column.kind == NUMERIC:
            spread = np.abs(mine - theirs) / s  # NaN where either side is missing: that value is taken as it is
            noise = rng.standard_normal(mine.shape).astype(np.float32) * np.nan_to_num(spread)
            theirs = (theirs + noise).astype(np.float32)
        out[column.name] = np.where(swap, theirs, mine)
    return out
