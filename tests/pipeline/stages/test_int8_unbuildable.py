"""A target whose runtime cannot take the int8 model ships its float candidate with the reason, instead of the whole
run failing (seen with Silero VAD: OpenVINO cannot convert NNCF's Q/DQ inside its If branches)."""
from __future__ import annotations

import numpy as np
import pytest

from edgekd.core.errors import ArtifactError
from edgekd.runtimes.openvino import OpenVinoBackend


def test_an_int8_model_the_runtime_cannot_build_leaves_the_float_candidate(tmp_path, monkeypatch):
    from edgekd import api
    from edgekd.device.bundle import load_bundle
    from tests.pipeline.test_fidelity_data import _silero_like, _vad_arrays

    pytest.importorskip("openvino")
    build = OpenVinoBackend.compile

    def int8_refused(self, onnx_path, precision, *args, **kwargs):
        if precision == "int8":
            raise ArtifactError(f"{onnx_path}: OpenVINO cannot convert it (-- Conversion is failed for: If-16)")
        return build(self, onnx_path, precision, *args, **kwargs)

    monkeypatch.setattr(OpenVinoBackend, "compile", int8_refused)
    model = _silero_like(tmp_path / "m.onnx")
    np.savez(tmp_path / "d.npz", **_vad_arrays(60))
    with pytest.warns(UserWarning, match="its int8 model .* does not build for openvino .*If-16.*float candidates compete"):
        api.ship(model, tmp_path / "d.npz", targets=["intel-cpu"], out=tmp_path / "run", metric="speech_f1", max_drop=100.0)
    _manifest, artifact = load_bundle(tmp_path / "run" / "bundle" / "intel-cpu")
    assert artifact.precision != "int8"
