"""The door to onnxruntime for code outside runtimes/ (runtimes.ort.open_session): only the thread counts given
are set, onnxruntime's defaults otherwise, from a file or serialized bytes; and the door to OpenVINO's Core."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from edgekd.runtimes.ort import open_session  # noqa: E402


@pytest.fixture(scope="module")
def doubler(tmp_path_factory):
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])
    graph = helper.make_graph([helper.make_node("Add", ["x", "x"], ["y"])], "doubler", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path_factory.mktemp("door") / "doubler.onnx"
    onnx.save(model, str(path))
    return path


def _threads(session) -> tuple[int, int]:
    options = session.get_session_options()
    return options.intra_op_num_threads, options.inter_op_num_threads


def test_only_the_thread_counts_given_are_set(doubler):
    assert _threads(open_session(doubler)) == (0, 0)  # onnxruntime's own choice
    assert _threads(open_session(doubler, threads=2)) == (2, 0)
    assert _threads(open_session(doubler, threads=2, inter_threads=1)) == (2, 1)
    assert open_session(doubler).get_providers() == ["CPUExecutionProvider"]


def test_a_file_path_and_serialized_bytes_open_the_same_model(doubler):
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    from_path = open_session(str(doubler)).run(None, {"x": x})[0]
    from_bytes = open_session(doubler.read_bytes()).run(None, {"x": x})[0]
    np.testing.assert_array_equal(from_path, 2 * x)
    np.testing.assert_array_equal(from_bytes, 2 * x)


def test_openvino_core_reads_the_file(doubler):
    pytest.importorskip("openvino")
    from edgekd.runtimes.openvino import openvino_core

    model = openvino_core().read_model(str(doubler))
    assert [port.get_any_name() for port in model.inputs] == ["x"]
