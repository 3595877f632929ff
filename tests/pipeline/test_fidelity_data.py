"""A fidelity task's data: the npz's arrays as the model takes them, split by the seed, labels in the metric's format."""
from __future__ import annotations

import numpy as np
import pytest

from edgekd.core.errors import DataError
from edgekd.pipeline.config import validate_config
from edgekd.pipeline.fidelity_data import load_fidelity_dataset


def _config(path, metric="mask_iou"):
    return validate_config({"student": {"onnx": "m.onnx"}, "data": {"source": "npz", "path": str(path)},
                            "task": {"metric": metric}})


def test_several_inputs_are_split_row_by_row_and_fed_as_they_are(tmp_path):
    frames = np.arange(40 * 4, dtype=np.float32).reshape(40, 4) * 300  # not rescaled, whatever the range
    ids = np.arange(40, dtype=np.int64)[:, None]
    labels = (np.arange(40)[:, None, None] % 2 * np.ones((40, 2, 2))).astype(np.uint8)
    np.savez(tmp_path / "d.npz", frames=frames, ids=ids, y=labels)
    data = load_fidelity_dataset(_config(tmp_path / "d.npz"), None)
    assert len(data.train) + len(data.val) + len(data.test) == 40
    for split in (data.val, data.test):
        rows = split.x["ids"][:, 0]
        assert np.array_equal(split.x["frames"], frames[rows]) and np.array_equal(split.y, labels[rows])
    assert (data.train.y == -1).all()  # the calibration split carries no labels
    assert data.input_shape == (4,) and data.measured == "top-1 against the labels"
    assert load_fidelity_dataset(_config(tmp_path / "d.npz"), None).fingerprint == data.fingerprint


@pytest.mark.parametrize(("arrays", "message"), [
    ({"a": np.zeros((10, 2)), "b": np.zeros((9, 2))}, r"different numbers of samples \({'a': 10, 'b': 9}\)"),
    ({"x": np.full((10, 2), np.nan)}, "'x' must be finite numbers, got float64 with NaN or Inf"),
    ({"x": np.zeros((2, 2))}, "'x' must hold at least 3 samples"),
    ({"y": np.zeros(10)}, "no array 'x'"),
])
def test_bad_arrays_are_one_line(tmp_path, arrays, message):
    np.savez(tmp_path / "d.npz", **arrays)
    with pytest.raises(DataError, match=message):
        load_fidelity_dataset(_config(tmp_path / "d.npz"), None)
