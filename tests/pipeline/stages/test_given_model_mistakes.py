"""Models a user brings that onnxruntime runs but that are unusual or subtly broken, found by trying `edgekd ship`
as a new user would (issue 34: any ONNX file in, never a quietly wrong PASS). Each model is a tiny onnx.helper graph
around a logistic regression on scikit-learn's digits."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.faults.helpers import assert_one_line_error, invoke
from tests.pipeline.stages.test_third_party_onnx import classifier


def _digits_npz(path, labels: bool = True):
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None]
    np.savez(path, **({"x": x, "y": digits.target} if labels else {"x": x}))
    return path


def _first_row_only(weights) -> onnx.ModelProto:
    """The classifier with its logits cut to the batch's first row, [batch, 10] as declared: a bug a user may bring."""
    model = classifier(weights, "batch", opset=13)
    graph = model.graph
    graph.node[-1].output[0] = "all_logits"
    graph.initializer.extend([numpy_helper.from_array(np.array([0], np.int64), name) for name in ("zero", "axis")]
                             + [numpy_helper.from_array(np.array([1], np.int64), "one")])
    graph.node.append(helper.make_node("Slice", ["all_logits", "zero", "one", "axis"], ["logits"], name="first_row"))
    return model


@pytest.mark.parametrize("extra", [[], ["--metric", "top1"], ["--no-labels"]], ids=["classifier", "metric", "no-labels"])
def test_a_model_returning_one_row_whatever_the_batch_is_refused_not_scored_by_broadcasting(digits_weights, tmp_path, extra):
    """Before: an internal IndexError as a classifier, and a PASS with --metric top1 (one prediction broadcast against
    every label) or --no-labels (100% agreement), with eval.npz's reference of one row."""
    model = tmp_path / "first.onnx"
    onnx.save(_first_row_only(digits_weights), str(model))
    data = _digits_npz(tmp_path / "digits.npz", labels="--no-labels" not in extra)
    extra = [e for e in extra if e != "--no-labels"]
    result = invoke("ship", model, "--data", data, "--normalize", "none", "--targets", "x86-cpu", *extra,
                    "--out", tmp_path / "run")
    assert_one_line_error(result, "first.onnx", "first output has shape (1, 10)", "one row per sample")


