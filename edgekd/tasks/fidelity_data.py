"""The data of a fidelity task (`task: {kind: fidelity, metric: ...}`): an .npz of the model's input `x` exactly as the
model takes it (edgekd rescales and normalises nothing: the file is the preprocessing's output), or for a model with
several inputs one array per input name, and optionally `y`, labels in the task metric's format
(edgekd/core/task_metrics.py), one row per sample.

Split by the seed into train (calibration), val (quantize budget, candidate selection) and test (bench, each bundle's
eval.npz). Without y (or with data.labels none) val and test are labelled with the fp32 model's own outputs
(metric.labels_of), so every score measured on them is agreement with fp32, as for an unlabeled classifier.
"""
from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from edgekd.core.errors import DataError
from edgekd.core.fileio import read_npz, resolve_path
from edgekd.core.metrics import ACCURACY, FIDELITY, sample_count, take_rows
from edgekd.core.task_metrics import task_metric
from edgekd.data.sources import UNLABELED

FIX = "save it with numpy.savez(path, x=inputs, y=labels) (y optional)"


@dataclass
class FidelitySplit:
    x: np.ndarray | dict[str, np.ndarray]  # one input, or several by name
    y: np.ndarray  # labels in the metric's format; UNLABELED per sample in the training split (calibration only)

    def __len__(self) -> int:
        return sample_count(self.x)

    def take(self, indices: np.ndarray) -> FidelitySplit:
        return FidelitySplit(take_rows(self.x, indices), self.y[indices])

    def in_memory(self) -> FidelitySplit:
        return self


@dataclass
class FidelityDataset:
    name: str
    train: FidelitySplit
    val: FidelitySplit
    test: FidelitySplit
    metric: str
    fingerprint: str = ""
    labeled: bool = True
    reference_labels: bool = False  # val/test labels are the fp32 model's outputs as labels (metric.labels_of)
    classes: tuple = ()  # no classes: the bundle manifest's `labels` is empty

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One sample's shape (of the first input, for several)."""
        return tuple(self.first_input.shape[1:])

    @property
    def first_input(self) -> np.ndarray:
        return next(iter(self.train.x.values())) if isinstance(self.train.x, dict) else self.train.x

    @property
    def num_classes(self) -> int:
        return 0

    @property
    def measured(self) -> str:
        # its task metric, not top-1, against the labels (report.json and the bundle say what the terminal says)
        return FIDELITY if self.reference_labels else ACCURACY.replace("top-1", self.metric)

    def preprocessing(self) -> dict[str, Any]:
        return {"given": "x of the .npz as the model takes it: edgekd applied no preprocessing; do on the device what "
                         "produced it", "input_shape": list(self.input_shape), "dtype": self.first_input.dtype.name}


# data keys that shape images decoded from files or scaled by edgekd: none applies to an npz fed as it is
IMAGE_STEPS = ("normalize", "color", "resize", "image_size", "center_crop")


def load_fidelity_dataset(config, base_dir: Path | None) -> FidelityDataset:
    """config: the pipeline config (data.path, data.labels, fractions, seed, task.metric, student.onnx)."""
    data = config.data
    if "scale" in data.model_fields_set and data.scale != "none":  # the file is the model's input: nothing is divided
        raise DataError(f"data.scale: a fidelity task feeds the npz '{data.path}' as it is; scale x before "
                        "saving and set data.scale: none (or leave it out)")
    ignored = [k for k in IMAGE_STEPS if k in data.model_fields_set and getattr(data, k) not in (None, "none")]
    if ignored:  # refused as data.scale is, not recorded and then not applied
        raise DataError(f"data.{ignored[0]}: a fidelity task feeds the npz '{data.path}' as it is, with no image steps "
                        f"(edgekd ship: no --{ignored[0]}); save x as the model takes it (normalised, resized) and "
                        f"remove data.{ignored[0]}")
    path = resolve_path(data.path, base_dir)
    if not path.is_file():
        raise DataError(f"data.path '{data.path}': npz file not found ({path})")
    arrays = read_npz(path, FIX, DataError)
    # x: the model's one input; without x, every array but y is an input of that name (several inputs)
    inputs = {"x": arrays["x"]} if "x" in arrays else {k: v for k, v in arrays.items() if k != "y"}
    if not inputs:
        raise DataError(f"{path}: no array 'x' (the model's input, batch first) and no array per input name; {FIX}")
    if "x" not in arrays:  # several inputs: each in the model's layout (batch_layout), samples first from here on
        inputs = _samples_first(config, base_dir, path, inputs)
    for name, array in inputs.items():
        _check_input(path, name, array)
    counts = {name: len(array) for name, array in inputs.items()}
    if len(set(counts.values())) > 1:
        raise DataError(f"{path}: the inputs hold different numbers of samples ({counts}); give one row per sample in each")
    x = inputs["x"] if "x" in arrays else inputs
    count = sample_count(x)
    y = arrays.get("y") if data.labels != "none" else None
    if y is not None and len(y) != count:
        raise DataError(f"{path}: {count} samples in x but {len(y)} rows in y; give one label row per sample "
                        f"({task_metric(config.task.metric).labels})")
    labels = y if y is not None else np.full(count, UNLABELED, np.int64)
    train, val, test = _split(FidelitySplit(x, labels), data, np.random.default_rng(config.seed))
    # The training split only calibrates: no labels there, so that a class-balanced calibration recipe draws plainly
    # rather than reading masks or strings as classes.
    train = FidelitySplit(train.x, np.full(len(train), UNLABELED, np.int64))
    dataset = FidelityDataset(path.name, train, val, test, config.task.metric, labeled=y is not None)
    if y is None:
        dataset = _labelled_by_fp32(config, base_dir, dataset)
    dataset.fingerprint = _fingerprint(dataset)
    return dataset


