"""Calibration holds one batch of activations at a time: onnxruntime's calibrators keep every intermediate tensor of
every batch they get in one collect_data call, which for 256 images at 3x224x224 was gigabytes. quantize_qdq hands
them one batch per call (CalibStridedMinMax), and the ranges are the same as from one call with all of them."""
import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from onnxruntime.quantization import calibrate

from edgekd.quant.ptq import quantize_qdq
from edgekd.runtimes.profiles import QuantRecipe

from .conftest import gemm_mlp

SAMPLES, BATCH = 128, 32  # quantize_qdq's calibration batch


@pytest.fixture
def mlp(tmp_path):
    rng = np.random.default_rng(0)
    weights = [rng.normal(0, 0.4, (32, 12)), rng.normal(0, 0.4, (10, 32))]
    path = gemm_mlp(tmp_path / "mlp.onnx", weights, [rng.normal(0, 0.1, w.shape[0]) for w in weights])
    return path, rng.normal(0, 1, (SAMPLES, 12)).astype(np.float32)


def _count_batches_per_call(monkeypatch, calibrator_class) -> list[int]:
    """Batches each collect_data call of `calibrator_class` reads from its data reader."""
    calls = []
    original = calibrator_class.collect_data

    def collect_data(self, reader):
        seen = [0]
        get_next = reader.get_next

        def counted():
            batch = get_next()
            seen[0] += batch is not None
            return batch

        reader.get_next = counted
        try:
            return original(self, reader)
        finally:
            del reader.get_next
            calls.append(seen[0])

    monkeypatch.setattr(calibrator_class, "collect_data", collect_data)
    return calls


@pytest.mark.parametrize("method, calibrator", [("minmax", calibrate.MinMaxCalibrater),
                                                ("percentile", calibrate.HistogramCalibrater),
                                                ("entropy", calibrate.HistogramCalibrater)])
def test_each_calibrator_call_sees_one_batch(mlp, tmp_path, monkeypatch, method, calibrator):
    model, samples = mlp
    calls = _count_batches_per_call(monkeypatch, calibrator)

    quantize_qdq(model, tmp_path / "int8.onnx", QuantRecipe(name="r"), samples, calibrate_method=method)

    assert calls and max(calls) == 1, f"batches per collect_data call: {calls}"
    assert sum(calls) == SAMPLES // BATCH  # every batch calibrated, once


def _scales(path) -> dict[str, float]:
    graph = onnx.load(str(path)).graph
    return {i.name: float(numpy_helper.to_array(i)) for i in graph.initializer if i.name.endswith("_scale") and i.dims == []}


def test_batch_by_batch_ranges_equal_one_pass_ranges(mlp, tmp_path, monkeypatch):
    """Min/max merged over batches is the min/max of all: the int8 model is the one a single pass makes."""
    from edgekd.quant import ptq

    model, samples = mlp
    streamed = quantize_qdq(model, tmp_path / "streamed.onnx", QuantRecipe(name="r"), samples, calibrate_method="minmax")
    monkeypatch.setattr(ptq, "STRIDED", {})
    one_pass = quantize_qdq(model, tmp_path / "one-pass.onnx", QuantRecipe(name="r"), samples, calibrate_method="minmax")

    assert _scales(streamed) and _scales(streamed) == _scales(one_pass)
