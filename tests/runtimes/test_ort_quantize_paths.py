"""static_int8_bert runs onnxruntime's pre-processing inside a scratch folder (so that its dumps never land in the
user's project): a relative model path, as `edgekd run`'s default output folder runs/NAME gives, must still name the
caller's file (new-user trial: every text run with a relative --out ended in FileNotFoundError at quantize)."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

pytest.importorskip("onnxruntime")


def _token_matmul(path) -> None:
    """input_ids (int64) -> Cast -> MatMul with a constant weight -> logits: the op the text recipe quantizes."""
    ids = helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", 4])
    logits = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3])
    weight = numpy_helper.from_array(np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32), "W")
    nodes = [helper.make_node("Cast", ["input_ids"], ["x"], to=TensorProto.FLOAT),
             helper.make_node("MatMul", ["x", "W"], ["logits"])]
    model = helper.make_model(helper.make_graph(nodes, "m", [ids], [logits], [weight]), opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def test_a_relative_model_path_is_the_callers_file(tmp_path, monkeypatch):
    from edgekd.runtimes.ort_quantize import static_int8_bert

    (tmp_path / "runs" / "text").mkdir(parents=True)
    _token_matmul(tmp_path / "runs" / "text" / "student-fp32.onnx")
    monkeypatch.chdir(tmp_path)
    batches = [{"input_ids": np.random.default_rng(i).integers(0, 9, size=(2, 4))} for i in range(3)]
    out = static_int8_bert("runs/text/student-fp32.onnx", "runs/text/student-int8.onnx", batches, ["input_ids"],
                           reduce_range=False)
    model = onnx.load(str(tmp_path / out))
    assert any(node.op_type == "QuantizeLinear" for node in model.graph.node)