def _head_inside_if() -> onnx.ModelProto:
    """A small convolutional net whose Gemm head sits inside both branches of an If (a condition onnxruntime evaluates
    at run time), reading the flattened features from the outer graph, as exporters write data-dependent heads."""
    rng = np.random.default_rng(0)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1, 8, 8])
    logits = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])

    def branch(name: str) -> onnx.GraphProto:
        out = helper.make_tensor_value_info(f"{name}_logits", TensorProto.FLOAT, ["batch", 10])
        return helper.make_graph([helper.make_node("Gemm", ["flat", "W", "b"], [f"{name}_logits"], transB=1)], name, [], [out])

    nodes = [helper.make_node("Conv", ["x", "K", "kb"], ["conv"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["conv"], ["relu"]),
             helper.make_node("MaxPool", ["relu"], ["pool"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Flatten", ["pool"], ["flat"]), helper.make_node("Size", ["x"], ["size"]),
             helper.make_node("Greater", ["size", "zero"], ["nonempty"]),
             helper.make_node("If", ["nonempty"], ["logits"], then_branch=branch("then"), else_branch=branch("other"))]
    inits = [numpy_helper.from_array(rng.standard_normal((4, 1, 3, 3)).astype(np.float32), "K"),
             numpy_helper.from_array(np.zeros(4, np.float32), "kb"), numpy_helper.from_array(np.array(0, np.int64), "zero"),
             numpy_helper.from_array(rng.standard_normal((10, 64)).astype(np.float32), "W"),
             numpy_helper.from_array(np.zeros(10, np.float32), "b")]
    model = helper.make_model(helper.make_graph(nodes, "if-head", [x], [logits], inits), opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def test_a_model_the_quantizer_cannot_take_ships_fp32_with_the_reason(tmp_path):
    """onnxruntime's quantizer writes an invalid graph for a head inside an If's branches. Before: the whole ship
    exited 2 at the quantize stage and the fp32 model, which passes, was not shipped."""
    import json

    model = tmp_path / "if.onnx"
    onnx.save(_head_inside_if(), str(model))
    result = invoke("ship", model, "--data", _digits_npz(tmp_path / "digits.npz", labels=False), "--normalize", "none",
                    "--targets", "x86-cpu", "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    assert "not valid" in result.stderr and "ship a float candidate" in result.stderr, result.stderr
    bundle = json.loads((tmp_path / "run" / "bundle" / "x86-cpu" / "manifest.json").read_text())
    assert bundle["artifact"]["precision"] == "fp32"
    assert not list((tmp_path / "run" / "04-quantize").glob("*.onnx")), "no int8 file under an int8 name"
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert any("no int8 model" in note for note in report["host_warnings"]), report["host_warnings"]


def _ids_and_mask(weights) -> onnx.ModelProto:
    """int64 `ids` (digits' pixel values 0..16) and a float `mask`: logits = (ids / 16 * mask) W + b."""
    ids = helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", 64])
    mask = helper.make_tensor_value_info("mask", TensorProto.FLOAT, ["batch", 64])
    logits = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])
    nodes = [helper.make_node("Cast", ["ids"], ["values"], to=TensorProto.FLOAT), helper.make_node("Div", ["values", "sixteen"], ["scaled"]),
             helper.make_node("Mul", ["scaled", "mask"], ["masked"]), helper.make_node("MatMul", ["masked", "W"], ["scores"]),
             helper.make_node("Add", ["scores", "b"], ["logits"])]
    inits = [numpy_helper.from_array(np.array(16, np.float32), "sixteen"), numpy_helper.from_array(weights[0], "W"),
             numpy_helper.from_array(weights[1], "b")]
    model = helper.make_model(helper.make_graph(nodes, "ids-mask", [ids, mask], [logits], inits), opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def test_a_bundle_of_named_arrays_tells_the_device_to_feed_them_as_given_not_as_scaled_pixels(digits_weights, tmp_path):
    """Before: the manifest said layout NCHW, "divide by 255" and the bundle README "pixels scaled to [0, 1]" for a
    model fed token ids and a mask as they are: a device integrator following it would feed wrong inputs."""
    import json

    from sklearn.datasets import load_digits

    digits = load_digits()
    onnx.save(_ids_and_mask(digits_weights), str(tmp_path / "ids.onnx"))
    ids = digits.images.reshape(len(digits.images), -1).astype(np.int64)
    np.savez(tmp_path / "ids.npz", ids=ids, mask=np.ones(ids.shape, np.float32), y=digits.target)
    result = invoke("ship", tmp_path / "ids.onnx", "--data", tmp_path / "ids.npz", "--targets", "x86-cpu",
                    "--max-drop", "3", "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    bundle = tmp_path / "run" / "bundle" / "x86-cpu"
    preprocessing = json.loads((bundle / "manifest.json").read_text())["preprocessing"]
    assert preprocessing["inputs"] == "as given" and "255" not in json.dumps(preprocessing), preprocessing
    assert preprocessing["arrays"] == {"ids": {"shape": [64], "dtype": "int64"}, "mask": {"shape": [64], "dtype": "float32"}}
    readme = (bundle / "README.md").read_text()
    assert "Feed each model input its array as it is" in readme and "pixels" not in readme


def _channels_last(weights, symmetric: bool = False) -> onnx.ModelProto:
    """x [batch, 8, 8, 3] (channels last, as Keras exports) -> mean over the channels -> the digits classifier;
    `symmetric`: it takes pixels in [-1, 1] (x -> (x + 1) / 2 first), as many Keras models do."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8, 8, 3])
    logits = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])
    shift = [helper.make_node("Add", ["x", "one"], ["x1"]), helper.make_node("Mul", ["x1", "half"], ["x01"])]
    nodes = [*(shift if symmetric else []), helper.make_node("ReduceMean", ["x01" if symmetric else "x"], ["gray"], axes=[3], keepdims=0),
             helper.make_node("Reshape", ["gray", "shape"], ["flat"]), helper.make_node("MatMul", ["flat", "W"], ["scores"]),
             helper.make_node("Add", ["scores", "b"], ["logits"])]
    inits = [numpy_helper.from_array(np.array([-1, 64], np.int64), "shape"), numpy_helper.from_array(weights[0], "W"),
             numpy_helper.from_array(weights[1], "b"), numpy_helper.from_array(np.float32(1), "one"),
             numpy_helper.from_array(np.float32(0.5), "half")]
    model = helper.make_model(helper.make_graph(nodes, "nhwc", [x], [logits], inits), opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


@pytest.fixture
def channels_last_files(digits_weights, tmp_path):
    from sklearn.datasets import load_digits

    digits = load_digits()
    onnx.save(_channels_last(digits_weights), str(tmp_path / "nhwc.onnx"))
    x = np.repeat((digits.images / 16.0).astype(np.float32)[..., None], 3, axis=-1)
    np.savez(tmp_path / "nhwc.npz", x=x, y=digits.target)
    return tmp_path / "nhwc.onnx", tmp_path / "nhwc.npz"


def test_channels_last_images_ship_as_they_are_and_the_manifest_says_nhwc(channels_last_files, tmp_path):
    """Before: read as NCHW with 8 'channels' (the image rows): 8 mean/std values in the manifest, per-row statistics
    under data.normalize dataset."""
    import json

    model, data = channels_last_files
    result = invoke("ship", model, "--data", data, "--targets", "x86-cpu", "--max-drop", "3", "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    assert "channels-last images (N, 8, 8, 3)" in result.stderr
    preprocessing = json.loads((tmp_path / "run" / "bundle" / "x86-cpu" / "manifest.json").read_text())["preprocessing"]
    assert (preprocessing["layout"], preprocessing["mean"], preprocessing["std"]) == ("NHWC", [0.0] * 3, [1.0] * 3)


def test_a_normalization_asked_for_channels_last_images_is_refused_naming_the_layout(channels_last_files, tmp_path):
    """Before: "3 channel statistics for images with 8 channel(s)", about a channel count the images do not have."""
    model, data = channels_last_files
    result = invoke("ship", model, "--data", data, "--normalize", "imagenet", "--targets", "x86-cpu", "--out", tmp_path / "run")
    assert_one_line_error(result, "data.normalize", "channels-last images (N, 8, 8, 3)", "--normalize none")


def test_channels_last_images_saved_at_another_scaling_than_the_models_are_refused(digits_weights, channels_last_files,
                                                                                   tmp_path):
    """Trial defect (session 12): an NHWC model taking pixels in [-1, 1], fed [0, 1] arrays, shipped PASS at half its
    top-1: the scaling check skipped channels-last images. It now tries the scalings on them too, and names what to
    save the arrays as (edgekd feeds channels-last arrays as saved)."""
    _model, data = channels_last_files
    onnx.save(_channels_last(digits_weights, symmetric=True), str(tmp_path / "nhwc-sym.onnx"))
    result = invoke("ship", tmp_path / "nhwc-sym.onnx", "--data", data, "--targets", "x86-cpu", "--out", tmp_path / "run")
    assert_one_line_error(result, "with data.normalize none, but", "{mean: [0.5], std: [0.5]} on the same", "McNemar",
                          "channels-last arrays are fed as saved", "save x as the model takes it: (x - mean) / std on its "
                          "last axis, mean [0.5, 0.5, 0.5] and std [0.5, 0.5, 0.5]")
    np.savez(tmp_path / "sym.npz", **{"x": np.load(data)["x"] * 2 - 1, "y": np.load(data)["y"]})  # as the message says
    result = invoke("ship", tmp_path / "nhwc-sym.onnx", "--data", tmp_path / "sym.npz", "--targets", "x86-cpu",
                    "--out", tmp_path / "fixed", "--max-drop", "3")
    assert result.exit_code == 0, result.output[-3000:]


def _feature_output_first(weights) -> onnx.ModelProto:
    """The classifier with its flattened input as a first output, `feat`, before `logits`."""
    model = classifier(weights, "batch", opset=13)
    feat = helper.make_tensor_value_info("flat", TensorProto.FLOAT, ["batch", 64])
    outputs = [feat, *model.graph.output]
    del model.graph.output[:]
    model.graph.output.extend(outputs)
    return model


def _float16_input(weights) -> onnx.ModelProto:
    model = classifier(weights, "batch", opset=13)
    model.graph.input[0].type.tensor_type.elem_type = TensorProto.FLOAT16
    model.graph.node[0].input[0] = "x32"
    model.graph.node.insert(0, helper.make_node("Cast", ["x"], ["x32"], to=TensorProto.FLOAT))
    return model


def _mistakes(case: str, weights, folder):
    """(model, npz) of one mistake a user makes with a model made elsewhere."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None]
    flat_ids = digits.images.reshape(len(digits.images), -1).astype(np.int64)
    model, arrays = classifier(weights, "batch", opset=13), {"x": images, "y": digits.target}
    if case == "first input saved as x":
        model, arrays = _ids_and_mask(weights), {"x": flat_ids, "mask": np.ones(flat_ids.shape, np.float32), "y": digits.target}
    elif case == "logits second":
        model = _feature_output_first(weights)
    elif case == "object array":
        ragged = np.empty(len(images), dtype=object)  # images of two widths, as a list of crops becomes
        ragged[:] = [image[:, : 8 - i % 2] for i, image in enumerate(images[:, 0])]
        arrays = {"x": ragged, "y": digits.target}
    elif case == "labels under another name":
        model, arrays = _ids_and_mask(weights), {"ids": flat_ids, "mask": np.ones(flat_ids.shape, np.float32), "labels": digits.target}
    elif case == "float16 model fed x":
        model, arrays = _float16_input(weights), {"x": images.astype(np.float16), "y": digits.target}
    onnx.save(model, str(folder / "model.onnx"))
    np.savez(folder / "data.npz", **arrays)
    return folder / "model.onnx", folder / "data.npz"


@pytest.mark.parametrize("case, fragments", [
    ("first input saved as x", ["x holds images", "save each array under the name of the input it feeds"]),
    ("logits second", ["first output has shape (2, 64)", "score it on an .npz of the inputs as the model takes them",
                       "--data FILE --metric top1 --output NAME", "its outputs: flat, logits"]),
    ("object array", ["array of Python objects", "numpy.stack"]),
    ("labels under another name", ["array 'labels' is not an input", "(labels go under y)"]),
    ("float16 model fed x", ["is float16", "numpy.savez(FILE, **{'input.x': x, 'y': y})"]),
])
def test_each_data_mistake_is_one_line_that_says_what_to_do(digits_weights, tmp_path, case, fragments):
    """Before, in the same order: "images must be (N,C,H,W) or (N,H,W)"; an output shape with only "check
    data.source"; "the file is damaged or not an npz" for an npz numpy wrote; "name each array as the input it
    feeds" with no word of y; "the data's samples are float32" about float16 data, with data.* as the fix."""
    model, data = _mistakes(case, digits_weights, tmp_path)
    result = invoke("ship", model, "--data", data, "--normalize", "none", "--targets", "x86-cpu", "--out", tmp_path / "run")
    assert_one_line_error(result, *fragments)


def _ctc_recognizer(path):
    """A recognizer's shape: (batch, 12 steps, 11 classes) scores, class 0 the CTC blank."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 12, 11])
    scores = helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", 12, 11])
    model = helper.make_model(helper.make_graph([helper.make_node("Softmax", ["x"], ["scores"], axis=-1)], "ctc", [x], [scores]),
                              opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))


def test_ctc_labels_counted_from_zero_are_refused_at_intake(tmp_path):
    """A recognizer whose labels start at 0, the CTC blank: before, every 0 was dropped by decoding and the model
    shipped with a PASS at a score that meant nothing."""
    _ctc_recognizer(tmp_path / "rec.onnx")
    rng = np.random.default_rng(0)
    steps = rng.normal(size=(120, 12, 11)).astype(np.float32)
    np.savez(tmp_path / "lines.npz", x=steps, y=steps.argmax(-1)[:, :4] - 1)  # 0-based: the model's classes minus one
    result = invoke("ship", tmp_path / "rec.onnx", "--data", tmp_path / "lines.npz", "--metric", "ctc_accuracy",
                    "--targets", "x86-cpu", "--out", tmp_path / "run")
    assert_one_line_error(result, "rec.onnx", "the CTC blank", "shift 0-based labels up by one")


def test_ctc_labels_of_one_value_per_line_are_refused_naming_their_shape(tmp_path):
    """Trial defect (session 12): (N,) labels for a recognizer were an internal TypeError (exit 3): the metric scored
    them before their shape was checked."""
    _ctc_recognizer(tmp_path / "rec.onnx")
    steps = np.random.default_rng(0).normal(size=(120, 12, 11)).astype(np.float32)
    np.savez(tmp_path / "lines.npz", x=steps, y=steps.argmax(-1)[:, 0])
    result = invoke("ship", tmp_path / "rec.onnx", "--data", tmp_path / "lines.npz", "--metric", "ctc_accuracy",
                    "--targets", "x86-cpu", "--out", tmp_path / "run")
    assert result.exit_code == 2 and "internal error" not in result.output, result.output[-2000:]
    assert_one_line_error(result, "rec.onnx", "(N, L)")


def test_a_task_metrics_arrays_saved_as_8_bit_pixels_are_refused_with_the_fix(tmp_path):
    """A segmenter that takes [0, 1] fed x saved as 0..255: before, a PASS at 25% mask IoU (99.97% scaled), no word."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1, 8, 8])
    maps = helper.make_tensor_value_info("maps", TensorProto.FLOAT, ["batch", 1, 8, 8])
    nodes = [helper.make_node("Sub", ["x", "half"], ["centred"]), helper.make_node("Mul", ["centred", "steep"], ["scores"]),
             helper.make_node("Sigmoid", ["scores"], ["maps"])]
    inits = [numpy_helper.from_array(np.array(0.5, np.float32), "half"), numpy_helper.from_array(np.array(20, np.float32), "steep")]
    model = helper.make_model(helper.make_graph(nodes, "seg", [x], [maps], inits), opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "seg.onnx"))
    pixels = np.random.default_rng(0).integers(0, 256, (120, 1, 8, 8)).astype(np.float32)
    np.savez(tmp_path / "x255.npz", x=pixels, y=(pixels / 255 > 0.5).astype(np.uint8)[:, 0])
    result = invoke("ship", tmp_path / "seg.onnx", "--data", tmp_path / "x255.npz", "--metric", "mask_iou",
                    "--targets", "x86-cpu", "--out", tmp_path / "run")
    assert_one_line_error(result, "seg.onnx", "with x as saved (whole numbers 0..255)", "with x / 255",
                          "save x divided by 255")


class _Digits:
    """onnxruntime's CalibrationDataReader over a few digit images."""

    def __init__(self, x):
        self.rows = iter([{"x": x[i:i + 1]} for i in range(len(x))])

    def get_next(self):
        return next(self.rows, None)


def test_an_already_quantized_model_ships_as_given_and_is_said_not_quantized_again(digits_weights, tmp_path):
    """Trial defect (session 12): a QDQ model (onnxruntime quantize_static) was quantized again: the quantizer wrote an
    invalid file and the warning asked the user to report a bug. It is now said at intake and not quantized again."""
    import json

    from onnxruntime.quantization import QuantFormat, quantize_static

    onnx.save(classifier(digits_weights, "batch", opset=13), str(tmp_path / "float.onnx"))
    data = _digits_npz(tmp_path / "digits.npz")
    quantize_static(str(tmp_path / "float.onnx"), str(tmp_path / "qdq.onnx"), _Digits(np.load(data)["x"][:32]),
                    quant_format=QuantFormat.QDQ)
    result = invoke("ship", tmp_path / "qdq.onnx", "--data", data, "--normalize", "none", "--targets", "x86-cpu",
                    "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output[-3000:]
    assert "already quantized (" in result.stderr and "DequantizeLinear" in result.stderr
    assert "not quantized again" in result.stderr and "report this" not in result.stderr
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["stages"]["quantize"]["metrics"]["method"] == "none"
    bundle = json.loads((tmp_path / "run" / "bundle" / "x86-cpu" / "manifest.json").read_text())
    assert bundle["given_onnx"]["already_quantized"]["DequantizeLinear"] > 0


def _uint8_input(weights) -> onnx.ModelProto:
    """The classifier taking uint8 pixels 0..16 under the name x (torch.onnx.export's default), cast and scaled inside."""
    model = classifier(weights, "batch", opset=13)
    model.graph.input[0].type.tensor_type.elem_type = TensorProto.UINT8
    model.graph.node[0].input[0] = "pixels"
    model.graph.initializer.append(numpy_helper.from_array(np.float32(1 / 16), "sixteenth"))
    model.graph.node.insert(0, helper.make_node("Cast", ["x"], ["whole"], to=TensorProto.FLOAT))
    model.graph.node.insert(1, helper.make_node("Mul", ["whole", "sixteenth"], ["pixels"]))
    return model


def test_a_uint8_input_named_x_gets_advice_that_works(digits_weights, tmp_path):
    """Trial defect (session 12): a uint8 model whose input is named x, fed an npz saved with x (uint8), was told to save
    the array under the input's name, numpy.savez(..., x=x, y=y): what it had done. The advice now names input.x, the
    key that feeds the input x as it is, and following it ships the model."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    onnx.save(_uint8_input(digits_weights), str(tmp_path / "u8.onnx"))
    pixels = digits.images.astype(np.uint8)[:, None]
    np.savez(tmp_path / "u8.npz", x=pixels, y=digits.target)
    result = invoke("ship", tmp_path / "u8.onnx", "--data", tmp_path / "u8.npz", "--targets", "x86-cpu", "--out", tmp_path / "a")
    assert_one_line_error(result, "input 'x' is uint8", "numpy.savez(FILE, **{'input.x': x, 'y': y})")
    np.savez(tmp_path / "named.npz", **{"input.x": pixels, "y": digits.target})
    result = invoke("ship", tmp_path / "u8.onnx", "--data", tmp_path / "named.npz", "--targets", "x86-cpu",
                    "--out", tmp_path / "b")
    assert result.exit_code == 0, result.output[-3000:]


def test_a_model_ending_in_argmax_is_refused_naming_the_labels_output(digits_weights, tmp_path):
    """Trial defect (session 12): a model whose output is ArgMax's int64 (batch,) labels was told its output 'has shape
    (2)' (the probe's batch) and to check data.source, which was right."""
    model = classifier(digits_weights, "batch", opset=13)
    model.graph.node[-1].output[0] = "all_logits"
    model.graph.node.append(helper.make_node("ArgMax", ["all_logits"], ["labels"], axis=1, keepdims=0))
    del model.graph.output[:]
    model.graph.output.append(helper.make_tensor_value_info("labels", TensorProto.INT64, ["batch"]))
    onnx.save(model, str(tmp_path / "argmax.onnx"))
    result = invoke("ship", tmp_path / "argmax.onnx", "--data", _digits_npz(tmp_path / "d.npz"), "--normalize", "none",
                    "--targets", "x86-cpu", "--out", tmp_path / "run")
    message = assert_one_line_error(result, "first output is int64 (batch,), class labels (as an ArgMax gives)",
                                    "export the model without its ArgMax")
    assert "data.source" not in message


def test_a_channels_last_model_fed_an_image_folder_is_told_the_npz_that_feeds_it(digits_weights, tmp_path):
    """Trial defect (session 12): an NHWC model given an image folder got only the generic shape message."""
    from PIL import Image

    onnx.save(_channels_last(digits_weights), str(tmp_path / "nhwc.onnx"))
    for label in range(3):
        (tmp_path / "images" / str(label)).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(np.full((8, 8, 3), 40 * label + i, np.uint8)).save(tmp_path / "images" / str(label) / f"{i}.png")
    result = invoke("ship", tmp_path / "nhwc.onnx", "--data", tmp_path / "images", "--out", tmp_path / "run")
    assert_one_line_error(result, "the model takes channels-last images (batch, H, W, C)",
                          "numpy.savez(FILE, x=images, y=labels) with images (N, H, W, C)")


def test_a_classifier_with_a_second_output_has_every_output_compared_with_fp32(digits_weights, tmp_path):
    """Trial defect (session 12): a classifier shipping logits and an embedding had only its logits compared with fp32;
    an embedding int8 damaged would pass unseen. Every output is now compared (the worst in the cosine column, each
    under fidelity.outputs, in the bundle's eval.npz for the device), top-1 agreement kept, and a drifted one said."""
    import json

    from edgekd.pipeline.stages.bench import other_outputs_drift

    model = classifier(digits_weights, "batch", opset=13)
    model.graph.output.append(helper.make_tensor_value_info("flat", TensorProto.FLOAT, ["batch", 64]))  # logits first
    onnx.save(model, str(tmp_path / "two.onnx"))
    result = invoke("ship", tmp_path / "two.onnx", "--data", _digits_npz(tmp_path / "d.npz"), "--normalize", "none",
                    "--targets", "x86-cpu", "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output[-3000:]
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    for row in report["rows"]:
        assert set(row["fidelity"]["outputs"]) == {"logits", "flat"} and "top1_agreement" in row["fidelity"]
    with np.load(tmp_path / "run" / "bundle" / "x86-cpu" / "eval.npz") as carried:
        assert "reference_outputs/flat" in carried.files
    rows = [{"artifact": "x86-cpu/int8", "shipped": True,
             "fidelity": {"outputs": {"logits": {"cosine": 0.999}, "embedding": {"cosine": 0.62}}}}]
    assert other_outputs_drift(rows) == ["x86-cpu/int8: output 'embedding' has cosine 0.6200 with the fp32 model's, while "
                                         "the gate judges top-1 of 'logits' only; if your application reads 'embedding', "
                                         "set gate.min_cosine (edgekd gate --min-cosine), which judges every output"]
    assert other_outputs_drift([{**rows[0], "shipped": False}]) == []
