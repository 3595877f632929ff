"""A fidelity task's data: the npz's arrays as the model takes them, split by the seed, labels in the metric's format."""
from __future__ import annotations

import numpy as np
import pytest

from edgekd.core.errors import DataError
from edgekd.pipeline.config import validate_config
from edgekd.tasks.fidelity_data import load_fidelity_dataset


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
    assert data.input_shape == (4,) and data.measured == "mask_iou against the labels"
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


def _silero_like(path, hidden=16):
    """benchmarks' tiny VAD graph declared as Silero VAD's file is: no dimension named, the recurrent state
    [2, ?, hidden] (samples on axis 1), `sr` 0-d, and the next state [?, ?, ?]."""
    import onnx

    from benchmarks.helpers import tiny_graphs

    model = onnx.load(str(tiny_graphs.tiny_vad(path, hidden=hidden)))
    for value in [*model.graph.input, *model.graph.output]:
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param or value.name == "stateN":
                dim.Clear()
    onnx.save(model, str(path))
    return path


def _vad_arrays(count=30, hidden=16, sr=np.array(16000, np.int64)):
    rng = np.random.default_rng(0)
    return {"input": rng.normal(size=(count, 512)).astype(np.float32),
            "state": rng.normal(size=(2, count, hidden)).astype(np.float32), "sr": sr,
            "y": (np.arange(count) % 2).astype(np.int64)}


def test_a_recurrent_state_and_a_0d_input_are_read_in_the_models_layout(tmp_path):
    model = _silero_like(tmp_path / "m.onnx")
    arrays = _vad_arrays()
    np.savez(tmp_path / "d.npz", **arrays)
    data = load_fidelity_dataset(_config(tmp_path / "d.npz", "speech_f1"), tmp_path)
    assert model.is_file() and len(data.train) + len(data.val) + len(data.test) == 30
    for split in (data.val, data.test):
        rows = [int(np.flatnonzero((arrays["input"] == row).all(1))[0]) for row in split.x["input"]]
        assert np.array_equal(split.x["state"], np.moveaxis(arrays["state"][:, rows], 1, 0))  # samples first inside
        assert (split.x["sr"] == 16000).all() and np.array_equal(split.y, arrays["y"][rows])


@pytest.mark.parametrize(("change", "message"), [
    ({"state": np.zeros((30, 2, 16), np.float32)}, r"'state' \(30, 2, 16\) holds 2 samples on axis 1, its batch axis"),
    ({"state": np.zeros((2, 30), np.float32)}, r"'state' has shape \(2, 30\), but the model's input 'state' has 3 "),
    ({"sr": np.arange(30, dtype=np.int64)}, r"'sr' \(30,\): the model's input 'sr' is 0-d"),
])
def test_an_input_whose_samples_cannot_be_found_is_named_in_one_line(tmp_path, change, message):
    _silero_like(tmp_path / "m.onnx")
    np.savez(tmp_path / "d.npz", **{**_vad_arrays(), **change})
    with pytest.raises(DataError, match=message):
        load_fidelity_dataset(_config(tmp_path / "d.npz", "speech_f1"), tmp_path)


def test_a_model_with_a_recurrent_state_ships(tmp_path):
    """Silero VAD's layout end to end: calibration, the int8 model, every output against fp32's (the next state joined
    on its own batch axis) and the bundle."""
    from edgekd import api

    model = _silero_like(tmp_path / "m.onnx")
    np.savez(tmp_path / "d.npz", **_vad_arrays(60))
    api.ship(model, tmp_path / "d.npz", targets=["x86-cpu"], out=tmp_path / "run", metric="speech_f1", max_drop=100.0)
    assert (tmp_path / "run" / "bundle" / "x86-cpu" / "manifest.json").is_file()
