"""ONNX files made elsewhere, as onnxruntime itself takes them (issue 34 part 1, issue 32 item 8): -1/0/unset
dimensions are dynamic, an opset below 13 is upgraded (checked, recorded), external data travels with the model.
Every model here is a tiny graph built with onnx.helper: no download."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import yaml
from onnx import TensorProto, helper, numpy_helper

from tests.faults.helpers import assert_one_line_error, invoke

FAST_BENCH = {"eval_samples": 60, "runs": 5, "min_seconds": 0, "warmup_runs": 1, "warmup_seconds": 0, "rounds": 1,
              "memory": False}


def classifier(weights, batch_dim=-1, opset: int = 11) -> onnx.ModelProto:
    """x [batch, 1, 8, 8] -> Reshape -> MatMul -> Add -> logits [batch, 10], as Paddle2ONNX and tf2onnx write it:
    the batch axis as `batch_dim` (-1, 0, None for no value, or a name)."""
    dim = [batch_dim] if batch_dim is not None else [None]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [*dim, 1, 8, 8])
    logits = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [*dim, 10])
    nodes = [helper.make_node("Reshape", ["x", "shape"], ["flat"], name="flatten"),
             helper.make_node("MatMul", ["flat", "W"], ["scores"], name="fc"),
             helper.make_node("Add", ["scores", "b"], ["logits"], name="bias")]
    inits = [numpy_helper.from_array(np.array([-1, 64], np.int64), "shape"),
             numpy_helper.from_array(weights[0], "W"), numpy_helper.from_array(weights[1], "b")]
    model = helper.make_model(helper.make_graph(nodes, "lr", [x], [logits], inits),
                              opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 7
    if batch_dim == -1 or batch_dim == 0:  # helper writes them as dim_value; make sure that is what the file says
        assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_value == batch_dim
    return model


def _config(tmp_path: Path, onnx_path: Path, **extra) -> Path:
    config = {"name": "third-party", "data": {"source": "digits", "normalize": "none"}, "student": {"onnx": str(onnx_path)},
              "quantize": {"calibration": "train-64"}, "targets": ["x86-cpu"], "bench": FAST_BENCH,
              "gate": {"max_drop": 3.0}, **extra}
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize("batch_dim", [-1, 0, None])
def test_minus_one_zero_and_unset_dimensions_are_dynamic(digits_weights, tmp_path, batch_dim):
    from edgekd.pipeline.given_model import check_input_matches, onnx_input_spec, onnx_inputs

    path = tmp_path / "m.onnx"
    onnx.save(classifier(digits_weights, batch_dim, opset=13), str(path))
    assert onnx_inputs(path)[0]["shape"] == ["?", 1, 8, 8]
    assert onnx_inputs(path)[0]["dynamic_axes"] == {"0": "?"}
    check_input_matches(onnx_input_spec(path), (1, 8, 8), "student.onnx")  # no "fixed shape" refusal


def test_an_opset_11_model_ships_int8_upgraded_checked_and_recorded(digits_weights, tmp_path):
    path = tmp_path / "lr11.onnx"
    onnx.save(classifier(digits_weights, -1, opset=11), str(path))
    result = invoke("run", str(_config(tmp_path, path)), "--out", str(tmp_path / "run"))
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    upgrade = manifest["stages"]["distill"]["metrics"]["opset_upgrade"]
    assert (upgrade["from"], upgrade["to"], upgrade["check"]["close"]) == (11, 13, True)
    assert upgrade["check"]["max_abs_error"] < 1e-4 and upgrade["check"]["samples"] > 0
    rows = {row["name"]: row for row in manifest["stages"]["compile"]["metrics"]["targets"]["x86-cpu"]["candidates"]}
    assert "int8" in rows and rows["int8"].get("verdict") != "failed", rows
    bundle = json.loads((tmp_path / "run" / "bundle" / "x86-cpu" / "manifest.json").read_text())
    assert bundle["given_onnx"]["opset_upgrade"]["from"] == 11
    fp32 = onnx.load(str(tmp_path / "run" / "03-export" / "student-fp32.onnx"))
    assert [o.version for o in fp32.opset_import if o.domain in ("", "ai.onnx")] == [13]


def test_a_model_importing_its_opset_twice_ships_int8_with_one_entry_recorded(digits_weights, tmp_path):
    """onnx.compose.merge_models lists the default domain once per merged model: onnxruntime runs the file, but its
    quantizer stopped at "Failed to find proper ai.onnx domain" (new-user trial). The run's copy keeps one entry."""
    model = classifier(digits_weights, -1, opset=17)
    model.opset_import.append(helper.make_opsetid("", 17))
    path = tmp_path / "merged.onnx"
    onnx.save(model, str(path))
    result = invoke("run", str(_config(tmp_path, path)), "--out", str(tmp_path / "run"))
    assert result.exit_code == 0, result.output[-3000:]
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["stages"]["distill"]["metrics"]["opset_upgrade"]["removed"] == [{"domain": "ai.onnx", "version": 17}]
    rows = {row["name"]: row for row in manifest["stages"]["compile"]["metrics"]["targets"]["x86-cpu"]["candidates"]}
    assert "int8" in rows and rows["int8"].get("verdict") != "failed", rows
    assert len(onnx.load(str(path)).opset_import) == 2  # the user's file is never changed


