"""The one contract every backend keeps, run against each registered backend.

Compile the tiny model, open a session, and match onnxruntime's CPU output. Backends whose
runtime or hardware is missing here skip with the reason (TensorRT without a CUDA GPU).
"""
from __future__ import annotations

import numpy as np
import pytest

from edgekd.core.metrics import fidelity, predict
from edgekd.runtimes import get_backend
from edgekd.runtimes.profiles import QuantRecipe, TargetProfile
from edgekd.runtimes.registry import backend_names

FLOAT_ATOL = {"fp32": 1e-3, "fp16": 5e-2, "bf16": 1e-1}


def _profile(backend: str) -> TargetProfile:
    precisions = ["fp32", "fp16", "int8"] if backend == "tensorrt" else ["fp32", "int8"]
    return TargetProfile(name=f"contract-{backend}", backend=backend, precisions=precisions, threads=1,
                         batch_sizes=[1, 8], quantization=QuantRecipe(name="u8s8"))


def _skip_unless_runnable(backend) -> None:
    if not backend.available():
        pytest.skip(backend.unavailable_reason())
    if backend.name == "tensorrt" and not backend.can_build_here():
        pytest.skip("tensorrt is installed but no CUDA GPU is visible: engines can only be built and run on one")


@pytest.fixture(params=backend_names())
def backend(request):
    backend = get_backend(request.param)
    _skip_unless_runnable(backend)
    return backend


def test_float_model_matches_onnxruntime_cpu(backend, tiny_model, reference, tmp_path):
    artifact = backend.compile(tiny_model.fp32, "fp32", _profile(backend.name), tmp_path / "fp32", tiny_model.input_spec)
    assert all((artifact.root / name).is_file() for name in artifact.files)
    got = predict(backend.session(artifact, threads=1).run, tiny_model.eval_x, batch_size=8)
    assert got.shape == reference.shape
    np.testing.assert_allclose(got, reference, atol=FLOAT_ATOL["fp32"], rtol=1e-3)


def test_int8_model_matches_onnxruntime_cpu(backend, tiny_model, reference, tmp_path):
    import onnxruntime as ort

    artifact = backend.compile(tiny_model.int8, "int8", _profile(backend.name), tmp_path / "int8", tiny_model.input_spec)
    got = predict(backend.session(artifact, threads=1).run, tiny_model.eval_x, batch_size=8)
    cpu = ort.InferenceSession(str(tiny_model.int8), providers=["CPUExecutionProvider"])
    ort_int8 = cpu.run(None, {"input": tiny_model.eval_x})[0]
    # Runtimes round int8 products differently, so the same QDQ file agrees closely, not bit-exactly.
    assert fidelity(got, ort_int8)["cosine"] > 0.999
    assert fidelity(got, reference)["top1_agreement"] >= 0.98


def test_unavailable_backend_names_its_install_hint(monkeypatch):
    backend = get_backend("openvino")
    monkeypatch.setattr(type(backend), "runtime_module", "no_such_runtime_module")
    assert not backend.available()
    assert "pip install 'edgekd[openvino]'" in backend.unavailable_reason()
