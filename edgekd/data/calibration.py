"""Calibration sets from recipes in calibration/: drawn from the training split only, never test."""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import ClassVar, Literal, Optional

import numpy as np
from pydantic import Field

from edgekd.core.errors import ConfigError, DataError
from edgekd.core.fileio import resolve_path
from edgekd.core.resources import builtin_dir
from edgekd.core.sections import MAX_SEED, Integer, Strict, load_yaml_model
from edgekd.data.datasets import Dataset, Split, all_finite, split_hash


class CalibrationRecipe(Strict):
    # Words people write for these keys (other tools' recipes): an unknown one is answered "did you mean" its key.
    key_synonyms: ClassVar[dict[str, str]] = {"samples": "count", "num_samples": "count", "size": "count", "n": "count",
                                              "split": "source", "balanced": "class_balance", "sha256": "expected_sha256"}
    name: str
    description: str = ""
    source: Literal["train", "val", "synthetic"] = Field(
        "train", description="split to draw from (test is never allowed); synthetic: the data-free distillation's generated set")
    count: Integer = Field(256, ge=1, le=100_000)
    class_balance: bool = Field(True, description="draw the same number per class")
    seed: Integer = Field(0, ge=0, le=MAX_SEED)
    expected_sha256: Optional[str] = Field(None, description="refuse the set if it differs (pins the data)")


# A recipe named without a path is looked for in this folder beside the pipeline file first (a project's own recipes),
# then among the built-ins; a path (calibration/c0.yaml, ./mine.yaml) is read as given.
RECIPE_FOLDER = "calibration"


def load_recipe(name_or_path: str, base_dir: Path | None = None) -> CalibrationRecipe:
    path = resolve_path(name_or_path, base_dir)
    if not path.is_file():
        path = _recipe_by_name(str(name_or_path), base_dir)
    return load_yaml_model(path, CalibrationRecipe, "calibration recipe")


def _recipe_by_name(name: str, base_dir: Path | None) -> Path:
    """calibration/<name>.yaml beside the pipeline file, else the built-in recipe <name>; when both exist the local
    one is used, and said (it was silently shadowed by the built-in before)."""
    local = Path(base_dir or ".") / RECIPE_FOLDER / f"{name}.yaml"
    builtin = builtin_dir("calibration") / f"{name}.yaml"
    if local.is_file():
        if builtin.is_file() and local.resolve() != builtin.resolve():
            warnings.warn(f"quantize.calibration '{name}': using {local}, beside the pipeline file, not the built-in "
                          f"recipe of that name; rename the file to use the built-in", UserWarning, stacklevel=3)
        return local
    if builtin.is_file():
        return builtin
    raise ConfigError(_no_such_recipe(name, base_dir))


def _no_such_recipe(name: str, base_dir: Path | None) -> str:
    import difflib

    folder = Path(base_dir or ".") / RECIPE_FOLDER
    own = sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []
    known = sorted(p.stem for p in builtin_dir("calibration").glob("*.yaml"))
    close = difflib.get_close_matches(name, own + known, n=1)  # as target typos are answered
    hint = f"did you mean '{close[0]}'? " if close else ""
    if name.isdigit():  # a count of samples: recipes are named by split and count
        hint = f"{name} is a count, and recipes are named by split and count: did you mean 'train-{name}'? "
    yours = f"recipes in {folder}: {', '.join(own)}; " if own else ""
    return (f"quantize.calibration '{name}': no such recipe; {hint}{yours}built-in recipes: {', '.join(known)} (a name is "
            f"looked for as {folder / (name + '.yaml')} beside the pipeline file, then among the built-ins); or give a "
            "recipe file's path, relative to the pipeline file (e.g. calibration/mine.yaml)")


def draw(dataset: Dataset, recipe: CalibrationRecipe, synthetic: Split | None = None) -> tuple[Split, str]:
    """Pick the calibration samples; return them and their sha256."""
    if recipe.source == "synthetic" and synthetic is None:
        raise ConfigError(f"calibration recipe '{recipe.name}': source 'synthetic' needs distill.mode: data_free")
    pool: Split = synthetic if recipe.source == "synthetic" else getattr(dataset, recipe.source)
    rng = np.random.default_rng(recipe.seed)
    count = min(recipe.count, len(pool))
    if count < recipe.count:
        _warn_pool_too_small(recipe, len(pool))
    if recipe.class_balance:
        indices = _balanced(pool.y, count, rng, recipe.name)
    else:
        indices = rng.choice(len(pool), size=count, replace=False)
    chosen = pool.take(np.sort(indices)).in_memory()  # a calibration set is small: decoded once, here
    if not all_finite(chosen.x):
        raise DataError(f"calibration recipe '{recipe.name}': samples contain NaN or Inf; clean the data")
    return chosen, _pinned(recipe, split_hash(chosen.x, chosen.y))


