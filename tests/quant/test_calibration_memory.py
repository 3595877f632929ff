"""Calibration holds one batch of activations at a time: onnxruntime's calibrators keep every intermediate tensor of
every batch they get in one collect_data call, which for 256 images at 3x224x224 was gigabytes. quantize_qdq hands
them one batch per call (CalibStridedMinMax), and the ranges are the same as from one call with all of them."""
import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from onnxruntime.quantization import calibrate

from edgekd.runtimes.profiles import QuantRecipe
from edgekd.runtimes.ptq import quantize_qdq

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
    from edgekd.runtimes import ptq

    model, samples = mlp
    streamed = quantize_qdq(model, tmp_path / "streamed.onnx", QuantRecipe(name="r"), samples, calibrate_method="minmax")
    monkeypatch.setattr(ptq, "STRIDED", {})
    one_pass = quantize_qdq(model, tmp_path / "one-pass.onnx", QuantRecipe(name="r"), samples, calibrate_method="minmax")

    assert _scales(streamed) and _scales(streamed) == _scales(one_pass)


def _pooling_model(path, size: int):
    """GlobalAveragePool -> Gemm over [batch, 3, size, size] images."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(0)
    nodes = [helper.make_node("GlobalAveragePool", ["input"], ["pooled"], name="pool"),
             helper.make_node("Flatten", ["pooled"], ["flat"], name="flat"),
             helper.make_node("Gemm", ["flat", "w", "b"], ["logits"], name="fc", transB=1)]
    inits = [numpy_helper.from_array(rng.normal(0, 1, (10, 3)).astype(np.float32), "w"),
             numpy_helper.from_array(np.zeros(10, np.float32), "b")]
    graph = helper.make_graph(nodes, "pool", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, size, size])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.save(model, str(path))
    return path


def test_calibration_batches_of_large_images_are_small(tmp_path, monkeypatch):
    """The calibrator's model outputs every intermediate tensor: a batch of 224x224 images holds all of a CNN's
    activations at once, so such batches are a few images (ptq.CALIBRATION_BYTES), not 32."""
    from edgekd.runtimes.ptq import CALIBRATION_BYTES

    model = _pooling_model(tmp_path / "pool.onnx", 224)
    samples = np.random.default_rng(0).uniform(0, 1, (24, 3, 224, 224)).astype(np.float32)
    rows = []
    original = calibrate.MinMaxCalibrater.collect_data

    def collect_data(self, reader):
        rows.extend(len(batch["input"]) for batch in reader._batches)
        return original(self, reader)

    monkeypatch.setattr(calibrate.MinMaxCalibrater, "collect_data", collect_data)
    quantize_qdq(model, tmp_path / "int8.onnx", QuantRecipe(name="r"), samples, calibrate_method="minmax")

    assert rows and max(rows) * samples[0].nbytes <= CALIBRATION_BYTES
