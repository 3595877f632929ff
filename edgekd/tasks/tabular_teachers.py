"""The table teachers' cached outputs, as the tabular task's steps (tasks/tabular.py), its bench reference and the
benchmark read them: the tabular task's own module, beside its steps."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edgekd.core.errors import StageError
from edgekd.pipeline.run_models import teacher_cache

SPLITS = ("train", "val", "test")
TRANSFER_FILE = "transfer.npz"  # distill.transfer_set's rows, in the teachers stage's folder


def split_key(identity: str, ctx, split: str, folds: int | None = None) -> str:
    """A teacher's cached outputs on a split; `folds`: made out of fold (distill.out_of_fold), keyed apart from in-sample."""
    from edgekd.train.distill.cache import cache_key

    settings = {"split": split, "outputs": "logits or log-probabilities", **({"out_of_fold": folds} if folds else {})}
    return cache_key(identity, ctx.dataset.fingerprint, settings)


def teacher_onnx_file(ctx, teacher, path: Path) -> tuple[Path | None, str | None]:
    """The teacher's ONNX file at `path` (or the converter's reason there is none), converted once per teacher and data
    and kept in the teacher cache beside its outputs: a rerun whose outputs of this teacher are cached neither refits
    nor reconverts it (baseline.teacher_file fits a lazy teacher)."""
    import shutil

    from edgekd.core.fileio import atomic_path, read_json, write_json_atomic
    from edgekd.tabular import baseline
    from edgekd.train.distill.cache import cache_key

    if teacher.onnx_path is not None:
        return teacher.onnx_path, None
    cache = teacher_cache(ctx)
    # inputs: conversions from before the graph's inputs were renamed back to the column names are not reused
    key = cache_key(teacher.identity, ctx.dataset.fingerprint, {"split": "onnx", "converters": _converter_versions(),
                                                                "inputs": "column names"})
    stored, note = cache.root / f"{key}.onnx", cache.root / f"{key}.onnx.json"
    if note.is_file():  # written last: the conversion finished (its file, or its reason)
        reason = read_json(note).get("reason")
        if reason is not None or stored.is_file():
            if reason is None:
                shutil.copyfile(stored, path)
            return (None, reason) if reason is not None else (path, None)
    made, reason = baseline.teacher_file(teacher, ctx.dataset.schema, path)
    cache.root.mkdir(parents=True, exist_ok=True)
    if made is not None:
        with atomic_path(stored) as tmp:
            shutil.copyfile(made, tmp)
    write_json_atomic(note, {"reason": reason})
    return made, reason


def _converter_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("skl2onnx", "onnxmltools", "onnx"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "absent"
    return out


def transfer_key(identity: str, ctx) -> str:
    """The cache key of a teacher's outputs on the transfer set: the rows follow from the data, its config and seed."""
    from edgekd.train.distill.cache import cache_key

    return cache_key(identity, ctx.dataset.fingerprint, {"split": "transfer", "transfer_set": transfer_recipe(ctx),
                                                         "outputs": "logits or log-probabilities"})


def transfer_recipe(ctx) -> dict | None:
    cfg = ctx.cfg.distill.transfer_set
    if cfg is None:
        return None
    return {**cfg.model_dump(mode="json"), "seed": ctx.cfg.seed if cfg.seed is None else cfg.seed}


def make_transfer_rows(ctx) -> dict[str, np.ndarray]:
    """distill.transfer_set's synthetic rows, made from the training split (edgekd/tabular/transfer.py)."""
    from edgekd.tabular.transfer import munge

    recipe = transfer_recipe(ctx)
    return munge(ctx.dataset.schema, ctx.dataset.train.x, recipe["size"], recipe["p"], recipe["s"], recipe["seed"])


def transfer_rows(ctx) -> dict[str, np.ndarray] | None:
    """The rows the teachers stage made and labelled (None without distill.transfer_set)."""
    if ctx.cfg.distill.transfer_set is None:
        return None
    path = ctx.stage_dir("teachers") / TRANSFER_FILE
    if not path.is_file():
        raise StageError(f"distill.transfer_set: {path} is gone; rerun with --force --only teachers (or without --resume)")
    with np.load(path, allow_pickle=False) as saved:
        return {name: saved[name] for name in saved.files}


def train_soft_targets(ctx):
    """The ensemble's soft targets (a torch tensor) on the training rows, followed by those on the transfer set's rows
    when there is one."""
    import torch

    from edgekd.tabular.distill import soft_targets

    cfg = ctx.cfg
    soft = soft_targets(cached_logits(ctx, "train"), cfg.teachers, cfg.distill)
    if cfg.distill.transfer_set is None:
        return soft
    return torch.cat([soft, soft_targets(cached_logits(ctx, "transfer"), cfg.teachers, cfg.distill)])


def cached_logits(ctx, split: str) -> list[np.ndarray]:
    """Every teacher's cached outputs on a split, by the keys the teachers stage recorded."""
    cache, out = teacher_cache(ctx), []
    for entry in ctx.manifest.metrics("teachers").get("teachers", []):
        if split not in entry["cache_keys"]:
            raise StageError(f"teachers[{entry['index']}]: no outputs on the {split} rows were cached (distill.transfer_set "
                             "changed since the teachers ran?); rerun with --force --only teachers")
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
