"""A quantizer that leaves every node in float (NNCF on Silero VAD's graph) wrote a file that shipped under the name
int8 whenever timing noise put it ahead of fp32. Such a file is no int8 candidate: the quantize stage says so and
the compile stage does not offer it."""
from __future__ import annotations

import warnings

import numpy as np
import onnx
from onnx import TensorProto, helper

from edgekd.runtimes.ptq import dequantize_count


def _float_only_model(path):
    """Neg -> Exp -> Flatten: no op that onnxruntime's quantizer takes."""
    nodes = [helper.make_node("Neg", ["x"], ["n"], name="neg"), helper.make_node("Exp", ["n"], ["e"], name="exp"),
             helper.make_node("Flatten", ["e"], ["logits"], name="flat")]
    graph = helper.make_graph(nodes, "float_only", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4, 1, 1])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.save(model, str(path))
    return path


def test_a_model_the_quantizer_leaves_in_float_gets_no_int8_candidate(tmp_path):
    from edgekd import api

    model = _float_only_model(tmp_path / "m.onnx")
    x = np.random.default_rng(0).normal(0, 1, (90, 4, 1, 1)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x, y=(-x[:, :, 0, 0]).argmax(1))  # labels of x as it is: data.normalize none
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        api.ship(model, tmp_path / "d.npz", targets=["x86-cpu"], out=tmp_path / "run", log=lambda _: None, normalize="none")
    assert any("quantized no node of the model" in str(w.message) for w in caught)
    manifest = (tmp_path / "run" / "manifest.json").read_text()
    assert '"dequantize_nodes": 0' in manifest
    selection = __import__("json").loads((tmp_path / "run" / "bundle" / "x86-cpu" / "manifest.json").read_text())["selection"]
    assert [row["precision"] for row in selection] == ["fp32"]


def test_dequantize_nodes_are_counted_inside_branches(tmp_path):
    """NNCF puts its Q/DQ inside Silero VAD's If branches: those count."""
    def branch(name):
        nodes = [helper.make_node("QuantizeLinear", ["v", "s", "z"], [f"{name}_q"]),
                 helper.make_node("DequantizeLinear", [f"{name}_q", "s", "z"], [f"{name}_out"])]
        return helper.make_graph(nodes, name, [], [helper.make_tensor_value_info(f"{name}_out", TensorProto.FLOAT, [1])])

    inits = [helper.make_tensor("v", TensorProto.FLOAT, [1], [1.0]), helper.make_tensor("s", TensorProto.FLOAT, [], [0.1]),
             helper.make_tensor("z", TensorProto.UINT8, [], [0])]
    node = helper.make_node("If", ["c"], ["out"], then_branch=branch("then"), else_branch=branch("else"))
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("c", TensorProto.BOOL, [])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(tmp_path / "if.onnx"))
    assert dequantize_count(tmp_path / "if.onnx") == 2
    assert dequantize_count(_float_only_model(tmp_path / "f.onnx")) == 0