def _samples_first(config, base_dir: Path | None, path: Path, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each input's samples moved to the first axis from the model's batch axis (Silero VAD's state [2, batch, 128]),
    a 0-d input's one value repeated per sample (its `sr`)."""
    from edgekd.core.batch_layout import from_file, onnx_input_shapes

    source = resolve_path(config.student.onnx, base_dir) if config.student.onnx else None
    if source is None or not source.is_file():
        return inputs  # the model's own checks name a missing file
    return from_file(inputs, onnx_input_shapes(source), str(path), DataError)


def _check_input(path: Path, name: str, array: np.ndarray) -> None:
    if array.ndim < 1 or len(array) < 3:
        raise DataError(f"{path}: '{name}' must hold at least 3 samples, batch first (train, validation, test), got shape "
                        f"{array.shape}")
    if not np.issubdtype(array.dtype, np.number) or (array.dtype.kind == "f" and not np.isfinite(array).all()):
        raise DataError(f"{path}: '{name}' must be finite numbers, got {array.dtype}"
                        f"{' with NaN or Inf' if array.dtype.kind == 'f' else ''}")


def _split(pool: FidelitySplit, data, rng: np.random.Generator) -> tuple[FidelitySplit, FidelitySplit, FidelitySplit]:
    """The image sources' split (data/datasets.py): shuffled by the seed, test then validation off the front."""
    pool = pool.take(rng.permutation(len(pool)))
    n_test = max(1, int(round(len(pool) * data.test_fraction)))
    test, pool = pool.take(np.arange(n_test)), pool.take(np.arange(n_test, len(pool)))
    n_val = max(1, int(round(len(pool) * data.val_fraction)))
    val, train = pool.take(np.arange(n_val)), pool.take(np.arange(n_val, len(pool)))
    if data.test_limit:
        test = test.take(np.arange(min(data.test_limit, len(test))))
    if len(train) == 0:
        raise DataError(f"data.path '{data.path}': no training (calibration) samples left after the validation and test split")
    return train, val, test


def _labelled_by_fp32(config, base_dir: Path | None, dataset: FidelityDataset) -> FidelityDataset:
    from edgekd.core.errors import ConfigError
    from edgekd.pipeline.given_model import given_input_spec, onnx_logits
    from edgekd.pipeline.onnx_intake import check_output_name

    source = resolve_path(config.student.onnx, base_dir)
    if not source.is_file():
        raise ConfigError(f"student.onnx '{config.student.onnx}': file not found ({source}); give the path of the "
                          "model's .onnx file, absolute or relative to the config file")
    # as for an unlabeled classifier (given_model.with_reference_labels): its data files and inputs checked first
    given_input_spec(source, dataset, "student.onnx", f"data.path '{config.data.path}'")
    check_output_name(source, config.task.output)
    outputs = onnx_logits(source, output=config.task.output)
    metric = task_metric(dataset.metric)
    print(f"data.path '{config.data.path}': no labels; every {metric.name} below is agreement with the fp32 model's outputs "
          "(fidelity, not accuracy)", file=sys.stderr)
    val, test = (FidelitySplit(s.x, _reference_labels(metric, outputs(s.x), config)) for s in (dataset.val, dataset.test))
    return replace(dataset, val=val, test=test, reference_labels=True)


def _reference_labels(metric, outputs: np.ndarray, config) -> np.ndarray:
    """The fp32 model's outputs as labels of `metric`; a ConfigError naming the output's shape when the metric cannot
    read them (top1 of a (t, n, classes) sequence output would take the sequence axis for the classes)."""
    from edgekd.core.errors import ConfigError

    try:
        return metric.labels_of(outputs)
    except ValueError as exc:
        shape = "(batch, " + ", ".join(str(d) for d in np.shape(outputs)[1:]) + ")"
        raise ConfigError(f"student.onnx '{config.student.onnx}': its output {shape} cannot be scored by task.metric "
                          f"{metric.name} ({exc}); choose another task.metric (--metric), or --output NAME for an output "
                          "the metric reads") from None


def _fingerprint(dataset: FidelityDataset) -> str:
    digest = hashlib.sha256()
    for split in (dataset.train, dataset.val, dataset.test):
        for name, array in sorted(split.x.items()) if isinstance(split.x, dict) else [("x", split.x)]:
            digest.update(name.encode() + np.ascontiguousarray(array).tobytes())
        digest.update(np.ascontiguousarray(split.y).tobytes())
    return digest.hexdigest()[:16]
