"""One outlier batch in the calibration draw sets minmax's ranges for the whole model (PP-OCRv4 rec in
benchmarks/third_party.py: minmax int8 dropped 53 points of ctc_accuracy on validation). Before any node is kept in float, the
fallback tries onnxruntime's moving-average minmax, a moving average of each batch's extremes as PyTorch's
MovingAverageMinMaxObserver keeps (quantize.calibrate_method moving-average), and searches from whichever calibration drops less."""
from __future__ import annotations

import math

import numpy as np
import pytest

from edgekd.core.errors import StageError
from edgekd.quant.fallback import FallbackBudget, quantize_with_fallback
from edgekd.quant.host import recipe_for_host
from edgekd.runtimes import load_profile

from .conftest import gemm_mlp

RECIPE = recipe_for_host(load_profile("x86-cpu").quantization).recipe


@pytest.fixture
def outlier_batch_model(tmp_path):
    """A 3-layer MLP; calibration rows are N(0, 1) but for one row scaled by 60 (one batch of 16): its activations set
    minmax's ranges tens of times wider than the rest. Labels are the fp32 model's own predictions."""
    rng = np.random.default_rng(0)
    weights = [rng.normal(0, 1 / math.sqrt(16), (64, 16)), rng.normal(0, 1 / math.sqrt(64), (64, 64)),
               rng.normal(0, 1 / math.sqrt(64), (10, 64))]
    biases = [np.zeros(len(w)) for w in weights]
    path = gemm_mlp(tmp_path / "mlp.onnx", weights, biases)
    calibration = rng.normal(0, 1, (512, 16)).astype(np.float32)
    calibration[300] *= 60.0  # in the 10th batch of 32: the first sets the moving average's start
    val = rng.normal(0, 1, (600, 16)).astype(np.float32)
    logits = val
    for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
        logits = logits @ w.T + b
        logits = np.maximum(logits, 0) if i < len(weights) - 1 else logits
    return path, calibration, val, logits.argmax(1)


def test_minmax_alone_misses_the_budget(outlier_batch_model, tmp_path):
    path, calibration, val_x, val_y = outlier_batch_model
    with pytest.raises(StageError, match="drops"):
        quantize_with_fallback(path, tmp_path / "int8.onnx", RECIPE, calibration, val_x, val_y,
                               FallbackBudget(max_drop=3.0, max_nodes=0), "minmax")


def test_the_moving_average_retry_meets_it_without_nodes_in_float(outlier_batch_model, tmp_path):
    path, calibration, val_x, val_y = outlier_batch_model
    budget = FallbackBudget(max_drop=3.0, max_nodes=0, retry_calibrations=("moving-average",))
    report = quantize_with_fallback(path, tmp_path / "int8.onnx", RECIPE, calibration, val_x, val_y, budget, "minmax")
    assert report.calibrate_method == "moving-average" and report.nodes_in_float == []
    assert report.val_drop <= 3.0 and report.calibrations_tried["moving-average"]["val_drop"] == report.val_drop
    assert report.to_json()["calibrate_method"] == "moving-average"


def test_a_first_calibration_within_budget_tries_nothing_else(outlier_batch_model, tmp_path):
    path, calibration, val_x, val_y = outlier_batch_model
    calibration = np.delete(calibration, 300, axis=0)  # no outlier: minmax is fine
    budget = FallbackBudget(max_drop=3.0, max_nodes=0, retry_calibrations=("moving-average",))
    report = quantize_with_fallback(path, tmp_path / "int8.onnx", RECIPE, calibration, val_x, val_y, budget, "minmax")
    assert report.calibrate_method == "minmax" and report.calibrations_tried == {}
