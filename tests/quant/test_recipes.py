"""Per-target int8 recipes: the formats each device runs fastest, and where TensorRT wants its Q/DQ."""
import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from edgekd.core.errors import ConfigError
from edgekd.runtimes import load_profile
from edgekd.runtimes.profiles import QuantRecipe
from edgekd.runtimes.ptq import quantize_qdq

from .conftest import gemm_mlp

EXPECTED = {  # target: (activations, weights, reduce_range, symmetric activations)
    "x86-cpu": ("uint8", "int8", False, False),
    "x86-cpu-novnni": ("uint8", "int8", True, False),
    "arm64-cpu": ("int8", "int8", False, False),
    "nvidia-gpu": ("int8", "int8", False, True),
    "jetson-orin": ("int8", "int8", False, True),
}


@pytest.mark.parametrize("target", sorted(EXPECTED))
def test_recipe_formats(target):
    recipe = load_profile(target).quantization
    assert (recipe.activation_type, recipe.weight_type, recipe.reduce_range, recipe.symmetric_activations) == EXPECTED[target]
    assert recipe.per_channel and recipe.symmetric_weights and recipe.tool == "onnxruntime"


def test_intel_cpu_quantizes_with_nncf():
    recipe = load_profile("intel-cpu").quantization
    assert (recipe.tool, recipe.preset, recipe.bias_correction, recipe.reduce_range) == ("nncf", "performance", "fast", False)


# onnxruntime's placement tuned by hand for OpenVINO's CPU plugin: intel-cpu's recipe until NNCF replaced it
# (targets/intel-cpu.yaml says why); signed_input and extra_op_types remain recipe keys anyone can use.
OPENVINO_BY_HAND = QuantRecipe(name="openvino-u8s8", signed_input=True, extra_op_types=["ReduceMean"],
                               extra_options={"OpTypesToExcludeOutputQuantization": ["Gemm", "MatMul"]})


@pytest.fixture
def mlp3(tmp_path):
    rng = np.random.default_rng(0)
    weights = [rng.normal(0, 0.4, (32, 12)), rng.normal(0, 0.4, (32, 32)), rng.normal(0, 0.4, (10, 32))]
    path = gemm_mlp(tmp_path / "mlp3.onnx", weights, [rng.normal(0, 0.1, w.shape[0]) for w in weights])
    return path, rng.normal(0, 1, (128, 12)).astype(np.float32)


def _quantized(mlp3, tmp_path, target):
    model, calib = mlp3
    out = quantize_qdq(model, tmp_path / f"{target}.onnx", load_profile(target).quantization, calib)
    return onnx.load(str(out)).graph


