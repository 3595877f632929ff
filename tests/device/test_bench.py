"""`edgekd bench` on the device writes the gate thresholds the pipeline applied, so `edgekd gate` on
its report judges by the same limits as the pipeline's gate stage."""
from __future__ import annotations

import json

import numpy as np
import pytest

from edgekd import api
from edgekd.device.bundle import bundle_thresholds, sealed


def _with_recorded_gate(bundle, gate: dict):
    """The bundle as the compile stage now writes it: the pipeline's gate section in manifest.json."""
    manifest_path = bundle / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["gate"] = gate
    manifest_path.write_text(json.dumps(sealed(manifest)))
    return bundle


def test_device_report_uses_the_pipelines_thresholds_not_the_profiles(tiny_bundle, tmp_path):
    pipeline_gate = {"reference": "student_fp32", "max_drop": 2.0, "drop_type": "absolute", "min_speedup": None,
                     "max_size_kb": None, "allow_empty": False}
    bundle = _with_recorded_gate(tiny_bundle, pipeline_gate)  # the profile in the bundle says max_drop 1.0
    report = api.bench(bundle, runs=3, min_seconds=0, warmup_runs=1, warmup_seconds=0, rounds=1, batch_sizes=(1,),
                       memory=False)
    assert report["gate"] == pipeline_gate
    (tmp_path / "report.json").write_text(json.dumps(report))
    [check] = api.gate(tmp_path / "report.json")
    # the report's limits are the pipeline's; the row's own profile, stricter (1.0), still counts for its device, as in
    # the pipeline's selection and gate (session 11: a profile's limits were recorded and never checked)
    assert "(limit 1 points, target " in check.reason and "'s gate.max_drop)" in check.reason  # said whose it is
    assert "(limit 0.5 points)" in api.gate(tmp_path / "report.json", max_drop=0.5)[0].reason  # stricter still: the flag's


def test_bundles_without_a_recorded_gate_keep_the_profiles_thresholds(tmp_path):
    assert bundle_thresholds({"profile": {"gate": {"max_drop": 0.5}}}, tmp_path)["max_drop"] == 0.5
    assert bundle_thresholds({"gate": {"max_drop": 2.0}, "profile": {"gate": {"max_drop": 0.5}}}, tmp_path)["max_drop"] == 2.0


@pytest.mark.parametrize("key", ["max_drop", "min_speedup", "max_size_kb"])
def test_a_non_finite_limit_in_a_bundles_gate_is_refused_naming_the_key(tiny_bundle, key):
    """Every threshold a bundle carries is checked by the one Thresholds model: nan would pass or fail everything."""
    from click.testing import CliRunner

    from edgekd.cli import main
    from tests.faults.helpers import assert_one_line_error

    bundle = _with_recorded_gate(tiny_bundle, {"reference": "student_fp32", key: float("nan")})
    assert "NaN" in (bundle / "manifest.json").read_text()
    result = CliRunner().invoke(main, ["bench", str(bundle), "--runs", "1", "--no-memory"])
    assert_one_line_error(result, str(bundle / "manifest.json"), f"gate.{key}: must be a finite number")


def test_a_bundle_shipping_int8_with_nodes_in_float_is_named_so_in_the_report(tiny_bundle):
    """The compile stage records which candidate shipped; the device report names the row after it, as the build
    machine's report does, so `edgekd compare` matches them and the user sees nodes were kept in float."""
    manifest_path = tiny_bundle / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["quantization"] = {"recipe": {"name": "x86-vnni-u8s8", "nodes_in_float": ["fc0"]}, "variant": "int8-fallback"}
    manifest_path.write_text(json.dumps(sealed(manifest)))
    report = api.bench(tiny_bundle, runs=3, min_seconds=0, warmup_runs=1, warmup_seconds=0, rounds=1, batch_sizes=(1,),
                       memory=False)
    assert [row["artifact"] for row in report["rows"]] == ["x86-cpu/int8-fallback"]


