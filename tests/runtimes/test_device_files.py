"""The files a device loads, the .ort file and the OpenVINO IR, agree with the fp32 reference:
at least 99% of evaluation samples for float artifacts and 98% for int8."""
from __future__ import annotations

import pytest

from edgekd.core.metrics import fidelity, predict
from edgekd.runtimes import get_backend, load_profile
from edgekd.runtimes.ort import OrtSession

MIN_AGREEMENT = {"fp32": 0.99, "bf16": 0.99, "fp16": 0.99, "int8": 0.98}


def _source(tiny_model, precision):
    return tiny_model.int8 if precision == "int8" else tiny_model.fp32


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_ort_format_file_agrees_with_fp32(tiny_model, reference, tmp_path, precision):
    artifact = get_backend("ort-arm64").compile(_source(tiny_model, precision), precision, load_profile("arm64-cpu"),
                                                tmp_path, tiny_model.input_spec)
    assert "model.ort" in artifact.files
    assert artifact.notes["ort_format"]["saved_level"] == "ORT_ENABLE_BASIC"  # portable graph + runtime records
    assert (tmp_path / "model.ort").read_bytes()[4:8] == b"ORTM"  # flatbuffer identifier of the ORT format
    logits = predict(OrtSession(tmp_path / "model.ort", threads=1).run, tiny_model.eval_x)
    assert fidelity(logits, reference)["top1_agreement"] >= MIN_AGREEMENT[precision]


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16", "int8"])
def test_openvino_ir_agrees_with_fp32(tiny_model, reference, tmp_path, precision):
    profile = load_profile("intel-cpu")
    artifact = get_backend("openvino").compile(_source(tiny_model, precision), precision, profile, tmp_path,
                                               tiny_model.input_spec)
    assert {"model.xml", "model.bin"} <= set(artifact.files)
    config = artifact.runtime_options["config"]
    assert config["PERFORMANCE_HINT"] == "LATENCY" and "INFERENCE_PRECISION_HINT" in config
    logits = predict(get_backend("openvino").session(artifact, threads=1).run, tiny_model.eval_x)
    assert fidelity(logits, reference)["top1_agreement"] >= MIN_AGREEMENT[precision]


def test_openvino_fp16_compresses_the_weights(tiny_model, tmp_path):
    backend, profile = get_backend("openvino"), load_profile("intel-cpu")
    fp32 = backend.compile(tiny_model.fp32, "fp32", profile, tmp_path / "fp32", tiny_model.input_spec)
    fp16 = backend.compile(tiny_model.fp32, "fp16", profile, tmp_path / "fp16", tiny_model.input_spec)
    assert fp16.runtime_options["compress_to_fp16"] and not fp32.runtime_options["compress_to_fp16"]
    assert (tmp_path / "fp16" / "model.bin").stat().st_size < 0.6 * (tmp_path / "fp32" / "model.bin").stat().st_size


def test_ort_file_carries_runtime_optimization_records_for_int8(tiny_model, tmp_path):
    """A minimal onnxruntime build cannot fuse QDQ itself; the records let it replay the fusions."""
    import onnxruntime as ort

    from edgekd.runtimes.ort import save_ort_format

    save_ort_format(tiny_model.int8, tmp_path / "runtime.ort")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(tmp_path / "basic.ort")
    options.add_session_config_entry("session.save_model_format", "ORT")
    ort.InferenceSession(str(tiny_model.int8), options, providers=["CPUExecutionProvider"])
    assert (tmp_path / "runtime.ort").stat().st_size > (tmp_path / "basic.ort").stat().st_size


def test_ort_file_saved_on_x86_replays_the_int8_convolutions_arm_runs(tiny_model, tmp_path):
    """The arm64 recipe's S8S8 QDQ convolutions are fused (QLinearConv) on ARM; an x86 build machine does not
    fuse int8-activation QDQ by default, so the .ort file must be saved with ARM's setting. Opened as its
    notes say, it then runs no convolution in float."""
    import json

    import onnxruntime as ort

    from edgekd.quant.host import recipe_for_host
    from edgekd.runtimes.ptq import quantize_qdq

    profile = load_profile("arm64-cpu")
    s8s8 = quantize_qdq(tiny_model.fp32, tmp_path / "s8s8.onnx", recipe_for_host(profile.quantization).recipe,
                        tiny_model.eval_x[:64])
    artifact = get_backend("ort-arm64").compile(s8s8, "int8", profile, tmp_path / "arm64", tiny_model.input_spec)
    options = ort.SessionOptions()
    options.enable_profiling, options.profile_file_prefix = True, str(tmp_path / "profile")
    for key, value in artifact.notes["ort_format"]["session_config"].items():
        options.add_session_config_entry(key, value)
    session = ort.InferenceSession(str(tmp_path / "arm64" / "model.ort"), options, providers=["CPUExecutionProvider"])
    session.run(None, {session.get_inputs()[0].name: tiny_model.eval_x[:4]})
    trace = json.loads(open(session.end_profiling(), encoding="utf-8").read())
    kernels = {event["args"]["op_name"] for event in trace if event.get("cat") == "Node" and "op_name" in event.get("args", {})}
    assert "QLinearConv" in kernels and "Conv" not in kernels, kernels