def test_tensorrt_placement_is_symmetric_dedicated_and_input_only(mlp3, tmp_path):
    graph = _quantized(mlp3, tmp_path, "nvidia-gpu")
    consts = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    zero_points = [consts[n.input[2]] for n in graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear") and len(n.input) > 2]
    assert zero_points and all(z.dtype == np.int8 and not z.any() for z in zero_points)
    gemm_outputs = {o for n in graph.node if n.op_type == "Gemm" for o in n.output}
    assert not [n for n in graph.node if n.op_type == "QuantizeLinear" and n.input[0] in gemm_outputs]
    dq_outputs = [o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output]
    assert all(sum(o in n.input for n in graph.node) == 1 for o in dq_outputs)
    assert sum(n.op_type == "Gemm" and all(producer_is_dq(graph, i) for i in n.input[:2]) for n in graph.node) == 3


def producer_is_dq(graph, tensor):
    return any(n.op_type == "DequantizeLinear" and tensor in n.output for n in graph.node)


def test_reduced_range_weights_are_7_bit(mlp3, tmp_path):
    for target, bound in (("x86-cpu-novnni", 64), ("x86-cpu", 128)):
        graph = _quantized(mlp3, tmp_path, target)
        weights = [numpy_helper.to_array(i) for i in graph.initializer if i.data_type == onnx.TensorProto.INT8 and len(i.dims) == 2]
        assert len(weights) == 3
        peak = max(int(np.abs(w.astype(np.int32)).max()) for w in weights)
        assert bound // 2 < peak <= bound


def conv_pool_head(path):
    """Conv -> Relu -> ReduceMean (global average pooling, as torch exports it) -> Reshape -> Gemm."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(0, 0.5, (8, 1, 3, 3)).astype(np.float32), "cw"),
             numpy_helper.from_array(rng.normal(0, 0.1, 8).astype(np.float32), "cb"),
             numpy_helper.from_array(np.array([2, 3], np.int64), "axes"),
             numpy_helper.from_array(np.array([-1, 8], np.int64), "shape"),
             numpy_helper.from_array(rng.normal(0, 0.5, (10, 8)).astype(np.float32), "fw"),
             numpy_helper.from_array(np.zeros(10, np.float32), "fb")]
    nodes = [helper.make_node("Conv", ["input", "cw", "cb"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("ReduceMean", ["r", "axes"], ["m"], name="mean", keepdims=1),
             helper.make_node("Reshape", ["m", "shape"], ["flat"], name="flatten"),
             helper.make_node("Gemm", ["flat", "fw", "fb"], ["logits"], name="head", transB=1)]
    graph = helper.make_graph(nodes, "cnn", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 1, 8, 8])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("recipe", [load_profile("x86-cpu").quantization, OPENVINO_BY_HAND, load_profile("intel-cpu").quantization],
                         ids=["x86-cpu", "openvino-by-hand", "intel-cpu-nncf"])
def test_cpu_placement_keeps_pooling_int8_and_logits_float(tmp_path, recipe):
    """OpenVINO runs the pooled features int8 into the classifier only when ReduceMean's output is quantized;
    the logits, consumed by nothing int8, stay float. NNCF places them so by itself."""
    calib = np.random.default_rng(1).normal(0, 1, (64, 1, 8, 8)).astype(np.float32)
    out = quantize_qdq(conv_pool_head(tmp_path / "cnn.onnx"), tmp_path / "int8.onnx", recipe, calib)
    graph = onnx.load(str(out)).graph
    quantized_tensors = {n.input[0] for n in graph.node if n.op_type == "QuantizeLinear"}
    assert "m" in quantized_tensors
    assert next(n for n in graph.node if "logits" in n.output).op_type == "Gemm"


def test_extra_op_types_extend_onnxruntime_defaults():
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    from edgekd.runtimes.ptq import op_types_of

    recipe = OPENVINO_BY_HAND
    assert set(op_types_of(recipe)) == set(QLinearOpsRegistry) | set(QDQRegistry) | {"ReduceMean"}
    assert op_types_of(recipe.model_copy(update={"extra_op_types": []})) is None  # quantize_static's own default
    only = recipe.model_copy(update={"op_types": ["Conv"], "extra_op_types": ["ReduceMean", "Conv"]})
    assert op_types_of(only) == ["Conv", "ReduceMean"]


def test_openvino_recipe_quantizes_the_input_signed_and_symmetric(tmp_path):
    calib = np.random.default_rng(1).normal(0, 1, (64, 1, 8, 8)).astype(np.float32)
    out = quantize_qdq(conv_pool_head(tmp_path / "cnn.onnx"), tmp_path / "int8.onnx", OPENVINO_BY_HAND, calib)
    graph = onnx.load(str(out)).graph
    consts = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    zero_points = {n.input[0]: consts[n.input[2]] for n in graph.node if n.op_type == "QuantizeLinear"}
    assert zero_points["input"].dtype == np.int8 and not zero_points["input"].any()
    assert zero_points["m"].dtype == np.uint8  # the rest stays U8S8


def _int8_weights(graph) -> dict[str, np.ndarray]:
    return {i.name: numpy_helper.to_array(i) for i in graph.initializer if i.data_type == onnx.TensorProto.INT8 and len(i.dims) > 1}


def test_nncf_recipe_writes_qdq_onnx_with_7_bit_weights_when_asked_and_excluded_nodes_float(tmp_path):
    """NNCF's default makes the first layer's weights 7-bit (its overflow fix); reduce_range (the host adaptation
    of quant/host.py) makes every layer's; the fallback search's nodes stay float."""
    calib = np.random.default_rng(1).normal(0, 1, (64, 1, 8, 8)).astype(np.float32)
    model, recipe = conv_pool_head(tmp_path / "cnn.onnx"), load_profile("intel-cpu").quantization
    for reduce_range, head_bound in ((False, 127), (True, 64)):
        out = quantize_qdq(model, tmp_path / f"int8-{reduce_range}.onnx", recipe.model_copy(update={"reduce_range": reduce_range}), calib)
        weights = _int8_weights(onnx.load(str(out)).graph)
        peaks = sorted(int(np.abs(w.astype(np.int32)).max()) for w in weights.values())
        assert len(weights) == 2 and peaks == sorted([64, head_bound])  # the conv (first layer) is 7-bit either way
    out = quantize_qdq(model, tmp_path / "excluded.onnx", recipe, calib, nodes_to_exclude=["conv"])
    graph = onnx.load(str(out)).graph
    conv = next(n for n in graph.node if n.name == "conv")
    assert conv.input[:2] == ["input", "cw"] and len(_int8_weights(graph)) == 1  # float conv, int8 classifier


def test_nncf_recipe_refuses_onnxruntime_keys_and_preset_needs_nncf():
    with pytest.raises(ValueError, match=r"ignores onnxruntime's keys \(signed_input\)"):
        QuantRecipe(name="x", tool="nncf", signed_input=True)
    with pytest.raises(ValueError, match="preset: NNCF's keys"):
        QuantRecipe(name="x", preset="mixed")
    with pytest.raises(ValueError, match="bias_correction: NNCF's keys"):
        QuantRecipe(name="x", bias_correction="fast")


def test_a_profile_file_with_a_wrong_nncf_recipe_fails_in_one_line(tmp_path):
    path = tmp_path / "my-ov.yaml"
    path.write_text("name: my-ov\nbackend: openvino\nquantization: {name: q, tool: nncf, calibrate_method: entropy}\n")
    with pytest.raises(ConfigError) as error:
        load_profile(str(path))
    assert "\n" not in str(error.value) and "calibrate_method" in str(error.value) and "my-ov.yaml" in str(error.value)


@pytest.mark.parametrize("bias_correction, fast, disabled", [("none", True, True), ("fast", True, False), ("full", False, False)])
def test_nncf_bias_correction_reaches_nncf(tmp_path, monkeypatch, bias_correction, fast, disabled):
    import nncf

    seen = {}

    def fake_quantize(model, dataset, **options):
        seen.update(options)
        return model

    monkeypatch.setattr(nncf, "quantize", fake_quantize)
    recipe = load_profile("intel-cpu").quantization.model_copy(update={"bias_correction": bias_correction})
    calib = np.zeros((4, 1, 8, 8), np.float32)
    quantize_qdq(conv_pool_head(tmp_path / "cnn.onnx"), tmp_path / "int8.onnx", recipe, calib)
    assert seen["fast_bias_correction"] is fast and seen["advanced_parameters"].disable_bias_correction is disabled
    assert seen["subset_size"] == 4 and (tmp_path / "int8.onnx").is_file()
