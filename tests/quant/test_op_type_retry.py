"""onnxruntime's default op set quantizes every Add, Mul, Clip and Sigmoid between the layers with weights. PP-OCRv4
rec (benchmarks/results/op_type_retry.md) lost 14 points of CTC accuracy that way and none with only its Conv and MatMul layers
quantized; keeping six nodes in float could not undo a loss spread over a hundred elementwise nodes. So before the
node search, the fallback tries the same calibration with the weighted op types alone (quant/fallback.py)."""
from __future__ import annotations

import numpy as np
import pytest

from edgekd.core.errors import StageError
from edgekd.quant.fallback import WEIGHTED_OP_TYPES, FallbackBudget, quantize_with_fallback
from edgekd.quant.host import recipe_for_host
from edgekd.runtimes import load_profile
from edgekd.runtimes.ptq import quantized_nodes

RECIPE = recipe_for_host(load_profile("x86-cpu").quantization).recipe


def _offset_model(path):
    """Gemm -> Add(+500) -> Add(-500) -> Gemm. onnxruntime's ranges always hold 0, so the first Add's int8 output
    has a step of about 2 where the hidden values are about 1: quantizing that Add wipes the signal out."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w0, w1 = rng.normal(0, 0.25, (32, 16)), rng.normal(0, 0.25, (10, 32))
    inits = [numpy_helper.from_array(a.astype(np.float32), n) for a, n in
             ((w0, "w0"), (np.zeros(32), "b0"), (w1, "w1"), (np.zeros(10), "b1"),
              (np.array(500.0), "up"), (np.array(-500.0), "down"))]
    nodes = [helper.make_node("Gemm", ["input", "w0", "b0"], ["h"], name="fc0", transB=1),
             helper.make_node("Add", ["h", "up"], ["shifted"], name="shift_up"),
             helper.make_node("Add", ["shifted", "down"], ["back"], name="shift_down"),
             helper.make_node("Gemm", ["back", "w1", "b1"], ["logits"], name="fc1", transB=1)]
    graph = helper.make_graph(nodes, "offset", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 16])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.save(model, str(path))
    x = np.random.default_rng(1).normal(0, 1, (700, 16)).astype(np.float32)
    labels = (x @ w0.T @ w1.T).argmax(1)
    return path, x[:200], x[200:], labels[200:]


@pytest.fixture
def offset_model(tmp_path):
    return _offset_model(tmp_path / "offset.onnx")


def test_the_default_op_set_misses_the_budget(offset_model, tmp_path):
    path, calibration, val_x, val_y = offset_model
    with pytest.raises(StageError, match="drops"):
        quantize_with_fallback(path, tmp_path / "int8.onnx", RECIPE, calibration, val_x, val_y,
                               FallbackBudget(max_drop=2.0, max_nodes=0), "minmax")


def test_the_weighted_op_types_alone_meet_it_and_are_recorded(offset_model, tmp_path):
    path, calibration, val_x, val_y = offset_model
    budget = FallbackBudget(max_drop=2.0, max_nodes=0, retry_op_types=WEIGHTED_OP_TYPES)
    report = quantize_with_fallback(path, tmp_path / "int8.onnx", RECIPE, calibration, val_x, val_y, budget, "minmax")
    assert report.val_drop <= 2.0 and not report.triggered and report.nodes_in_float == []
    assert report.op_types == list(WEIGHTED_OP_TYPES)
    assert report.op_types_tried["only Conv+ConvTranspose+Gemm+MatMul quantized, minmax calibration"]["val_drop"] == report.val_drop
    assert report.int8_val_drop == report.val_drop  # the drop the kept model makes, not the first one's
    kept = set(quantized_nodes(tmp_path / "int8.onnx"))
    assert {"fc0", "fc1"} <= kept and not kept & {"shift_up", "shift_down"}
    assert report.to_json()["op_types"] == list(WEIGHTED_OP_TYPES)


def test_a_give_up_names_the_op_type_retry(offset_model, tmp_path):
    path, calibration, val_x, val_y = offset_model
    budget = FallbackBudget(max_drop=-50.0, max_nodes=0, retry_op_types=WEIGHTED_OP_TYPES)  # nothing can pass
    with pytest.raises(StageError, match=r"only Conv\+ConvTranspose\+Gemm\+MatMul quantized"):
        quantize_with_fallback(path, tmp_path / "int8.onnx", RECIPE, calibration, val_x, val_y, budget, "minmax")


def test_a_model_within_budget_tries_no_other_op_set(offset_model, tmp_path):
    path, calibration, val_x, val_y = offset_model
    budget = FallbackBudget(max_drop=100.0, max_nodes=0, retry_op_types=WEIGHTED_OP_TYPES)
    report = quantize_with_fallback(path, tmp_path / "int8.onnx", RECIPE, calibration, val_x, val_y, budget, "minmax")
    assert report.op_types is None and report.op_types_tried == {}
    assert {"shift_up", "shift_down"} & set(quantized_nodes(tmp_path / "int8.onnx"))


def test_the_op_type_retry_tries_every_calibration_tried(offset_model, tmp_path):
    """The calibration that won over the whole op set is tried first, then the others, until one passes."""
    path, calibration, val_x, val_y = offset_model
    budget = FallbackBudget(max_drop=-50.0, max_nodes=0, retry_calibrations=("moving-average",), retry_op_types=WEIGHTED_OP_TYPES)
    with pytest.raises(StageError) as gave_up:  # nothing can pass: every combination is tried and named
        quantize_with_fallback(path, tmp_path / "int8.onnx", RECIPE, calibration, val_x, val_y, budget, "minmax")
    tried = gave_up.value.fallback_report.op_types_tried
    assert {label.rsplit(", ", 1)[1] for label in tried} == {"minmax calibration", "moving-average calibration"}
