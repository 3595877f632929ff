"""core/batch_layout.py: each input's samples found on its own batch axis, and put back there for the runtime."""
from __future__ import annotations

import numpy as np

from edgekd.core.batch_layout import SHARED, batch_axes, from_file, samples_first_shape, to_model


def test_the_batch_axis_is_the_first_dynamic_one_and_a_0d_input_is_shared():
    axes = batch_axes({"input": [None, None], "state": [2, None, 128], "sr": [], "x": ["batch", 3, -1, 0], "fixed": [1, 4]})
    assert axes == {"input": 0, "state": 1, "sr": SHARED, "x": 0, "fixed": 0}


def test_samples_first_inside_and_the_models_layout_outside():
    shapes = {"input": [None, 8], "state": [2, None, 4], "sr": []}
    arrays = {"input": np.arange(40, dtype=np.float32).reshape(5, 8),
              "state": np.arange(40, dtype=np.float32).reshape(2, 5, 4), "sr": np.array(16000, np.int64)}
    inside = from_file(arrays, shapes, "d.npz")
    assert inside["state"].shape == (5, 2, 4) and inside["sr"].tolist() == [16000] * 5
    fed = to_model({k: v[1:3] for k, v in inside.items()}, batch_axes(shapes))
    assert np.array_equal(fed["state"], arrays["state"][:, 1:3]) and np.array_equal(fed["input"], arrays["input"][1:3])
    assert isinstance(fed["sr"], np.ndarray) and fed["sr"].shape == () and fed["sr"] == 16000


class _StateSession:
    """A runtime session that declares nothing about its outputs (OpenVINO's has no output_batch_axes; Silero VAD's file
    says [?, ?, ?] for its next state) and returns the state as Silero does, [2, batch, hidden]."""

    def run_outputs(self, batch):
        rows = batch["input"].shape[0]
        return {"output": batch["input"][:, :1], "stateN": np.broadcast_to(batch["input"][None, :, :3], (2, rows, 3)).copy()}


def test_every_output_is_joined_on_its_own_batch_axis():
    """More samples than one call takes are joined where the samples are, not on axis 0."""
    from edgekd.core.metrics import predict_outputs

    x = {"input": np.arange(300 * 4, dtype=np.float32).reshape(300, 4)}
    outputs = predict_outputs(_StateSession(), x, batch_size=128)
    assert outputs["output"].shape == (300, 1) and outputs["stateN"].shape == (2, 300, 3)
    assert np.array_equal(outputs["stateN"][1], x["input"][:, :3])


def test_an_inputs_shape_as_edgekd_holds_it_has_the_samples_first():
    assert samples_first_shape([2, "batch", 128]) == ["batch", 2, 128]  # Silero VAD's recurrent state
    assert samples_first_shape([None, 512]) == [None, 512]
    assert samples_first_shape([]) == [None]  # a 0-d input shared by a call: one value per sample in eval.npz
    assert samples_first_shape([1, 3]) == [1, 3]  # all fixed: samples on the first axis
