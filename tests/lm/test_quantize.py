from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from edgekd.runtimes.decoder_quantize import gemm_as_matmul  # noqa: E402


def _graph(trans_b: int, bias: bool):
    rng = np.random.default_rng(0)
    weight = rng.normal(size=(6, 4) if trans_b else (4, 6)).astype(np.float32)
    tied = rng.normal(size=(5, 6)).astype(np.float32)  # used as Transpose(tied), like GPT-2's output layer
    inits = [numpy_helper.from_array(weight, "W"), numpy_helper.from_array(tied, "E"), numpy_helper.from_array(np.arange(6, dtype=np.float32), "C")]
    nodes = [helper.make_node("Gemm", ["x", "W", "C"] if bias else ["x", "W"], ["h"], transB=trans_b),
             helper.make_node("Transpose", ["E"], ["Et"], perm=[1, 0]),
             helper.make_node("MatMul", ["h", "Et"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 5])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def _run(model, x):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


@pytest.mark.parametrize("trans_b, bias", [(0, False), (1, True), (0, True)])
def test_gemm_and_transposed_weights_become_matmuls_with_the_same_outputs(trans_b, bias):
    model = _graph(trans_b, bias)
    x = np.random.default_rng(1).normal(size=(3, 4)).astype(np.float32)
    expected = _run(model, x)
    rewritten = gemm_as_matmul(_graph(trans_b, bias))
    onnx.checker.check_model(rewritten)
    ops = [node.op_type for node in rewritten.graph.node]
    assert "Gemm" not in ops and ops.count("MatMul") == 2 and ops.count("Add") == int(bias)
    weights = {init.name for init in rewritten.graph.initializer}
    matmul_weights = [node.input[1] for node in rewritten.graph.node if node.op_type == "MatMul"]
    assert all(name in weights for name in matmul_weights)  # constants, as the quantizers need
    assert np.allclose(_run(rewritten, x), expected, atol=1e-5)