def test_two_versions_of_one_domain_are_one_line(digits_weights, tmp_path):
    model = classifier(digits_weights, -1, opset=17)
    model.opset_import.append(helper.make_opsetid("ai.onnx", 13))
    path = tmp_path / "two.onnx"
    onnx.save(model, str(path))
    assert_one_line_error(invoke("run", str(_config(tmp_path, path)), "--out", str(tmp_path / "run")),
                          "imports domain 'ai.onnx' at two opsets (17 and 13)", "one opset per domain")


def test_an_invalid_int8_file_from_the_quantizer_is_not_blamed_on_the_model(digits_weights, tmp_path):
    """quantize_static writes per-channel DequantizeLinear(axis) even into an opset-11 graph: ONNX's checker stops it
    with a line that names edgekd's output and the way out, not 'the file is corrupt'."""
    from edgekd.core.errors import StageError
    from edgekd.runtimes.profiles import QuantRecipe
    from edgekd.runtimes.ptq import quantize_qdq

    path = tmp_path / "lr11.onnx"
    onnx.save(classifier(digits_weights, "batch", opset=11), str(path))
    calibration = np.random.default_rng(0).random((32, 1, 8, 8), dtype=np.float32)
    with pytest.raises(StageError) as error:
        quantize_qdq(path, tmp_path / "int8.onnx", QuantRecipe(name="pc", per_channel=True), calibration)
    message = str(error.value)
    assert "int8.onnx, an int8 model that is not valid ONNX" in message and "opset 11" in message
    assert "upgrade it to 13" in message and "corrupt" not in message and "\n" not in message
    assert not (tmp_path / "int8.onnx").exists()


def _save_external(model: onnx.ModelProto, path: Path, location: str) -> None:
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True, location=location,
                    size_threshold=256)  # the weight matrix, as torch moves its large tensors


def test_external_data_travels_into_the_run_and_the_bundle(digits_weights, tmp_path):
    """torch.onnx.export's default since torch 2.14: model.onnx + model.onnx.data."""
    from edgekd.device.bundle import verify_bundle

    folder = tmp_path / "export"
    folder.mkdir()
    _save_external(classifier(digits_weights, "batch", opset=17), folder / "model.onnx", "model.onnx.data")
    result = invoke("run", str(_config(tmp_path, folder / "model.onnx")), "--out", str(tmp_path / "run"))
    assert result.exit_code == 0, result.output
    run = tmp_path / "run"
    assert (run / "02-distill" / "model.onnx.data").is_file() and (run / "03-export" / "model.onnx.data").is_file()
    manifest = json.loads((run / "manifest.json").read_text())
    outputs = {Path(o["path"]).name: o for o in manifest["stages"]["distill"]["outputs"]}
    assert outputs["model.onnx.data"]["sha256"] == manifest["stages"]["distill"]["metrics"]["external_data"][0]["sha256"]
    compiled = manifest["stages"]["compile"]["metrics"]["targets"]["x86-cpu"]
    files = {row["name"]: row["artifact"]["files"] for row in compiled["candidates"]}
    assert files["fp32"] == ["model.onnx", "model.onnx.data"] and files["int8"] == ["model.onnx"]  # int8: weights inside
    bundle = verify_bundle(run / "bundle" / "x86-cpu")  # every listed file present, with its sha256
    assert {entry["path"] for entry in bundle["files"]} >= set(files[compiled["chosen"]])
    assert bundle["given_onnx"]["external_data"] == manifest["stages"]["distill"]["metrics"]["external_data"]


