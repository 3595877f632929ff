"""A target whose runtime cannot convert the model at all ships its profile's fallback runtime, said in one line and
recorded (issue 34: OpenVINO cannot convert Silero VAD's nested If, and intel-cpu shipped nothing). The model here is a
real one OpenVINO refuses for Silero's reason (benchmarks/helpers/tiny_graphs.tiny_vad_branching), not a mock."""
from __future__ import annotations

import json

import numpy as np
import pytest

from edgekd.runtimes import load_profile

pytest.importorskip("openvino")

LINE = r"intel-cpu: OpenVINO cannot convert this model \(-- Conversion is failed for: Conv-13, ReduceMean-13\); " \
       r"shipping onnxruntime instead \(the x86-cpu target's candidates\)"


def _branching(path):
    from benchmarks.helpers import tiny_graphs

    return tiny_graphs.tiny_vad_branching(path)


def test_only_a_model_openvino_cannot_convert_moves_intel_cpu_to_onnxruntime(tmp_path):
    from benchmarks.helpers import tiny_graphs
    from edgekd.pipeline.target_runtime import resolve

    intel = load_profile("intel-cpu")
    converts = tiny_graphs.tiny_vad(tmp_path / "plain.onnx")
    assert resolve(intel, converts) == (intel, None)
    profile, note = resolve(intel, _branching(tmp_path / "branching.onnx"))
    x86 = load_profile("x86-cpu")
    assert (profile.name, profile.backend, profile.precisions, profile.quantization) == \
           ("intel-cpu", "ort", x86.precisions, x86.quantization)
    assert (profile.threads, profile.batch_sizes, profile.gate) == (intel.threads, intel.batch_sizes, intel.gate)  # the device's
    assert note.reason == "-- Conversion is failed for: Conv-13, ReduceMean-13" and note.refused_backend == "openvino"
    assert resolve(x86, tmp_path / "branching.onnx") == (x86, None)  # a profile without fallback is left as it is


def test_intel_cpu_ships_onnxruntime_with_the_reason_and_the_device_bench_reads_it(tmp_path):
    from edgekd import api
    from edgekd.device.bundle import load_bundle
    from tests.pipeline.test_fidelity_data import _vad_arrays

    model = _branching(tmp_path / "m.onnx")
    with pytest.raises(Exception, match="Conversion is failed for: Conv"):  # noqa: B017  OpenVINO refuses it: the premise
        __import__("openvino").convert_model(str(model))
    np.savez(tmp_path / "d.npz", **_vad_arrays(60))
    with pytest.warns(UserWarning, match=LINE):
        api.ship(model, tmp_path / "d.npz", targets=["intel-cpu"], out=tmp_path / "run", metric="speech_f1", max_drop=100.0)
    manifest, artifact = load_bundle(tmp_path / "run" / "bundle" / "intel-cpu")
    assert artifact.backend == "ort" and manifest["profile"]["backend"] == "ort"
    assert manifest["runtime_fallback"]["profile"] == "x86-cpu"
    assert "Conv-13" in manifest["runtime_fallback"]["reason"]
    run_manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    build = run_manifest["stages"]["compile"]["metrics"]["targets"]["intel-cpu"]
    assert build["backend"] == "ort" and build["runtime_fallback"]["backend"] == "ort"
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    rows = [row for row in report["rows"] if row["target"] == "intel-cpu"]
    assert rows and all("OpenVINO cannot convert" in row["runtime_fallback"] for row in rows)
    assert "OpenVINO cannot convert it: onnxruntime instead" in (tmp_path / "run" / "report.md").read_text()
    # the device's bench and gate take the bundle as it is, and keep saying why it is onnxruntime
    device = api.bench(tmp_path / "run" / "bundle" / "intel-cpu", runs=2, min_seconds=0.0, warmup_runs=1,
                       warmup_seconds=0.0, rounds=1, memory=False, batch_sizes=(1,))
    assert "OpenVINO cannot convert" in device["rows"][0]["runtime_fallback"]
    (tmp_path / "device.json").write_text(json.dumps(device))
    assert api.gate(tmp_path / "device.json", max_drop=100.0).passed
    # `edgekd compile BUNDLE --target intel-cpu` rebuilds it with the profile it shipped with, not OpenVINO's
    assert api.compile(tmp_path / "run" / "bundle" / "intel-cpu", "intel-cpu")["profile"]["backend"] == "ort"
