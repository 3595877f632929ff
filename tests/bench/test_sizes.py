from __future__ import annotations

from edgekd.bench.bundle import load_bundle
from edgekd.bench.sizes import gzip_size, parameter_count, size_on_disk


def test_size_gzip_and_parameters_of_a_bundle(tiny_bundle):
    _, artifact = load_bundle(tiny_bundle)
    assert size_on_disk(artifact) == (tiny_bundle / "model.onnx").stat().st_size
    assert 0 < gzip_size(artifact) < size_on_disk(artifact) * 1.1
    assert parameter_count(artifact) == 64 * 10 + 10


def test_int8_model_counts_the_same_parameters_as_fp32(tiny_bundle, tmp_path):
    """Scales and zero points of a QDQ model are not parameters."""
    import numpy as np
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

    from edgekd.targets.base import Artifact

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"x": np.random.default_rng(0).normal(size=(8, 1, 8, 8)).astype(np.float32)}])

        def get_next(self):
            return next(self.batches, None)

    quantize_static(str(tiny_bundle / "model.onnx"), str(tmp_path / "int8.onnx"), Reader(), quant_format=QuantFormat.QDQ,
                    per_channel=True)
    int8 = Artifact("ort", "int8", tmp_path, "int8.onnx", ["int8.onnx"])
    assert parameter_count(int8) == 64 * 10 + 10