def test_the_fp32_artifact_of_an_external_data_model_carries_its_weights(digits_weights, tmp_path):
    """The onnxruntime backend's artifact lists the .data file, so a bundle copies and hashes it, and loads it."""
    from edgekd.device.bundle import load_bundle, write_bundle
    from edgekd.runtimes import load_profile
    from edgekd.runtimes.ort import OrtBackend

    (tmp_path / "weights").mkdir()
    _save_external(classifier(digits_weights, "batch", opset=13), tmp_path / "model.onnx", "weights/model.onnx.data")
    artifact = OrtBackend().compile(tmp_path / "model.onnx", "fp32", load_profile("x86-cpu"), tmp_path / "fp32")
    assert artifact.files == ["model.onnx", "weights/model.onnx.data"]
    x = np.random.default_rng(0).random((4, 1, 8, 8), dtype=np.float32)
    logits = OrtBackend().session(artifact).run(x)
    bundle = write_bundle(tmp_path / "bundle", artifact, x, logits.argmax(1), logits, {"target": "x86-cpu"})
    manifest, loaded = load_bundle(bundle)
    assert "weights/model.onnx.data" in {entry["path"] for entry in manifest["files"]}
    np.testing.assert_allclose(OrtBackend().session(loaded).run(x), logits, rtol=1e-6)


@pytest.mark.parametrize("location, message", [
    ("../outside.data", "'../outside.data', outside the model's folder; refused"),
    ("/tmp/edgekd-absolute.data", "'/tmp/edgekd-absolute.data', outside the model's folder; refused"),
    ("missing.data", "stored in 'missing.data', which is not in"),
])
def test_external_data_outside_the_models_folder_is_refused(digits_weights, tmp_path, location, message):
    folder = tmp_path / "export"
    folder.mkdir()
    model = classifier(digits_weights, "batch", opset=13)
    _save_external(model, folder / "model.onnx", "model.onnx.data")
    edited = onnx.load(str(folder / "model.onnx"), load_external_data=False)
    for tensor in edited.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = location
    onnx.save(edited, str(folder / "model.onnx"))
    for labels in ("auto", "none"):  # none: the model labels the data first (with_reference_labels), before any copy
        config = _config(tmp_path, folder / "model.onnx")
        if labels == "none":
            config = _npz_config(tmp_path, folder / "model.onnx", {"x": load_digits_x()})
        result = invoke("run", str(config), "--out", str(tmp_path / f"run-{labels}"))
        assert result.exit_code == 2, result.output
        line = result.output.strip().splitlines()[-1]
        assert f"'{folder / 'model.onnx'}'" in line and message in line, line


def test_a_truncated_external_data_file_is_named(digits_weights, tmp_path):
    """Trial defect (session 11): a .data file cut short gave onnxruntime's 'Initializer ...' text, naming no file."""
    folder = tmp_path / "export"
    folder.mkdir()
    _save_external(classifier(digits_weights, "batch", opset=13), folder / "model.onnx", "model.onnx.data")
    data = folder / "model.onnx.data"
    data.write_bytes(data.read_bytes()[:100])
    result = invoke("run", str(_config(tmp_path, folder / "model.onnx")), "--out", str(tmp_path / "run"))
    assert result.exit_code == 2, result.output
    line = result.output.strip().splitlines()[-1]
    assert "its data file 'model.onnx.data' holds 100 bytes" in line and "the file is truncated; copy it again" in line, line


def load_digits_x() -> np.ndarray:
    from sklearn.datasets import load_digits

    return (load_digits().images / 16.0).astype(np.float32)[:, None]


