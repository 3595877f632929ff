"""The table teachers' cached outputs, as the tabular stages, the bench stage's reference and the benchmark read them
(below stages/, which never import each other)."""
from __future__ import annotations

import numpy as np

from edgekd.core.errors import StageError

SPLITS = ("train", "val", "test")


def teacher_cache(ctx):
    from edgekd.train.distill.cache import TeacherLogitCache, resolve_cache_dir

    return TeacherLogitCache(resolve_cache_dir(ctx.cfg.distill.cache_dir, ctx.base_dir, ctx.run_dir))


def split_key(identity: str, ctx, split: str) -> str:
    from edgekd.train.distill.cache import cache_key

    return cache_key(identity, ctx.dataset.fingerprint, {"split": split, "outputs": "logits or log-probabilities"})


def cached_logits(ctx, split: str) -> list[np.ndarray]:
    """Every teacher's cached outputs on a split, by the keys the teachers stage recorded."""
    cache, out = teacher_cache(ctx), []
    for entry in ctx.manifest.metrics("teachers").get("teachers", []):
        found = cache.load(entry["cache_keys"][split])
        if found is None:
            raise StageError(f"teachers[{entry['index']}]: its cached outputs are gone from {cache.root}; rerun with --force "
                             "--only teachers (or without --resume)")
        out.append(np.asarray(found.logits, dtype=np.float32))
    return out


def ensemble_probabilities(ctx, logits: list[np.ndarray]) -> np.ndarray:
    import torch

    from edgekd.train.distill.losses import ensemble_soft_targets

    weights = [t.weight for t in ctx.cfg.teachers]
    return ensemble_soft_targets([torch.from_numpy(z) for z in logits], 1.0, weights, ctx.cfg.distill.ensemble).numpy()


def teacher_reference(ctx, rows: int) -> np.ndarray:
    """The ensemble's probabilities on the first `rows` test rows (the bench stage's eval set), from the cache."""
    return ensemble_probabilities(ctx, [z[:rows] for z in cached_logits(ctx, "test")])