def _two_input_bundle(root, backend: str = "ort"):
    """logits = (pixels @ W) * gain: a model fed two named inputs, its eval.npz one array per input name."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from edgekd.device.bundle import write_bundle
    from edgekd.pipeline.stages.as_given import onnx_inputs
    from edgekd.runtimes.base import Artifact

    rng = np.random.default_rng(0)
    weight = rng.normal(size=(16, 5)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["pixels", "W"], ["scores"]), helper.make_node("Mul", ["scores", "gain"], ["logits"])],
        "two", [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["batch", 16]),
                helper.make_tensor_value_info("gain", TensorProto.FLOAT, ["batch", 1])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 5])],
        initializer=[numpy_helper.from_array(weight, "W")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    (root / "model").mkdir(parents=True)
    onnx.save(model, str(root / "model" / "model.onnx"))
    x = {"pixels": rng.normal(size=(40, 16)).astype(np.float32), "gain": rng.uniform(0.5, 2, size=(40, 1)).astype(np.float32)}
    reference = (x["pixels"] @ weight) * x["gain"]
    y = reference.argmax(1)
    y[:4] = (y[:4] + 1) % 5  # four wrong labels: top-1 36/40
    artifact = Artifact("ort", "fp32", root / "model", "model.onnx", ["model.onnx"], runtime_options={"threads": 1})
    info = {"target": "x86-cpu", "run": "two", "inputs": onnx_inputs(root / "model" / "model.onnx"),
            "profile": {"gate": {"max_drop": 1.0}}}
    return write_bundle(root / "bundle" / "x86-cpu", artifact, x, y, reference, info), x, y, reference


def test_a_model_with_two_named_inputs_is_benched_from_named_arrays(tmp_path):
    from edgekd.device.bench import bench_bundles
    from edgekd.device.latency import LatencySpec

    bundle, _x, _y, _reference = _two_input_bundle(tmp_path)
    with np.load(bundle / "eval.npz") as saved:
        assert set(saved.files) == {"pixels", "gain", "y", "reference_logits"}
    report = bench_bundles(bundle, LatencySpec(warmup_runs=1, warmup_seconds=0, runs=5, min_seconds=0, rounds=1),
                           batch_sizes=(1, 4), memory=True)
    row = report["rows"][0]
    assert row["top1"] == pytest.approx(36 / 40) and row["fidelity"]["top1_agreement"] == 1.0
    assert row["fidelity"]["max_abs_error"] < 1e-4 and set(row["latency"]) == {"batch1", "batch4"}
    batch4 = row["latency"]["batch4"]
    assert batch4["throughput_ips"] > 1.5 * 1000 / batch4["mean_ms"]  # 4 samples a call, not 2 (the inputs)
    assert row["memory"]["peak_rss_mb"] > 0, row["memory"]


def test_named_arrays_that_do_not_fit_the_inputs_are_one_line(tmp_path):
    from edgekd.core.errors import ArtifactError
    from edgekd.device.bench import bench_bundles
    from edgekd.device.latency import LatencySpec

    bundle, x, y, reference = _two_input_bundle(tmp_path)
    np.savez(bundle / "eval.npz", pixels=x["pixels"][:, :12], gain=x["gain"], y=y, reference_logits=reference)
    manifest = json.loads((bundle / "manifest.json").read_text())
    from edgekd.core.fileio import sha256_of

    for record in manifest["files"]:
        if record["path"] == "eval.npz":
            record["sha256"] = sha256_of(bundle / "eval.npz")
    (bundle / "manifest.json").write_text(json.dumps(sealed(manifest)))
    with pytest.raises(ArtifactError, match=r"array 'pixels' is float32 \(40, 12\) but the model's input 'pixels' is float32 "
                                            r"\(batch, 16\)"):
        bench_bundles(bundle, LatencySpec(warmup_runs=1, warmup_seconds=0, runs=5, min_seconds=0, rounds=1), memory=False)


def test_openvino_takes_the_named_inputs_too(tmp_path):
    ov = pytest.importorskip("openvino")
    from edgekd.runtimes.openvino import OpenVinoSession

    _bundle, x, _y, reference = _two_input_bundle(tmp_path)
    ov.save_model(ov.convert_model(str(tmp_path / "model" / "model.onnx")), str(tmp_path / "m.xml"), compress_to_fp16=False)
    session = OpenVinoSession(tmp_path / "m.xml", {"INFERENCE_PRECISION_HINT": "f32"})
    assert np.allclose(session.run({name: array[:4] for name, array in x.items()}), reference[:4], atol=1e-5)