def test_a_model_onnxruntime_cannot_load_is_named_as_the_user_gave_it(digits_weights, tmp_path):
    """The run's copy is what onnxruntime loads; the message names the user's file, in onnxruntime's text too,
    and never cuts a word."""
    model = classifier(digits_weights, "batch", opset=13)
    model.graph.node.append(helper.make_node("NoSuchOperator", ["logits"], ["unused"], name="mystery"))
    path = tmp_path / "mine.onnx"
    onnx.save(model, str(path))
    result = invoke("run", str(_config(tmp_path, path)), "--out", str(tmp_path / "run"))
    assert result.exit_code == 2, result.output
    line = result.output.strip().splitlines()[-1]
    assert f"{path}: onnxruntime cannot load it" in line and "02-distill" not in line, line
    assert "NoSuchOperator" in line


def test_quoted_runtime_text_is_cut_between_words():
    from edgekd.core.errors import clip_words

    text = "Load model failed: " + " ".join(f"word{i}" for i in range(200))
    clipped = clip_words(text, 100)
    assert clipped.endswith(" ...") and len(clipped) <= 104
    assert all(part.startswith("word") or part in ("Load", "model", "failed:", "...") for part in clipped.split())
    assert clip_words("short\nline", 100) == "short line"


def two_input_classifier(weights) -> onnx.ModelProto:
    """image [batch, 1, 8, 8] float32 and mask [batch, 64] int64 (which pixels count): logits [batch, 10]."""
    inputs = [helper.make_tensor_value_info("image", TensorProto.FLOAT, [-1, 1, 8, 8]),
              helper.make_tensor_value_info("mask", TensorProto.INT64, ["batch", 64])]
    logits = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])
    nodes = [helper.make_node("Reshape", ["image", "shape"], ["flat"], name="flatten"),
             helper.make_node("Cast", ["mask"], ["maskf"], to=TensorProto.FLOAT, name="cast"),
             helper.make_node("Mul", ["flat", "maskf"], ["masked"], name="apply_mask"),
             helper.make_node("MatMul", ["masked", "W"], ["scores"], name="fc"),
             helper.make_node("Add", ["scores", "b"], ["logits"], name="bias")]
    inits = [numpy_helper.from_array(np.array([-1, 64], np.int64), "shape"),
             numpy_helper.from_array(weights[0], "W"), numpy_helper.from_array(weights[1], "b")]
    model = helper.make_model(helper.make_graph(nodes, "two", inputs, [logits], inits),
                              opset_imports=[helper.make_opsetid("", 11)])
    model.ir_version = 7
    return model


@pytest.fixture()
def two_inputs(digits_weights, tmp_path):
    from sklearn.datasets import load_digits

    digits = load_digits()
    path = tmp_path / "two.onnx"
    onnx.save(two_input_classifier(digits_weights), str(path))
    arrays = {"image": (digits.images / 16.0).astype(np.float32)[:, None], "mask": np.ones((len(digits.images), 64), np.int64),
              "y": digits.target.astype(np.int64)}
    return path, arrays


def _npz_config(tmp_path, model, arrays, name="inputs.npz") -> Path:
    np.savez(tmp_path / name, **arrays)
    config = {"name": "two", "data": {"source": "npz", "path": str(tmp_path / name)}, "student": {"onnx": str(model)},
              "quantize": {"calibration": "train-64"}, "targets": ["x86-cpu"], "bench": FAST_BENCH, "gate": {"max_drop": 3.0}}
    path = tmp_path / "two.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize("labeled", [True, False])
def test_a_model_with_two_inputs_ships_from_an_npz_of_one_array_per_input(two_inputs, tmp_path, labeled):
    from edgekd.device.bundle import verify_bundle

    model, arrays = two_inputs
    if not labeled:  # no y: judged by fidelity to the fp32 model (README "Without labels")
        arrays = {k: v for k, v in arrays.items() if k != "y"}
    result = invoke("run", str(_npz_config(tmp_path, model, arrays)), "--out", str(tmp_path / "run"))
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert [i["name"] for i in manifest["stages"]["distill"]["metrics"]["inputs"]] == ["image", "mask"]
    if labeled:
        assert manifest["stages"]["distill"]["metrics"]["test_top1"] > 0.9  # fed as given: the classifier's accuracy
    else:
        assert "fidelity to fp32" in result.output
    assert manifest["stages"]["distill"]["metrics"]["opset_upgrade"]["from"] == 11
    bundle = tmp_path / "run" / "bundle" / "x86-cpu"
    verify_bundle(bundle)
    with np.load(bundle / "eval.npz") as saved:
        assert saved["image"].dtype == np.float32 and saved["mask"].dtype == np.int64
    bench = invoke("bench", str(bundle), "--out", str(tmp_path / "device.json"))  # the device's path, both inputs
    assert bench.exit_code == 0, bench.output


