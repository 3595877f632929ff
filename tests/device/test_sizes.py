from __future__ import annotations

from edgekd.device.bundle import load_bundle
from edgekd.device.sizes import gzip_size, parameter_count, size_on_disk


def test_size_gzip_and_parameters_of_a_bundle(tiny_bundle):
    _, artifact = load_bundle(tiny_bundle)
    assert size_on_disk(artifact) == (tiny_bundle / "model.onnx").stat().st_size
    assert 0 < gzip_size(artifact) < size_on_disk(artifact) * 1.1
    assert parameter_count(artifact) == 64 * 10 + 10


def test_int8_model_counts_the_same_parameters_as_fp32(tiny_bundle, tmp_path):
    """Scales and zero points of a QDQ model are not parameters."""
    import numpy as np
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

    from edgekd.runtimes.base import Artifact

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"x": np.random.default_rng(0).normal(size=(8, 1, 8, 8)).astype(np.float32)}])

        def get_next(self):
            return next(self.batches, None)

    quantize_static(str(tiny_bundle / "model.onnx"), str(tmp_path / "int8.onnx"), Reader(), quant_format=QuantFormat.QDQ,
                    per_channel=True)
    int8 = Artifact("ort", "int8", tmp_path, "int8.onnx", ["int8.onnx"])
    assert parameter_count(int8) == 64 * 10 + 10


def _artifact(tmp_path, backend, main, sizes):
    from edgekd.runtimes.base import Artifact

    tmp_path.mkdir(parents=True, exist_ok=True)
    for name, size in sizes.items():
        (tmp_path / name).write_bytes(b"\x01" * size)
    return Artifact(backend, "int8", tmp_path, main, list(sizes))


def test_size_is_what_the_device_loads_and_every_model_file_is_named(tmp_path):
    from edgekd.device.sizes import file_set

    arm = _artifact(tmp_path / "arm", "ort-arm64", "model.onnx", {"model.onnx": 24_000, "model.ort": 26_000})
    assert size_on_disk(arm) == 24_000  # the .ort for minimal builds rides along; it is not what is compared
    assert [(f["name"], f["loaded"]) for f in file_set(arm)] == [("model.onnx", True), ("model.ort", False)]
    ov = _artifact(tmp_path / "ov", "openvino", "model.xml", {"model.xml": 9_000, "model.bin": 30_000})
    assert size_on_disk(ov) == 39_000 and all(f["loaded"] for f in file_set(ov))
    trt = _artifact(tmp_path / "trt", "tensorrt", "model.engine",
                    {"model.onnx": 40_000, "model.engine": 50_000, "build_settings.json": 300})
    assert size_on_disk(trt) == 50_000
    assert {f["name"]: f["role"] for f in file_set(trt)} == {"model.onnx": "ONNX model", "model.engine": "TensorRT engine"}


def test_the_files_column_names_the_loaded_set_then_the_rest():
    from edgekd.device.report.table import files_label

    assert files_label({"files": [{"name": "model.onnx", "loaded": True}, {"name": "model.ort", "loaded": False}]}) == ".onnx (+.ort)"
    assert files_label({"files": [{"name": "model.xml", "loaded": True}, {"name": "model.bin", "loaded": True}]}) == ".xml+.bin"


def test_weights_in_constant_nodes_and_subgraphs_are_counted(tmp_path):
    """Trial defect (session 11): the params column read 0 for PP-OCR's detector and Silero VAD, whose weights are
    Constant nodes and If branches rather than initializers."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from edgekd.runtimes.onnx_graph import onnx_parameters

    weight = numpy_helper.from_array(np.ones((4, 3), np.float32), "w")
    constant = helper.make_node("Constant", [], ["w_out"], value=weight)
    branch = helper.make_graph([helper.make_node("Constant", [], ["b"], value=numpy_helper.from_array(np.ones(5, np.float32)))],
                               "branch", [], [helper.make_tensor_value_info("b", TensorProto.FLOAT, [5])])
    cond = helper.make_node("If", ["flag"], ["picked"], then_branch=branch, else_branch=branch)
    graph = helper.make_graph([constant, helper.make_node("MatMul", ["x", "w_out"], ["y"]), cond], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4]),
                               helper.make_tensor_value_info("flag", TensorProto.BOOL, [])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3]),
                               helper.make_tensor_value_info("picked", TensorProto.FLOAT, [5])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "m.onnx"))
    assert onnx_parameters(tmp_path / "m.onnx") == 12 + 5 + 5


def test_quantization_scales_in_constant_nodes_are_not_weights_and_weights_are(tmp_path):
    """Trial defect (session 12): the int8-qat row read 439 parameters for a 1,158-weight model: the QAT export's scales
    sit in Constant nodes, told apart by id() of protobuf wrappers, which are made afresh on each access."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from edgekd.runtimes.onnx_graph import onnx_parameters

    def constant(name, array):
        return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(array, name + "_value"))

    nodes = [constant(f"w{i}", np.ones((8, 8), np.int8)) for i in range(20)]  # int8 weights kept in Constant nodes
    nodes += [constant(f"s{i}", np.float32(0.1)) for i in range(20)] + [constant(f"z{i}", np.int8(0)) for i in range(20)]
    nodes += [helper.make_node("DequantizeLinear", [f"w{i}", f"s{i}", f"z{i}"], [f"d{i}"]) for i in range(20)]
    nodes += [helper.make_node("Sum", [f"d{i}" for i in range(20)], ["y"])]
    graph = helper.make_graph(nodes, "qat", [], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [8, 8])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(tmp_path / "q.onnx"))
    assert onnx_parameters(tmp_path / "q.onnx") == 20 * 64