def _pinned(recipe: CalibrationRecipe, digest: str) -> str:
    """The set's sha256, refused when the recipe pins another (expected_sha256)."""
    if recipe.expected_sha256 and recipe.expected_sha256 != digest:
        raise DataError(f"calibration recipe '{recipe.name}': set sha256 {digest} != expected_sha256 {recipe.expected_sha256}; "
                        "the data changed since the recipe was pinned: pin the new set (its sha256 is the first) or restore the data")
    return digest


def draw_folder(folder: Path, recipe: CalibrationRecipe, dataset: Dataset, preprocess) -> tuple[Split, str]:
    """quantize.calibration_images: `recipe.count` images (seeded by `recipe.seed`) from a folder at any depth, decoded
    with the data's preprocessing and input scaling; only the chosen files are read."""
    from edgekd.data.images import LazyImages
    from edgekd.data.sources import UNLABELED, image_files

    files = image_files(folder, "quantize.calibration_images")
    rng = np.random.default_rng(recipe.seed)
    picked = np.sort(rng.choice(len(files), size=min(recipe.count, len(files)), replace=False))
    images = LazyImages([files[i] for i in picked], preprocess).normalized(dataset.mean, dataset.std)
    if images.shape[1:] != dataset.input_shape:
        raise DataError(f"quantize.calibration_images '{folder}': images are {images.shape[1:]} after data's preprocessing "
                        f"but the model takes {dataset.input_shape}; set data.resize and data.center_crop so both match")
    chosen = Split(np.asarray(images), np.full(len(images), UNLABELED, np.int64))
    return chosen, _pinned(recipe, split_hash(chosen.x, chosen.y))


def describe(recipe: CalibrationRecipe, chosen: Split, num_classes: int = 0) -> dict:
    """What the set actually is, for the stage metrics: the requested and drawn counts may differ (a small
    split), and a class-balanced recipe may not get equal classes (a class with too few samples). `num_classes`, the
    pool's, makes per_class one entry a class, 0 for those not drawn (np.bincount alone stops at the largest drawn)."""
    if (chosen.y < 0).any():  # unlabeled images: no classes to count
        return {"requested": recipe.count, "samples": len(chosen), "class_balanced": False, "per_class": None}
    per_class = np.bincount(chosen.y, minlength=num_classes)
    present = per_class[per_class > 0]
    balanced = bool(recipe.class_balance and len(present) == len(per_class) and present.max() - present.min() <= 1)
    return {"requested": recipe.count, "samples": len(chosen), "class_balanced": balanced,
            "per_class": per_class.tolist()}


def _warn_pool_too_small(recipe: CalibrationRecipe, pool_size: int) -> None:
    balance = " with the split's own class mix (not balanced)" if recipe.class_balance else ""
    warnings.warn(f"calibration recipe '{recipe.name}' asks for {recipe.count} samples but the {recipe.source} split "
                  f"holds {pool_size}: using all {pool_size}{balance}; to say so, choose a recipe with at most {pool_size} "
                  f"samples ({_fitting_recipe(recipe.source, pool_size)}, in quantize.calibration of the pipeline file; edgekd ship writes RUN/edgekd.yaml)",
                  UserWarning, stacklevel=3)


def _fitting_recipe(source: str, pool_size: int) -> str:
    """The largest built-in recipe of `source` that the pool holds, else how to write one."""
    fits = []
    for path in builtin_dir("calibration").glob("*.yaml"):
        recipe = load_yaml_model(path, CalibrationRecipe, "calibration recipe")
        if recipe.source == source and recipe.count <= pool_size:
            fits.append((recipe.count, path.stem))
    if fits:
        return f"e.g. {max(fits)[1]}"
    extra = ", or raise distill.data_free.keep_samples" if source == "synthetic" else ""
    return f"a copy of a built-in recipe with source: {source} and count: {pool_size}{extra}"


def _balanced(labels: np.ndarray, count: int, rng: np.random.Generator, name: str) -> np.ndarray:
    classes = np.unique(labels)
    if count < len(classes):
        warnings.warn(f"calibration recipe '{name}': count {count} cannot balance {len(classes)} classes, so the set holds "
                      f"{count} of them; give count at least {len(classes)} (class_balance: true asks for every class)",
                      UserWarning, stacklevel=3)
        # Which classes make up a too-small set is drawn, not the lowest labels.
        classes = np.sort(rng.choice(classes, size=count, replace=False))
    per_class = max(1, count // len(classes))
    members = {label: np.flatnonzero(labels == label) for label in classes}
    # The remainder (256 = 10 x 25 + 6) as one more sample from that many classes, drawn among those with one to spare:
    # filled from all classes, it gave 27, 25, 26, ... on digits and the set was recorded as not balanced.
    spare = [label for label in classes if len(members[label]) > per_class]
    extra = set(rng.permutation(spare)[:max(0, count - per_class * len(classes))].tolist()) if spare else set()
    picked = [rng.choice(members[label], size=min(per_class + (label in extra), len(members[label])), replace=False)
              for label in classes]
    indices = np.concatenate(picked)
    if len(indices) < count:
        rest = np.setdiff1d(np.arange(len(labels)), indices)
        indices = np.concatenate([indices, rng.choice(rest, size=min(count - len(indices), len(rest)), replace=False)])
    return indices[:count]