@pytest.mark.parametrize("change, message", [
    (lambda a: {**a, "mask": a["mask"].astype(np.float32)},
     "the model's input 'mask' is int64 (batch, 64) but its array is float32 (batch, 64)"),
    (lambda a: {**a, "image": np.repeat(a["image"], 2, axis=1)},
     "the model's input 'image' is float32 (?, 1, 8, 8) but its array is float32 (batch, 2, 8, 8)"),
    (lambda a: {k: v for k, v in a.items() if k != "mask"}, "no array for the model's input 'mask' (int64 (batch, 64))"),
    (lambda a: {**a, "extra": a["mask"]}, "array 'extra' is not an input of the model"),
])
def test_an_array_that_cannot_feed_its_input_is_one_line_naming_both(two_inputs, tmp_path, change, message):
    model, arrays = two_inputs
    result = invoke("run", str(_npz_config(tmp_path, model, change(arrays))), "--out", str(tmp_path / "run"))
    assert result.exit_code == 2, result.output
    line = result.output.strip().splitlines()[-1]
    assert message in line and str(tmp_path / "inputs.npz") in line, line


def test_named_inputs_are_fed_as_they_are_and_a_normalisation_is_refused(two_inputs, tmp_path):
    from edgekd.core.errors import DataError
    from edgekd.data import load_dataset
    from edgekd.data.config import DataConfig

    _, arrays = two_inputs
    arrays["mask"][:, 0] = np.arange(len(arrays["mask"]))  # each sample's row number, to follow it through the split
    np.savez(tmp_path / "inputs.npz", **arrays)
    data = load_dataset(DataConfig(source="npz", path=str(tmp_path / "inputs.npz")), 0, None)
    assert data.input_shapes == {"image": (1, 8, 8), "mask": (64,)} and data.train.x["mask"].dtype == np.int64
    rows = data.test.x["mask"][:, 0]  # the rows of every input and of y stay together through the split
    np.testing.assert_array_equal(data.test.x["image"], arrays["image"][rows])
    np.testing.assert_array_equal(data.test.y, arrays["y"][rows])
    with pytest.raises(DataError, match=r"data.normalize: the npz .* holds one array per model input"):
        load_dataset(DataConfig(source="npz", path=str(tmp_path / "inputs.npz"), normalize="imagenet"), 0, None)


def test_an_upgrade_that_fails_or_changes_the_outputs_keeps_the_opset_and_says_why(digits_weights, tmp_path, monkeypatch):
    """Such a model still ships (onnxruntime runs it at its own opset) without int8. Before: refused outright, so a
    user with only the file (an opset-10 Resize, whose semantics changed at 11) could not ship it at all."""
    from edgekd.pipeline import onnx_intake
    from edgekd.runtimes.onnx_graph import opset_of

    source = tmp_path / "lr11.onnx"
    onnx.save(classifier(digits_weights, -1, opset=11), str(source))
    x = np.random.default_rng(0).random((8, 1, 8, 8), dtype=np.float32)
    written, upgrade = onnx_intake.bring_in(source, tmp_path / "run" / "student.onnx", x, "student.onnx")
    assert upgrade["check"]["close"] and upgrade["check"]["samples"] == 8 and len(written) == 1

    def broken(*args, **kwargs):
        raise RuntimeError("No Adapter For Reshape")

    monkeypatch.setattr(onnx_intake, "upgrade_opset", broken)
    with pytest.warns(UserWarning, match=r"opset 11 is below the 13 .*cannot upgrade it \(No Adapter For Reshape\); it "
                                         r"ships at opset 11 without an int8 candidate"):
        written, kept = onnx_intake.bring_in(source, tmp_path / "run2" / "student.onnx", x, "student.onnx")
    assert opset_of(written[0]) == 11 and kept["kept_opset"].startswith("cannot upgrade it")
    monkeypatch.undo()
    outputs = onnx_intake._outputs

    def drifted(path, x, shown_as=None):  # the upgraded model's outputs off by 0.01: the check must refuse it
        return [o + 0.01 if shown_as else o for o in outputs(path, x, shown_as)]

    monkeypatch.setattr(onnx_intake, "_outputs", drifted)
    with pytest.warns(UserWarning, match=r"version converter changed the outputs \(max abs error 0.01 on 8 samples\)"):
        written, kept = onnx_intake.bring_in(source, tmp_path / "run3" / "student.onnx", x, "student.onnx")
    assert opset_of(written[0]) == 11 and not kept["check"]["close"]


