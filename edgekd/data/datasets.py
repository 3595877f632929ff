"""Deterministic splits, normalisation and checks on top of a raw source."""
from __future__ import annotations

import hashlib
import sys
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional

import numpy as np

from edgekd.core.errors import DataError
from edgekd.core.metrics import ACCURACY, FIDELITY, take_rows
from edgekd.data.config import IMAGENET_MEAN, IMAGENET_STD, DataConfig, FitHeight, NormalizeStats
from edgekd.data.images import LazyImages, Preprocess, channel_stats
from edgekd.data.sources import RawData, load_raw


@dataclass
class Split:
    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.y)

    def take(self, indices: np.ndarray) -> Split:
        x = self.x.subset(indices) if isinstance(self.x, LazyImages) else take_rows(self.x, indices)
        return Split(x, self.y[indices])

    def in_memory(self) -> Split:
        """The split as arrays: training holds its images in memory (a lazy image folder is decoded here)."""
        return Split(np.asarray(self.x), self.y) if isinstance(self.x, LazyImages) else self


@dataclass
class Dataset:
    name: str
    train: Split
    val: Split
    test: Split
    classes: list[str]
    mean: list[float]
    std: list[float]
    fingerprint: str = field(default="")
    normalize: str = "dataset"  # data.normalize: dataset, none, imagenet or custom
    # The training split's own per-channel pixel statistics, whatever data.normalize says (to judge checkpoints).
    pixel_mean: list[float] = field(default_factory=list)
    pixel_std: list[float] = field(default_factory=list)
    image_steps: Optional[dict] = None  # an image folder's decoding steps (color, resize, crop), for the device
    divisor: float = 255.0  # what the source's values were divided by before normalisation (1: as given, data.scale none)
    # False: the data has no labels. The pipeline then labels val and test with the fp32 model's top-1
    # (with_reference_labels), so every top-1 it measures is agreement with fp32: fidelity, not accuracy.
    labeled: bool = True
    reference_labels: bool = False  # val/test labels are the fp32 model's predictions
    layout: str = "NCHW"  # NHWC: channels-last images from an npz, fed as they are (_channels_last_dataset)
    # What loading found that the report must carry (a class absent from the test split: its accuracy unmeasured),
    # warned when loaded, and added to report.json's warnings by the bench stage.
    data_warnings: list[str] = field(default_factory=list)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One sample's shape; for several named inputs, the first one's (input_shapes has each)."""
        return next(iter(self.input_shapes.values()))

    @property
    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        """{input name: one sample's shape} for named inputs; {"x": shape} for images."""
        if isinstance(self.train.x, dict):
            return {name: tuple(array.shape[1:]) for name, array in self.train.x.items()}
        return {"x": tuple(self.train.x.shape[1:])}

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def preprocessing(self) -> dict:
        """What a device must do to a NCHW image before feeding the model: divide by `divisor` (pixels in [0, 1]), or
        nothing for values the model takes as they are (data.scale none), then normalise per channel. Several named
        inputs (an npz with one array per input) are fed as they are: no image steps to describe."""
        if isinstance(self.train.x, dict):
            return {"inputs": "as given", "scale": "none (each input's array as given, not divided)", "normalize": "none",
                    "formula": "none: each model input takes its array as it is",
                    "arrays": {name: {"shape": list(array.shape[1:]), "dtype": str(array.dtype)}
                               for name, array in self.train.x.items()}}
        if self.divisor == 1:
            scale, formula = "none (the values as given, not divided)", "(x - mean[c]) / std[c]"
        else:
            scale, formula = f"divide by {self.divisor:g} (pixel values in [0, 1])", f"(pixel / {self.divisor:g} - mean[c]) / std[c]"
        return {"layout": self.layout, "scale": scale, "normalize": self.normalize,
                "formula": formula, "mean": self.mean, "std": self.std,
                "input_shape": list(self.input_shape), **({"image": self.image_steps} if self.image_steps else {})}

    @property
    def measured(self) -> str:
        """What a top-1 on this data measures, for reports and manifests."""
        return FIDELITY if self.reference_labels else ACCURACY

    def with_reference_labels(self, val_logits: np.ndarray, test_logits: np.ndarray) -> Dataset:
        """The unlabeled dataset with the fp32 model's top-1 as val and test labels (train stays unlabeled)."""
        classes = [str(i) for i in range(val_logits.shape[1])]
        return replace(self, val=Split(self.val.x, val_logits.argmax(1).astype(np.int64)),
                       test=Split(self.test.x, test_logits.argmax(1).astype(np.int64)), classes=classes,
                       reference_labels=True)

    def raw(self, x: np.ndarray) -> np.ndarray:
        """Model inputs back to pixels in [0, 1] (undo the normalisation)."""
        return x * np.asarray(self.std, np.float32)[None, :, None, None] + np.asarray(self.mean, np.float32)[None, :, None, None]


def preprocess_of(cfg: DataConfig) -> Preprocess:
    if isinstance(cfg.resize, FitHeight):
        return Preprocess(color=cfg.color, fit_height=(cfg.resize.height, cfg.resize.max_width))
    return Preprocess(color=cfg.color, resize=cfg.resize, center_crop=cfg.center_crop, square=cfg.image_size)


def load_dataset(cfg: DataConfig, seed: int, base_dir: Optional[Path] = None, lazy: bool = False) -> Dataset:
    """The splits, normalised. An image folder stays on disk and is decoded batch by batch when `lazy` (shipping a
    trained model: evaluation and calibration only); training needs its images in memory."""
    raw = load_raw(cfg.source, cfg.path, preprocess_of(cfg), base_dir, labeled=cfg.labels != "none", scale=cfg.scale)
    if raw.scale_note:  # data.scale auto decided for the user: said once, with the key that overrides it
        print(raw.scale_note, file=sys.stderr)
    where = f"data.path '{cfg.path}'" if cfg.path else f"data.source '{cfg.source}'"
    if raw.labeled:
        _check(raw.x, raw.y, len(raw.classes), where)
        if raw.test_y is not None:
            _check(raw.test_x, raw.test_y, len(raw.classes), f"{where} (test split)")
        _check_classes(raw, where)
    else:
        _check_unlabeled(raw, where)
    rng = np.random.default_rng(seed)
    train, val, test = _split(raw, cfg, rng)
    missing = _warn_classes_missing({"validation": val.y, "test": test.y}, raw.classes, raw.y, where) if raw.labeled else []
    if isinstance(raw.x, dict):
        return replace(_named_inputs_dataset(cfg, raw, train, val, test), data_warnings=missing)
    if channels_last(train.x):
        return replace(_channels_last_dataset(cfg, raw, train, val, test, where), data_warnings=missing)
    pixel_mean, pixel_std = _channel_stats(train.x)
    mean, std = (pixel_mean, pixel_std) if cfg.normalize == "dataset" else input_scaling(cfg.normalize, train.x)
    train, val, test = (Split(_normalise(s.x, mean, std), s.y) for s in (train, val, test))
    if not lazy:
        train, val, test = train.in_memory(), val.in_memory(), test.in_memory()
    mode = cfg.normalize if isinstance(cfg.normalize, str) else "custom"
    dataset = Dataset(cfg.source, train, val, test, raw.classes, mean.tolist(), std.tolist(), normalize=mode,
                      pixel_mean=pixel_mean.tolist(), pixel_std=pixel_std.tolist(),
                      image_steps=raw.x.preprocess.to_json() if isinstance(raw.x, LazyImages) else None,
                      labeled=raw.labeled, divisor=raw.divisor, data_warnings=missing)
    dataset.fingerprint = fingerprint(dataset)
    return dataset


def channels_last(x) -> bool:
    """Images saved channels-last, (N, H, W, C) with C 1, 3 or 4, for a model that takes them so (a TensorFlow or
    Keras export): told apart from (N, C, H, W) by where the 1, 3 or 4 stands; (N, 3, W, 3) reads as channels-first."""
    shape = getattr(x, "shape", ())
    return not isinstance(x, LazyImages) and len(shape) == 4 and shape[-1] in (1, 3, 4) and shape[1] not in (1, 3, 4)


def _channels_last_dataset(cfg: DataConfig, raw: RawData, train: Split, val: Split, test: Split, where: str) -> Dataset:
    """Channels-last images are fed as scaled (data.scale) and not normalised: edgekd's per-channel statistics, and the
    shipped model's scaling check, are written for channels-first images (axis 1). A data.normalize other than none
    is refused rather than applied to the wrong axis (it made 32 'channels' of a 32x32x3 image)."""
    if "normalize" in cfg.model_fields_set and cfg.normalize != "none":
        raise DataError(f"data.normalize: {where} holds channels-last images {_shape_text(train.x.shape[1:])}, which "
                        "edgekd feeds as they are; normalise them before saving and set data.normalize: none (edgekd "
                        "ship: --normalize none), or save them as (N, C, H, W) for a channels-first model")
    channels = int(train.x.shape[-1])
    print(f"{where}: channels-last images {_shape_text(train.x.shape[1:])}: fed as they are (data.normalize none)",
          file=sys.stderr)
    dataset = Dataset(cfg.source, train.in_memory(), val.in_memory(), test.in_memory(), raw.classes, [0.0] * channels,
                      [1.0] * channels, normalize="none", labeled=raw.labeled, divisor=raw.divisor, layout="NHWC")
    dataset.fingerprint = fingerprint(dataset)
    return dataset


def _shape_text(sample_shape) -> str:
    return "(N, " + ", ".join(str(d) for d in sample_shape) + ")"


def _named_inputs_dataset(cfg: DataConfig, raw: RawData, train: Split, val: Split, test: Split) -> Dataset:
    """Several named inputs (an npz with one array per input): fed as they are, without normalisation, which is
    defined per image channel; data.normalize other than none is refused rather than silently ignored."""
    if "normalize" in cfg.model_fields_set and cfg.normalize != "none":
        raise DataError(f"data.normalize: the npz '{cfg.path}' holds one array per model input, fed as they are; "
                        "scale them before saving and set data.normalize: none (or leave it out)")
    if "scale" in cfg.model_fields_set and cfg.scale != "none":
        raise DataError(f"data.scale: the npz '{cfg.path}' holds one array per model input, fed as they are; "
                        "scale them before saving and set data.scale: none (or leave it out)")
    dataset = Dataset(cfg.source, train, val, test, raw.classes, [], [], normalize="none", labeled=raw.labeled)
    dataset.fingerprint = fingerprint(dataset)
    return dataset


def _check(x: np.ndarray, y: np.ndarray, n_classes: int, where: str) -> None:
    if len(y) == 0:
        raise DataError(f"{where}: the dataset is empty; check data.path and data.source")
    if y.min() < 0 or y.max() >= n_classes:
        raise DataError(f"{where}: labels out of range: found {int(y.min())}..{int(y.max())}, expected 0..{n_classes - 1}; "
                        "fix the labels or list every class name")
    if not isinstance(x, LazyImages) and not all_finite(x):  # decoded pixels are finite by construction
        raise DataError(f"{where}: images contain NaN or Inf values; clean the data first")


def _check_unlabeled(raw: RawData, where: str) -> None:
    if len(raw.y) < 3:
        raise DataError(f"{where}: {len(raw.y)} unlabeled image(s); give at least 3 (train, validation and test)")
    if raw.test_y is not None and not (raw.test_y == raw.y[0]).all():
        raise DataError(f"{where}: test_y has labels but y has none; give labels for both or for neither")
    _check(raw.x, np.zeros(len(raw.y), np.int64), 1, where)  # finite pixels


def _check_classes(raw: RawData, where: str) -> None:
    """A classifier needs two classes or more, each with images: one class trains a one-logit model that is
    always right; a label gap (11 among 0..9) silently makes a class nothing can teach."""
    counts = np.bincount(raw.y, minlength=len(raw.classes))
    unlabeled = "; for images without labels (judged by fidelity to the fp32 model) use --no-labels (data.labels: none)"
    if len(raw.classes) == 1 and isinstance(raw.x, LazyImages):  # a camera's dump in one sub-folder (day1/) reads as one class
        raise DataError(f"{where}: its only sub-folder '{raw.classes[0]}' was read as the one class of every image, and a "
                        f"classifier needs at least two; add a sub-folder per class{unlabeled}")
    if len(raw.classes) < 2 or np.count_nonzero(counts) < 2:
        raise DataError(f"{where}: every image has label {int(raw.y[0])}: a classifier needs at least two classes; "
                        f"check the labels, or add images of the other classes{unlabeled}")
    empty = [i for i, c in enumerate(counts) if c == 0]
    if empty:
        present = sorted(int(v) for v in np.unique(raw.y))
        shown = ", ".join(f"{i} ('{raw.classes[i]}')" for i in empty[:5])
        # For a model trained elsewhere, label i is its output i: renumbering (0, 1, 3 as 0, 1, 2) would mislabel.
        raise DataError(f"{where}: no image has label {shown}, though labels run to {present[-1]}: labels must be "
                        f"0..{len(raw.classes) - 1} with every class present ({len(present)} distinct found); add "
                        f"images of label {', '.join(str(i) for i in empty[:5])} or fix a stray label (renumbering would "
                        "mislabel a model trained elsewhere, whose outputs the labels index), or ship such a model with "
                        "--no-labels (data.labels: none) to judge it by agreement with its fp32 self")


def test_split_size(samples: int, test_fraction: float) -> int:
    """The test split of a source without an official one (digits, npz, image folders): `test_fraction` of it."""
    return max(1, int(round(samples * test_fraction)))


def _warn_classes_missing(splits: dict[str, np.ndarray], classes: list[str], all_y: np.ndarray, where: str) -> list[str]:
    """A class too small to reach the validation or test split (the split is random, not stratified): its accuracy is
    then never measured, and the gate passes whatever the model does on it. Warned once per split, naming the class (a
    warning, not a print: the input checks' warnings are replayed into the run log, which does not exist yet), and
    returned for the report."""
    said = []
    for split, y in splits.items():
        present = np.bincount(np.asarray(y, np.int64)[np.asarray(y) >= 0], minlength=len(classes))
        absent = [i for i in range(len(classes)) if present[i] == 0]
        if absent:
            total = np.bincount(np.asarray(all_y, np.int64)[np.asarray(all_y) >= 0], minlength=len(classes))
            shown = ", ".join(f"'{classes[i]}' ({int(total[i])} samples)" for i in absent[:3])
            said.append(f"{where}: no {split} samples of class {shown}{' and others' if len(absent) > 3 else ''}: its "
                        f"accuracy is not measured there; add samples of it, or a larger "
                        f"data.{'val' if split == 'validation' else 'test'}_fraction")
            warnings.warn(said[-1], stacklevel=3)
    return said


def _split(raw: RawData, cfg: DataConfig, rng: np.random.Generator) -> tuple[Split, Split, Split]:
    order = rng.permutation(len(raw.y))
    pool = Split(raw.x, raw.y).take(order)
    if raw.test_x is not None:
        test = Split(raw.test_x, raw.test_y)
    else:
        n_test = test_split_size(len(pool), cfg.test_fraction)
        test, pool = pool.take(np.arange(n_test)), pool.take(np.arange(n_test, len(pool)))
    n_val = max(1, int(round(len(pool) * cfg.val_fraction)))
    val, train = pool.take(np.arange(n_val)), pool.take(np.arange(n_val, len(pool)))
    if cfg.train_limit:
        train = train.take(np.arange(min(cfg.train_limit, len(train))))
    if cfg.test_limit:
        test = test.take(np.arange(min(cfg.test_limit, len(test))))
    if len(train) == 0:
        raise DataError(f"data.source '{cfg.source}': no training samples left after the val/test split")
    return train, val, test


def input_scaling(normalize, train_x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (mean, std) of data.normalize for images shaped like `train_x` (pixels in [0, 1])."""
    channels = train_x.shape[1]
    if normalize == "dataset":
        return _channel_stats(train_x)
    if normalize == "none":
        mean, std = [0.0] * channels, [1.0] * channels
    elif normalize == "imagenet":
        mean, std = IMAGENET_MEAN, IMAGENET_STD
    else:
        assert isinstance(normalize, NormalizeStats)
        mean, std = normalize.mean, normalize.std
        if len(mean) == 1:  # one value for every channel (0.5/0.5: pixels in [-1, 1])
            mean, std = mean * channels, std * channels
    if len(mean) != channels:
        raise DataError(f"data.normalize: {len(mean)} channel statistics for images with {channels} channel(s); "
                        f"give {channels} mean and std values, or use dataset or none")
    return np.asarray(mean, np.float32), np.asarray(std, np.float32)


def _channel_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(x, LazyImages):
        mean, std = channel_stats(x)
        return mean, np.maximum(std, 1e-6).astype(np.float32)
    mean = x.mean(axis=(0, 2, 3), dtype=np.float64)
    std = x.std(axis=(0, 2, 3), dtype=np.float64)
    return mean.astype(np.float32), np.maximum(std, 1e-6).astype(np.float32)


def _normalise(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    if isinstance(x, LazyImages):
        return x.normalized(mean, std)
    return ((x - mean[None, :, None, None]) / std[None, :, None, None]).astype(np.float32)


def fingerprint(dataset: Dataset) -> str:
    digest = hashlib.sha256()
    for split in (dataset.train, dataset.val, dataset.test):
        digest.update(_pixels_digest(split.x))
        digest.update(np.ascontiguousarray(split.y).tobytes())
    return digest.hexdigest()[:16]


def _pixels_digest(x) -> bytes:
    if isinstance(x, dict):  # named inputs: each by name, in name order
        return b"".join(name.encode() + np.ascontiguousarray(x[name]).tobytes() for name in sorted(x))
    return x.fingerprint().encode() if isinstance(x, LazyImages) else np.ascontiguousarray(x).tobytes()


def all_finite(x) -> bool:
    """No NaN or Inf in the samples: one array, or every float array of named inputs (integers are finite)."""
    arrays = x.values() if isinstance(x, dict) else [x]
    return all(np.isfinite(a).all() for a in arrays if np.issubdtype(np.asarray(a).dtype, np.floating))


def split_hash(x: np.ndarray, y: np.ndarray) -> str:
    digest = hashlib.sha256(_pixels_digest(x))
    digest.update(np.ascontiguousarray(y).tobytes())
    return digest.hexdigest()
