import pytest

from edgekd.errors import StageError
from edgekd.quant.fallback import FallbackBudget, FallbackReport, pick_calibration, quantize_auto, quantize_with_fallback
from edgekd.quant.ptq import quantized_nodes
from edgekd.targets import load_profile

RECIPE = load_profile("x86-cpu").quantization


def test_fallback_keeps_planted_sensitive_layer_in_float(planted_sensitive_model, tmp_path):
    model, calib, val_x, val_y = planted_sensitive_model
    out = tmp_path / "int8.onnx"
    report = quantize_with_fallback(model, out, RECIPE, calib, val_x, val_y, FallbackBudget(max_drop=2.0))
    assert report.fp32_val_top1 == 1.0
    assert report.triggered and report.int8_val_drop > 30  # fully int8, the small features are lost
    assert report.sensitivity[0]["node"] == "fc0"  # the layer reading the huge-range input ranks first
    assert report.nodes_in_float == ["fc0"]
    assert report.val_drop <= 2.0
    assert "fc0" not in quantized_nodes(out) and "fc1" in quantized_nodes(out)  # the rest stays int8


def test_fallback_not_triggered_within_budget(planted_sensitive_model, tmp_path):
    model, calib, val_x, val_y = planted_sensitive_model
    sane = val_x.copy()
    sane[:, 15] = 0.0
    calib = calib.copy()
    calib[:, 15] = 0.0
    report = quantize_with_fallback(model, tmp_path / "int8.onnx", RECIPE, calib, sane, val_y, FallbackBudget(max_drop=2.0))
    assert not report.triggered and report.nodes_in_float == [] and report.sensitivity == []
    assert set(quantized_nodes(tmp_path / "int8.onnx")) == {"fc0", "fc1"}


def test_fallback_gives_up_naming_what_it_tried(planted_sensitive_model, tmp_path):
    model, calib, val_x, val_y = planted_sensitive_model
    with pytest.raises(StageError, match=r"x86-vnni-u8s8.*max_drop 0\.001.*\(fc0\).*max_fallback_nodes"):
        quantize_with_fallback(model, tmp_path / "int8.onnx", RECIPE, calib, val_x, val_y,
                               FallbackBudget(max_drop=0.001, max_nodes=1))


def _report(top1, nodes=()):
    return FallbackReport(1.0, top1, 0.0, 1.0, triggered=bool(nodes), val_top1=top1, nodes_in_float=list(nodes))


def test_pick_calibration_prefers_accuracy_then_fewer_float_nodes_then_cheaper_method():
    assert pick_calibration({"entropy": _report(0.9), "minmax": _report(0.9), "percentile": _report(0.9)}) == "minmax"
    assert pick_calibration({"entropy": _report(0.91), "minmax": _report(0.9)}) == "entropy"
    assert pick_calibration({"minmax": _report(0.9, ["fc0"]), "percentile": _report(0.9)}) == "percentile"


def test_auto_calibration_records_every_method(planted_sensitive_model, tmp_path):
    model, calib, val_x, val_y = planted_sensitive_model
    chosen, tried = quantize_auto(model, tmp_path / "int8.onnx", RECIPE, calib, val_x, val_y, FallbackBudget(max_drop=2.0))
    assert set(tried) == {"minmax", "percentile", "entropy"} and chosen in tried
    assert all(isinstance(r, FallbackReport) and r.val_drop <= 2.0 for r in tried.values())
    assert quantized_nodes(tmp_path / "int8.onnx")