def test_a_model_kept_below_int8s_opset_ships_fp32_without_trying_a_quantizer(digits_weights, tmp_path, monkeypatch):
    from edgekd.pipeline import onnx_intake

    def changed(*args, **kwargs):
        return {"close": False, "max_abs_error": 0.5, "min_cosine": 0.99, "outputs": 1, "samples": 8}

    monkeypatch.setattr(onnx_intake, "compare_outputs", changed)
    path = tmp_path / "lr11.onnx"
    onnx.save(classifier(digits_weights, -1, opset=11), str(path))
    result = invoke("run", str(_config(tmp_path, path)), "--out", str(tmp_path / "run"))
    assert result.exit_code == 0, result.output
    said = " ".join(result.stderr.split())  # warnings wrap at the terminal's width
    assert "it ships at opset 11 without an int8 candidate" in said
    assert "the model is at opset 11, below the 13 that int8 needs" in said
    assert not list((tmp_path / "run" / "04-quantize").glob("*.onnx"))
    bundle = json.loads((tmp_path / "run" / "bundle" / "x86-cpu" / "manifest.json").read_text())
    assert bundle["artifact"]["precision"] == "fp32" and bundle["given_onnx"]["opset_upgrade"]["to"] == 11


@pytest.mark.parametrize("sample, said", [
    ((16, 16, 3), "x holds channels-last images (N, H, W, C) and the model takes (N, C, H, W): save x as (N, C, H, W)"),
    ((1, 16, 16), "x holds grey images (one channel) and the model takes 3: repeat the grey channel"),
])
def test_an_npz_of_channels_last_or_grey_images_is_told_how_to_save_x(sample, said):
    """Trial defect (session 14): a channels-last or grey .npz for a 3-channel NCHW model said "check data.* (source,
    image_size)", though data.image_size applies to image folders only; the message now says how to save x."""
    from edgekd.core.errors import ConfigError
    from edgekd.pipeline.given_model import check_input_matches

    spec = {"name": "input", "shape": ["batch", 3, 16, 16], "dtype": "float32"}
    with pytest.raises(ConfigError) as error:
        check_input_matches(spec, sample, "student.onnx 'model.onnx'", image_files=False)
    message = str(error.value)
    assert said in message and "image_size" not in message and "\n" not in message


def test_a_sequence_first_input_is_not_called_a_fixed_shape():
    """Trial defect (ship3-5, session 14): an input (12, n, 8), batch on axis 1, was said to have "the fixed shape
    (12, n, 8)" with the advice to export a dynamic batch axis it already has. The message now says axis 0 is fixed
    at 12 and axis 1 dynamic (sequence-first), and that the batch must come first; a wholly fixed shape keeps its words."""
    from edgekd.core.errors import ConfigError
    from edgekd.pipeline.given_model import check_input_matches

    with pytest.raises(ConfigError) as error:
        check_input_matches({"name": "x", "shape": [12, "n", 8], "dtype": "float32"}, (200, 8), "student.onnx 'seq.onnx'")
    message = str(error.value)
    assert "fixed shape" not in message and "axis 0 is fixed at 12 and axis 1 (n) is dynamic, a sequence-first" in message
    assert "export the model with the batch first" in message and "dynamic_axes={'x': {0: 'batch'}}" in message
    with pytest.raises(ConfigError, match=r"has shape \(1, 3, h, w\), its axis 0 fixed at 1 \(dynamic: axis 2, 3\)"):
        check_input_matches({"name": "img", "shape": [1, 3, "h", "w"], "dtype": "float32"}, (3, 8, 8), "student.onnx 'd.onnx'")
    with pytest.raises(ConfigError, match=r"has the fixed shape \(1, 3, 8, 8\)"):
        check_input_matches({"name": "img", "shape": [1, 3, 8, 8], "dtype": "float32"}, (3, 8, 8), "student.onnx 'd.onnx'")
