"""The arm64-cpu .ort conversion of an int8 model with a node kept in float (the accuracy-aware fallback's
nodes_to_exclude). Seen on PP-OCR's mobile cls: onnxruntime's WeightBiasQuantization re-quantized the float Conv
while saving the ORT format and wrote a bias DequantizeLinear that its own loader rejects ("The sum of input arg
count is not equal to size of input defs in node (Conv@16_bias_dq)")."""
from __future__ import annotations

import numpy as np

from edgekd.runtimes import get_backend, load_profile
from edgekd.runtimes.ptq import quantize_qdq


def _conv_chain(path, channels: int = 4) -> None:
    """input -> conv0 -> relu -> conv1 -> relu -> conv2: conv1 sits between two quantized convs."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits, nodes, current = [], [], "x"
    for i in range(3):
        inputs = 3 if i == 0 else channels
        inits += [numpy_helper.from_array(rng.normal(size=(channels, inputs, 3, 3)).astype(np.float32), f"w{i}"),
                  numpy_helper.from_array(rng.normal(size=channels).astype(np.float32), f"b{i}")]
        nodes.append(helper.make_node("Conv", [current, f"w{i}", f"b{i}"], [f"c{i}"], pads=[1, 1, 1, 1], name=f"conv{i}"))
        current = f"c{i}"
        if i < 2:
            nodes.append(helper.make_node("Relu", [current], [f"r{i}"], name=f"relu{i}"))
            current = f"r{i}"
    graph = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 8, 8])],
                              [helper.make_tensor_value_info(current, TensorProto.FLOAT, ["batch", channels, 8, 8])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))


def test_arm64_ort_file_of_an_int8_model_with_a_conv_kept_in_float(tmp_path):
    import onnxruntime as ort

    fp32 = tmp_path / "chain.onnx"
    _conv_chain(fp32)
    profile = load_profile("arm64-cpu")
    calibration = np.random.default_rng(1).normal(size=(8, 3, 8, 8)).astype(np.float32)
    int8 = quantize_qdq(fp32, tmp_path / "int8.onnx", profile.quantization, calibration, nodes_to_exclude=["conv1"])
    artifact = get_backend("ort-arm64").compile(int8, "int8", profile, tmp_path / "build")
    options = ort.SessionOptions()
    options.add_session_config_entry("session.load_model_format", "ORT")
    session = ort.InferenceSession(str(artifact.root / "model.ort"), options, providers=["CPUExecutionProvider"])
    out = session.run(None, {"x": calibration[:2]})[0]
    assert out.shape == (2, 4, 8, 8) and np.isfinite(out).all()


def test_a_conv_kept_in_float_stays_float_in_an_onnxruntime_session(tmp_path):
    """On x86 too, onnxruntime's WeightBiasQuantization turned the Conv the fallback kept in float into an int8
    QLinearConv inside the session: the fallback scored a model it did not mean to build. The file records the kept
    nodes and OrtSession opens it without that transformer."""
    import onnxruntime as ort

    from edgekd.runtimes.ort import FLOAT_NODES_KEY, OrtSession

    fp32 = tmp_path / "chain.onnx"
    _conv_chain(fp32)
    x = np.random.default_rng(1).normal(size=(8, 3, 8, 8)).astype(np.float32)
    recipe = load_profile("x86-cpu").quantization
    int8 = quantize_qdq(fp32, tmp_path / "int8.onnx", recipe, x, nodes_to_exclude=["conv1"])

    def plain(**kwargs):
        session = ort.InferenceSession(str(int8), providers=["CPUExecutionProvider"], **kwargs)
        return session, session.run(None, {"x": x})[0]

    opened, requantized = plain()
    assert opened.get_modelmeta().custom_metadata_map[FLOAT_NODES_KEY] == "conv1"
    _, kept_float = plain(disabled_optimizers=["WeightBiasQuantization"])
    assert not np.array_equal(requantized, kept_float)  # the transformer changes what conv1 computes
    ours = OrtSession(int8, threads=1)
    assert np.array_equal(ours.run(x), kept_float) and ours.options["disabled_optimizers"] == ["WeightBiasQuantization"]
    whole = quantize_qdq(fp32, tmp_path / "whole.onnx", recipe, x)  # nothing kept in float: onnxruntime's defaults
    assert "disabled_optimizers" not in OrtSession(whole, threads=1).options
