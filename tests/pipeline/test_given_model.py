"""The given model's inputs against the data: each mismatch one line naming the user's file and the fix."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from edgekd.core.errors import ConfigError
from edgekd.pipeline.given_model import given_input_spec


def _model(tmp_path, inputs: dict[str, list], name="m.onnx"):
    """An ONNX file with these float inputs (name: shape) whose output is the first."""
    first = next(iter(inputs))
    graph = helper.make_graph([helper.make_node("Identity", [first], ["out"])], "g",
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs.items()],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, inputs[first])])
    path = tmp_path / name
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def _data(sample_shape, image_folder=False, source="imagefolder"):
    x = np.zeros((4, *sample_shape), np.float32)
    return SimpleNamespace(name=source, train=SimpleNamespace(x=x), input_shape=tuple(sample_shape),
                           image_steps={"color": "rgb"} if image_folder else None)


@pytest.mark.parametrize("model_channels, data_channels, fix", [(1, 3, "data.color: gray (edgekd ship: --color gray)"),
                                                                (3, 1, "data.color: rgb")])
def test_an_image_folder_with_other_channels_names_data_color(tmp_path, model_channels, data_channels, fix):
    path = _model(tmp_path, {"x": ["b", model_channels, 8, 8]})
    with pytest.raises(ConfigError, match=f"student.onnx '{path}': the model's input 'x'") as error:
        given_input_spec(path, _data((data_channels, 8, 8), image_folder=True), "student.onnx", "data.path 'images'")
    assert fix in str(error.value) and "\n" not in str(error.value)


def test_an_npz_with_other_channels_gets_no_color_advice(tmp_path):
    path = _model(tmp_path, {"x": ["b", 1, 8, 8]})
    with pytest.raises(ConfigError) as error:
        given_input_spec(path, _data((3, 8, 8), source="npz"), "student.onnx", "data.path 'd.npz'")
    assert "data.color" not in str(error.value)


def test_a_model_of_several_inputs_fed_one_array_names_the_arrays_it_needs(tmp_path):
    path = _model(tmp_path, {"img": ["b", 1, 8, 8], "meta": ["b", 3]})
    with pytest.raises(ConfigError, match=r"data.path 'two_x.npz': the model in student.onnx '.*m.onnx' takes 2 inputs "
                                          r"\(img float32 \(b, 1, 8, 8\), meta float32 \(b, 3\)\) but the data gives one "
                                          r"array x; .*numpy.savez\(path, img=..., meta=..., y=...\)"):
        given_input_spec(path, _data((1, 8, 8), source="npz"), "student.onnx", "data.path 'two_x.npz'")


def test_a_fixed_batch_names_the_file_and_its_own_input_in_the_hint(tmp_path):
    path = _model(tmp_path, {"pixels": [1, 1, 8, 8]}, "digits_static.onnx")
    with pytest.raises(ConfigError, match=r"student.onnx '.*digits_static.onnx': .*dynamic_axes=\{'pixels': \{0: 'batch'\}\}"):
        given_input_spec(path, _data((1, 8, 8), source="npz"), "student.onnx", "data.path 'd.npz'")
