"""The fidelity task (issue 34, part 2): a model that is not a classifier, shipped as given and judged output by output.

A tiny self-made text detector (PP-OCR det's I/O: [N, 3, H, W] -> [N, 1, H, W] probability map) goes through
`edgekd ship --metric mask_iou` with torch blocked, with and without labels; then `edgekd bench` on its bundles and
`edgekd gate` (torch blocked as on a device) use the same numbers: the mask IoU and each output's cosine and SQNR.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from benchmarks.helpers.tiny_graphs import tiny_det
from edgekd.core.task_metrics import task_metric
from tests.blocking import CLI_WITHOUT_TORCH
from tests.faults.helpers import assert_one_line_error, invoke, subprocess_env

FIDELITY = "fidelity to fp32 (no labels)"


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", CLI_WITHOUT_TORCH, *map(str, args)], capture_output=True, text=True,
                          timeout=600, cwd=Path(__file__).resolve().parents[3], env=subprocess_env(OMP_NUM_THREADS="1"))


@pytest.fixture(scope="module")
def det(tmp_path_factory):
    root = tmp_path_factory.mktemp("det")
    model = tiny_det(root / "tiny_det.onnx", features=True)  # two outputs: the map, and features [N, 8, H, W]
    x = np.random.default_rng(0).random((60, 3, 32, 32)).astype(np.float32)
    import onnxruntime as ort

    maps = ort.InferenceSession(str(model)).run(None, {"x": x})[0]
    truth = (maps[:, 0] > 0.3).astype(np.uint8)
    truth[::2, :8] = 1  # ground truth the fp32 model misses in part: its IoU against labels is below 1
    np.savez(root / "pages.npz", x=x, y=truth)
    np.savez(root / "unlabeled.npz", x=x)
    return {"root": root, "model": model, "labeled": root / "pages.npz", "unlabeled": root / "unlabeled.npz"}


@pytest.fixture(scope="module")
def unlabeled_run(det):
    out = det["root"] / "run-unlabeled"
    done = _cli("ship", det["model"], "--data", det["unlabeled"], "--no-labels", "--metric", "mask_iou", "--max-drop", "30",
                "--targets", "x86-cpu", "--out", out)
    return {"done": done, "out": out}


def test_ship_without_labels_is_judged_by_mask_iou_against_fp32(unlabeled_run):
    done, out = unlabeled_run["done"], unlabeled_run["out"]
    assert done.returncode == 0, done.stderr[-3000:]
    assert "measured: mask_iou against the fp32 model's outputs" in done.stdout
    assert "task:\n  kind: fidelity\n  metric: mask_iou" in (out / "edgekd.yaml").read_text()
    report = json.loads((out / "report.json").read_text())
    assert report["task_metric"] == "mask_iou" and report["measured"] == FIDELITY
    assert report["references"]["student_fp32"]["top1"] == 1.0  # the fp32 model's map agrees with itself
    rows = {row["artifact"]: row for row in report["rows"]}
    int8 = rows["x86-cpu/int8"]["fidelity"]
    assert 10 < int8["sqnr_db"] < 100 and 0.99 < int8["cosine"] < 1 and int8["max_abs_error"] > 0  # measured, not copied
    assert rows["x86-cpu/fp32"]["fidelity"]["max_abs_error"] == 0
    per_output = rows["x86-cpu/int8"]["fidelity"]["outputs"]  # every output, by name; the worst at the top
    assert set(per_output) == {"maps", "r2"} and int8["sqnr_db"] == min(o["sqnr_db"] for o in per_output.values())
    assert int8["max_abs_error"] == max(o["max_abs_error"] for o in per_output.values())
    assert 0 < rows["x86-cpu/int8"]["top1"] < 1
    assert "- `x86-cpu/int8`: `maps` cosine 0.9" in (out / "report.md").read_text()
    manifest = json.loads((out / "bundle" / "x86-cpu" / "manifest.json").read_text())
    assert manifest["task_metric"] == "mask_iou" and manifest["output"]["shape"] == ["batch", 1, 32, 32]
    assert all("val_sqnr_db" in row for row in manifest["selection"])
    # every candidate's drop comes with its 95% bound over the validation samples (core.task_metrics.drop_bound)
    assert all(row["val_drop_bound"] >= row["val_drop"] - 1e-9 for row in manifest["selection"])
    with np.load(out / "bundle" / "x86-cpu" / "eval.npz") as arrays:  # y: the fp32 maps thresholded, as mask labels
        assert arrays["y"].shape == (len(arrays["x"]), 32, 32)
        assert (arrays["y"] == (arrays["reference_logits"][:, 0] > 0.3)).all()
        assert np.array_equal(arrays["reference_outputs/maps"], arrays["reference_logits"])
        assert arrays["reference_outputs/r2"].shape == (len(arrays["x"]), 8, 32, 32)


def test_device_bench_and_gate_without_torch_use_the_same_numbers(unlabeled_run, tmp_path):
    out = unlabeled_run["out"]
    assert unlabeled_run["done"].returncode == 0
    device = tmp_path / "device"
    done = _cli("bench", out, "--runs", "10", "--min-seconds", "0", "--warmup-runs", "1", "--warmup-seconds", "0",
                "--rounds", "2", "--no-memory", "--out", device)
    assert done.returncode == 0, done.stderr[-3000:]
    ours, theirs = (json.loads(path.read_text()) for path in (out / "report.json", device / "report.json"))
    assert theirs["task_metric"] == "mask_iou" and theirs["measured"] == FIDELITY
    assert theirs["eval_set"]["sha256"] == ours["eval_set"]["sha256"]
    pipeline_rows = {row["artifact"]: row for row in ours["rows"]}
    for row in theirs["rows"]:
        assert row["top1"] == pytest.approx(pipeline_rows[row["artifact"]]["top1"])
        assert row["fidelity"]["sqnr_db"] == pytest.approx(pipeline_rows[row["artifact"]]["fidelity"]["sqnr_db"], rel=1e-5)
        assert set(row["fidelity"]["outputs"]) == {"maps", "r2"}
    images = invoke("bench", out / "bundle" / "x86-cpu", "--images", tmp_path, "--out", tmp_path / "images")
    assert images.exit_code == 2 and "is judged by mask_iou, which needs its labels in eval.npz" in images.output
    # The shipped model's SQNR on the device judges it (fp32 is exact, 300 dB, the cap; int8 ships where timing finds
    # it faster beyond noise, about 30 dB): a limit just under it passes, one just over it fails.
    shipped = next(row for row in theirs["rows"] if row["shipped"])["fidelity"]["sqnr_db"]
    under = _cli("gate", device / "report.json", "--min-sqnr-db", f"{shipped - 0.5:.2f}")
    assert under.returncode == 0 and "min_sqnr_db" in under.stdout, under.stdout
    if shipped < 299:
        over = _cli("gate", device / "report.json", "--min-sqnr-db", f"{shipped + 0.5:.2f}")
        assert over.returncode == 1 and "min_sqnr_db" in over.stdout, over.stdout


def test_selection_applies_min_sqnr_db(unlabeled_run, tmp_path):
    """gate.min_sqnr_db in the pipeline file: int8 (about 30 dB here) cannot be chosen, and its verdict says why."""
    config = yaml.safe_load((unlabeled_run["out"] / "edgekd.yaml").read_text())
    config["gate"] = {"max_drop": 100, "min_sqnr_db": 60}
    config["bench"] = {"eval_samples": 8, "memory": False}
    path = tmp_path / "edgekd.yaml"
    path.write_text(yaml.safe_dump(config))
    done = _cli("run", path, "--out", tmp_path / "run")
    assert done.returncode == 0, done.stderr[-3000:]
    compiled = json.loads((tmp_path / "run" / "manifest.json").read_text())["stages"]["compile"]["metrics"]["targets"]
    int8 = next(c for c in compiled["x86-cpu"]["candidates"] if c["name"] == "int8")
    assert int8["verdict"].startswith("sqnr_db ") and "< gate.min_sqnr_db 60" in int8["verdict"]


def test_ship_with_labels_scores_against_them(det, tmp_path):
    out = tmp_path / "run"
    done = _cli("ship", det["model"], "--data", det["labeled"], "--metric", "mask_iou", "--max-drop", "30",
                "--targets", "x86-cpu", "--out", out)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert report["measured"] == "mask_iou against the labels" and report["task_metric"] == "mask_iou"  # not top-1 (trial, session 12)
    with np.load(out / "bundle" / "x86-cpu" / "eval.npz") as arrays:
        expected = task_metric("mask_iou").score(arrays["reference_logits"], arrays["y"])
    assert report["references"]["student_fp32"]["top1"] == pytest.approx(expected)
    assert 0.3 < expected < 0.95  # the labels the model partly misses, not its own outputs
    rows = {row["artifact"]: row for row in report["rows"]}
    assert rows["x86-cpu/fp32"]["fidelity"]["task_metric_agreement"] == 1.0  # and beside it, agreement with fp32
    assert 0 < rows["x86-cpu/int8"]["fidelity"]["task_metric_agreement"] < 1


def test_a_metric_that_cannot_read_the_output_is_one_line(det, tmp_path):
    result = invoke("ship", det["model"], "--data", det["labeled"], "--metric", "box_f1", "--out", tmp_path / "run")
    assert result.exit_code == 2, result.output
    assert f"student.onnx '{Path(det['model']).resolve()}': its output (batch, 1, 32, 32) cannot be scored by task.metric " \
           "box_f1" in result.output  # the user's file, not only the config key


def test_metric_needs_an_onnx_model_and_an_npz(det, tmp_path):
    result = invoke("ship", det["model"], "--data", "digits", "--metric", "mask_iou", "--out", tmp_path / "run")
    assert result.exit_code == 2 and "--metric mask_iou: judges an .onnx MODEL on an .npz" in result.output


def test_labels_with_a_wrong_row_count_are_refused(det, tmp_path):
    np.savez(tmp_path / "bad.npz", x=np.zeros((10, 3, 32, 32), np.float32), y=np.zeros((9, 32, 32), np.uint8))
    result = invoke("ship", det["model"], "--data", tmp_path / "bad.npz", "--metric", "mask_iou", "--out", tmp_path / "run")
    assert result.exit_code == 2 and "10 samples in x but 9 rows in y" in result.output


def test_task_section_validation():
    from edgekd.core.errors import ConfigError
    from edgekd.pipeline.config import validate_config
    with pytest.raises(ConfigError, match="unknown task metric 'iou'"):
        validate_config({"student": {"onnx": "m.onnx"}, "data": {"source": "npz", "path": "d.npz"},
                         "task": {"kind": "fidelity", "metric": "iou"}})
    with pytest.raises(ConfigError, match="task: kind fidelity ships a model given as ONNX"):
        validate_config({"student": {"onnx": "m.onnx"}, "task": {"metric": "mask_iou"}})


def _vector_classifier(path: Path) -> Path:
    """(N, 16) features -> (N, 3) softmax: a classifier whose input is not an image."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = numpy_helper.from_array(np.random.default_rng(1).standard_normal((16, 3)).astype(np.float32), "w")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["z"]), helper.make_node("Softmax", ["z"], ["probs"], axis=-1)]
    graph = helper.make_graph(nodes, "vector", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 16])],
                              [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", 3])], [weights])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_a_classifier_of_vectors_ships_with_metric_top1_and_benches_on_the_device(tmp_path):
    """--metric top1 takes x as the model takes it (no image scaling); edgekd bench on its bundle checks eval.npz as
    any model's arrays, not as (N, C, H, W) images."""
    model = _vector_classifier(tmp_path / "vector.onnx")
    np.savez(tmp_path / "vectors.npz", x=np.random.default_rng(0).standard_normal((60, 16)).astype(np.float32))
    out = tmp_path / "run"
    done = _cli("ship", model, "--data", tmp_path / "vectors.npz", "--metric", "top1", "--no-labels", "--max-drop", "50",
                "--targets", "x86-cpu", "--out", out)
    assert done.returncode == 0, done.stderr[-3000:]
    device = _cli("bench", out / "bundle" / "x86-cpu", "--runs", "5", "--min-seconds", "0", "--warmup-runs", "1",
                  "--warmup-seconds", "0", "--rounds", "1", "--no-memory", "--out", tmp_path / "device")
    assert device.returncode == 0, device.stderr[-2000:]
    report = json.loads((tmp_path / "device" / "report.json").read_text())
    assert report["rows"][0]["top1"] == 1.0 and report["rows"][0]["fidelity"]["task_metric_agreement"] == 1.0


def _two_input_vad(path: Path) -> Path:
    """input [N, 512] and a batch-first state h [N, 16] -> output [N, 1] speech probability, hN [N, 16]: a model with
    several inputs and outputs (Silero VAD's kind, its state batch first)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(2)
    inits = [numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)
             for name, shape, scale in (("w1", (512, 16), 0.2), ("w2", (16, 16), 0.3), ("w3", (16, 1), 1.5))]
    nodes = [helper.make_node("MatMul", ["input", "w1"], ["a"]), helper.make_node("MatMul", ["h", "w2"], ["b"]),
             helper.make_node("Add", ["a", "b"], ["ab"]), helper.make_node("Tanh", ["ab"], ["hN"]),
             helper.make_node("MatMul", ["hN", "w3"], ["score"]), helper.make_node("Sigmoid", ["score"], ["output"])]
    graph = helper.make_graph(nodes, "vad2", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 512]),
                                              helper.make_tensor_value_info("h", TensorProto.FLOAT, ["batch", 16])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 1]),
                               helper.make_tensor_value_info("hN", TensorProto.FLOAT, ["batch", 16])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_a_model_with_several_inputs_and_outputs_ships_judged_by_speech_f1(tmp_path):
    """An npz with one array per input name and frame labels y: every output compared by name, speech F1 on the first,
    the same numbers from edgekd bench on the device."""
    model = _two_input_vad(tmp_path / "vad.onnx")
    rng = np.random.default_rng(0)
    frames = rng.standard_normal((80, 512)).astype(np.float32)
    import onnxruntime as ort

    state = np.tanh(rng.standard_normal((80, 16))).astype(np.float32)
    speech = ort.InferenceSession(str(model)).run(None, {"input": frames, "h": state})[0][:, 0] > 0.5
    labels = speech.astype(np.int64)
    labels[::5] = 1 - labels[::5]  # ground truth the fp32 model gets wrong on a fifth of the frames
    np.savez(tmp_path / "frames.npz", input=frames, h=state, y=labels)
    out = tmp_path / "run"
    done = _cli("ship", model, "--data", tmp_path / "frames.npz", "--metric", "speech_f1", "--max-drop", "50",
                "--targets", "x86-cpu", "--out", out)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert report["task_metric"] == "speech_f1" and 0.5 < report["references"]["student_fp32"]["top1"] < 1
    rows = {row["artifact"]: row for row in report["rows"]}
    assert set(rows["x86-cpu/int8"]["fidelity"]["outputs"]) == {"output", "hN"}
    with np.load(out / "bundle" / "x86-cpu" / "eval.npz") as arrays:
        assert {"input", "h", "y", "reference_outputs/output", "reference_outputs/hN"} <= set(arrays.files)
    device = _cli("bench", out, "--runs", "5", "--min-seconds", "0", "--warmup-runs", "1", "--warmup-seconds", "0",
                  "--rounds", "1", "--no-memory", "--out", tmp_path / "device")
    assert device.returncode == 0, device.stderr[-2000:]
    theirs = {row["artifact"]: row for row in json.loads((tmp_path / "device" / "report.json").read_text())["rows"]}
    for name, row in theirs.items():
        assert row["top1"] == pytest.approx(rows[name]["top1"])
        assert set(row["fidelity"]["outputs"]) == {"output", "hN"}


def test_a_model_that_scores_0_against_the_labels_is_refused(det, tmp_path):
    """Trial defect (session 11): a task-metric model scoring 0 (speech_f1 0.0% on 24 samples) shipped PASS: the gate
    compared every candidate with a reference of 0, which nothing can fall below."""
    with np.load(det["labeled"]) as arrays:
        x, truth = arrays["x"], arrays["y"]
    np.savez(tmp_path / "inverted.npz", x=x, y=np.zeros_like(truth))  # masks the model never draws: IoU 0 everywhere
    result = invoke("ship", det["model"], "--data", tmp_path / "inverted.npz", "--metric", "mask_iou", "--out", tmp_path / "run")
    assert_one_line_error(result, "mask_iou 0.0% on the test samples", "a gate against it would pass any model")


def test_task_metric_mistakes_found_in_the_trial_are_one_line(tmp_path):
    """Trial defects (session 12), a task metric's: a one-column output scored by --metric top1 (its top-1 is always
    class 0) shipped PASS; --normalize was recorded and not applied."""
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    score = helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch", 1])
    one = helper.make_model(helper.make_graph([helper.make_node("ReduceMean", ["x"], ["score"], axes=[1], keepdims=1)], "one",
                                              [x], [score]), opset_imports=[helper.make_opsetid("", 13)])
    one.ir_version = 8
    onnx.save(one, str(tmp_path / "one.onnx"))
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "one.npz", x=rng.normal(size=(60, 4)).astype(np.float32), y=rng.integers(0, 2, 60))
    result = invoke("ship", tmp_path / "one.onnx", "--data", tmp_path / "one.npz", "--metric", "top1", "--out", tmp_path / "a")
    assert_one_line_error(result, "first output has one column", "its top-1 is always class 0")
    result = invoke("ship", tmp_path / "one.onnx", "--data", tmp_path / "one.npz", "--metric", "top1", "--normalize", "0.5/0.5",
                    "--out", tmp_path / "b")
    assert_one_line_error(result, "data.normalize: a fidelity task feeds the npz", "(edgekd ship: no --normalize)")


def test_top1_of_a_sequence_output_is_refused_with_or_without_labels(tmp_path):
    """Trial defect (session 14): --metric top1 of a (n, t, classes) output without labels took argmax over axis 1 (the
    sequence axis) for the fp32 model's "labels" and shipped PASS; with labels it was refused by numpy's broadcast
    message. Both are now one line naming the output's shape and another task.metric."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 12, 8])
    scores = helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", 12, 5])
    weight = numpy_helper.from_array(np.random.default_rng(0).normal(size=(8, 5)).astype(np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["scores"])], "seq", [x], [scores], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "seq.onnx"))
    rng = np.random.default_rng(0)
    inputs = rng.normal(size=(60, 12, 8)).astype(np.float32)
    np.savez(tmp_path / "seq.npz", x=inputs)
    np.savez(tmp_path / "seq_y.npz", x=inputs, y=rng.integers(0, 5, 60))
    result = invoke("ship", tmp_path / "seq.onnx", "--data", tmp_path / "seq.npz", "--metric", "top1", "--no-labels",
                    "--out", tmp_path / "a")
    assert_one_line_error(result, "its output (batch, 12, 5) cannot be scored by task.metric top1",
                          "top1 scores (N, classes) outputs", "choose another task.metric")
    result = invoke("ship", tmp_path / "seq.onnx", "--data", tmp_path / "seq_y.npz", "--metric", "top1", "--out", tmp_path / "b")
    message = assert_one_line_error(result, "its output (batch, 12, 5) cannot be scored by task.metric top1",
                                    "top1 scores (N, classes) outputs", "choose another task.metric")
    assert "broadcast" not in message
