"""Shipping a trained model with data that has no labels: calibrated on an unlabeled folder, judged by fidelity to fp32.

The run goes through `edgekd ship` with torch blocked (the ONNX path), then `edgekd bench` and `edgekd gate` on its
bundle, and every report says that fidelity, not accuracy, was measured.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from tests.faults.helpers import invoke
from tests.pipeline.stages.test_as_given import _run_without_torch, trained  # noqa: F401  (a module-scoped fixture)

NOTE = "measured: fidelity to fp32 (no labels)"


def _digit_pngs(root, indices, depth: int = 0):
    """Digits as 8x8 grey PNG files, no class folders; with depth, spread over nested sub-folders."""
    from sklearn.datasets import load_digits

    images = load_digits().images
    for index in indices:
        folder = root.joinpath(*[f"part{index % 3}"] * depth)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.round(images[index] * 255 / 16).astype(np.uint8), mode="L").save(folder / f"{index}.png")
    return root


@pytest.fixture(scope="module")
def rgb_onnx(tmp_path_factory):
    """A digits MLP for three channels, as `edgekd ship` decodes image files (RGB): grey PNG files feed it the same
    value in each channel, as it was trained."""
    import torch

    from edgekd.data import load_dataset
    from edgekd.data.config import DataConfig
    from edgekd.train.config import ExportConfig, ModelConfig
    from edgekd.train.models import build_model
    from edgekd.train.onnx_export import export_onnx

    data = load_dataset(DataConfig(), 0, None)
    x = np.repeat(data.train.x, 3, axis=1)
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch="mlp", width=32), x.shape[1:], data.num_classes, None)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(150):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(data.train.y)).backward()
        optimizer.step()
    return export_onnx(model.eval(), x[:8], tmp_path_factory.mktemp("rgb") / "mlp-rgb.onnx", ExportConfig(), {})


@pytest.fixture(scope="module")
def unlabeled_run(rgb_onnx, tmp_path_factory):
    root = tmp_path_factory.mktemp("unlabeled")
    data = _digit_pngs(root / "eval", range(0, 600))
    calibration = _digit_pngs(root / "calibration", range(1000, 1100), depth=2)
    out = root / "run"
    done = _run_without_torch("ship", str(rgb_onnx), "--data", str(data), "--calibration", str(calibration),
                              "--targets", "x86-cpu", "--max-drop", "3", "--out", str(out))
    return {"done": done, "out": out, "root": root, "calibration": calibration}


def test_ship_with_unlabeled_folders_is_gated_by_fidelity(unlabeled_run):
    done, out = unlabeled_run["done"], unlabeled_run["out"]
    assert done.returncode == 0, done.stderr[-3000:]
    assert NOTE in done.stdout and "gate: PASS" in done.stdout
    written = (out / "edgekd.yaml").read_text()
    assert "calibration_images: " + str(unlabeled_run["calibration"].resolve()) in written
    report = json.loads((out / "report.json").read_text())
    assert report["measured"] == "fidelity to fp32 (no labels)"
    assert report["references"]["student_fp32"]["top1"] == 1.0  # the fp32 model agrees with itself
    shipped = [r for r in report["rows"] if r["shipped"]]
    assert shipped and all(r["top1"] == r["fidelity"]["top1_agreement"] for r in shipped)
    assert all(r["fidelity"]["cosine"] > 0.9 for r in shipped)
    assert NOTE in (out / "report.md").read_text() and NOTE in (out / "report.html").read_text()
    manifest = json.loads((out / "manifest.json").read_text())
    calibration = manifest["stages"]["quantize"]["metrics"]["calibration"]
    assert calibration["folder"] == str(unlabeled_run["calibration"].resolve()) and calibration["samples"] == 100
    assert manifest["stages"]["distill"]["metrics"]["measured"] == "fidelity to fp32 (no labels)"
    bundle = json.loads((out / "bundle" / "x86-cpu" / "manifest.json").read_text())
    assert bundle["measured"] == "fidelity to fp32 (no labels)"
    gate = json.loads((out / "gate.json").read_text())
    assert gate["passed"] and all("disagreement with the fp32 model" in c["reason"] for c in gate["checks"]
                                  if c["threshold"] == "max_drop")


def test_bench_and_gate_on_the_device_say_fidelity_too(unlabeled_run):
    assert unlabeled_run["done"].returncode == 0, unlabeled_run["done"].stderr[-3000:]
    bundle, device = unlabeled_run["out"] / "bundle" / "x86-cpu", unlabeled_run["root"] / "device"
    done = _run_without_torch("bench", str(bundle), "--runs", "5", "--min-seconds", "0", "--warmup-runs", "1",
                              "--warmup-seconds", "0", "--rounds", "1", "--no-memory", "--out", str(device))
    assert done.returncode == 0, done.stderr[-3000:]
    assert NOTE in done.stdout
    assert json.loads((device / "report.json").read_text())["measured"] == "fidelity to fp32 (no labels)"
    gated = invoke("gate", str(device / "report.json"))
    assert gated.exit_code == 0 and "gate: PASS" in gated.output, gated.output


def test_an_empty_or_missing_calibration_folder_is_one_line(trained, tmp_path):  # noqa: F811
    data = _digit_pngs(tmp_path / "eval", range(0, 30))
    (tmp_path / "empty" / "deeper").mkdir(parents=True)
    for folder, message in [(tmp_path / "empty", "no images found"), (tmp_path / "absent", "not a folder")]:
        result = invoke("ship", str(trained["onnx"]), "--data", str(data), "--calibration", str(folder),
                        "--out", str(tmp_path / "never"))
        assert result.exit_code == 2 and message in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "never" / "manifest.json").exists()


def test_the_manifest_records_every_input_and_the_whole_preprocessing(unlabeled_run):
    assert unlabeled_run["done"].returncode == 0, unlabeled_run["done"].stderr[-3000:]
    bundle = json.loads((unlabeled_run["out"] / "bundle" / "x86-cpu" / "manifest.json").read_text())
    (spec,) = bundle["inputs"]
    assert spec["dtype"] == "float32" and spec["shape"][1:] == [3, 8, 8] and set(spec["dynamic_axes"]) == {"0"}
    assert spec["name"] == bundle["input"]["name"]
    steps = bundle["preprocessing"]
    assert steps["image"]["color"] == "rgb" and steps["input_shape"] == [3, 8, 8] and len(steps["mean"]) == 3
    assert {"resize_shorter_side", "center_crop", "resize_square"} <= set(steps["image"])


def _bench_images(bundle, images, out):
    return _run_without_torch("bench", str(bundle), "--images", str(images), "--runs", "5", "--min-seconds", "0",
                              "--warmup-runs", "1", "--warmup-seconds", "0", "--rounds", "1", "--no-memory", "--out", str(out))


def test_bench_on_raw_images_without_torch_measures_fidelity_or_top1(unlabeled_run):
    assert unlabeled_run["done"].returncode == 0, unlabeled_run["done"].stderr[-3000:]
    root, bundle = unlabeled_run["root"], unlabeled_run["out"] / "bundle" / "x86-cpu"
    done = _bench_images(bundle, root / "calibration", root / "raw-unlabeled")
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((root / "raw-unlabeled" / "report.json").read_text())
    assert report["measured"] == "fidelity to fp32 (no labels)" and report["eval_set"]["samples"] == 100
    assert "agreement with itself is 1 by construction" in report["warnings"][0]  # one bundle: said, not hidden
    # and its gate counts that drop as skipped, not as a pass (before: "gate: PASS (1 passed)", exit 0)
    gated = invoke("gate", root / "raw-unlabeled" / "report.json")
    assert gated.exit_code == 1 and "its own reference" in gated.output and "1 passed" not in gated.output, gated.output
    # Class folders named as the bundle's labels ("0".."9": the model's outputs) give top-1 against them.
    from sklearn.datasets import load_digits

    digits = load_digits()
    for index in range(1200, 1400):
        folder = root / "labeled" / str(digits.target[index])
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.round(digits.images[index] * 255 / 16).astype(np.uint8), mode="L").save(folder / f"{index}.png")
    done = _bench_images(bundle, root / "labeled", root / "raw-labeled")
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((root / "raw-labeled" / "report.json").read_text())
    assert report["measured"] == "top-1 against the labels" and report["eval_set"]["samples"] == 200
    assert report["rows"][0]["top1"] > 0.8  # the trained model, fed the PNG files as the build machine fed them


def test_bench_images_that_do_not_fit_the_model_are_one_line(unlabeled_run, tmp_path):
    assert unlabeled_run["done"].returncode == 0, unlabeled_run["done"].stderr[-3000:]
    Image.new("L", (9, 8)).save(tmp_path / "wide.png")
    bundle = unlabeled_run["out"] / "bundle" / "x86-cpu"
    result = invoke("bench", str(bundle), "--images", str(tmp_path), "--no-memory")
    assert result.exit_code == 2 and "decode to (3, 8, 9) but the model takes (3, 8, 8)" in result.output, result.output
    (tmp_path / "wide.png").unlink()
    for name in ("cats", "3"):  # one sub-folder named as a label, one not: neither labeled nor plainly unlabeled
        (tmp_path / name).mkdir()
        Image.new("L", (8, 8)).save(tmp_path / name / "1.png")
    result = invoke("bench", str(bundle), "--images", str(tmp_path), "--no-memory")
    assert result.exit_code == 2 and "sub-folder(s) cats are not among the model's labels" in result.output, result.output


@pytest.mark.parametrize("student, extra, message", [
    ({"arch": "mlp", "width": 32, "checkpoint": "CKPT"}, {}, "a PyTorch student's class count comes from them"),
    ({"onnx": "ONNX"}, {"quantize": {"method": "ptq", "calibration_images": "nowhere"}}, "calibration_images 'nowhere': not a folder"),
    ({"arch": "mlp", "width": 8}, {"teachers": [{"arch": "mlp", "width": 8}]}, "distill.mode offline trains on labels"),
])
def test_what_needs_labels_says_so_in_one_line(trained, tmp_path, student, extra, message):  # noqa: F811
    import yaml

    data = _digit_pngs(tmp_path / "eval", range(0, 30))
    student = {k: str(trained["checkpoint"]) if v == "CKPT" else str(trained["onnx"]) if v == "ONNX" else v
               for k, v in student.items()}
    config = {"name": "u", "data": {"source": "imagefolder", "path": str(data), "color": "gray"}, "student": student,
              "targets": ["x86-cpu"], **extra}
    (tmp_path / "u.yaml").write_text(yaml.safe_dump(config))
    result = invoke("run", str(tmp_path / "u.yaml"), "--out", str(tmp_path / "run"))
    assert result.exit_code == 2 and message in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1


def test_every_input_is_described_and_a_second_one_is_refused_by_name(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    from edgekd.core.errors import ConfigError
    from edgekd.pipeline.given_model import onnx_input_spec, onnx_inputs

    graph = helper.make_graph([helper.make_node("Identity", ["image"], ["logits"])], "two",
                              [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["n", 3, "h", 8]),
                               helper.make_tensor_value_info("mask", TensorProto.INT64, ["n", 4])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", 3, "h", 8])])
    path = tmp_path / "two.onnx"
    onnx.save(helper.make_model(graph), str(path))
    assert onnx_inputs(path) == [
        {"name": "image", "dtype": "float32", "shape": ["n", 3, "h", 8], "dynamic_axes": {"0": "n", "2": "h"}},
        {"name": "mask", "dtype": "int64", "shape": ["n", 4], "dynamic_axes": {"0": "n"}}]
    with pytest.raises(ConfigError, match=r"takes 2 inputs \(image float32 \(n, 3, h, 8\), mask int64 \(n, 4\)\)"):
        onnx_input_spec(path)


def test_ship_no_labels_and_calibration_are_written_into_the_pipeline_file(rgb_onnx, tmp_path):
    from edgekd.core.errors import ConfigError
    from edgekd.pipeline.ship import ship_config

    (tmp_path / "classes" / "a").mkdir(parents=True)
    (tmp_path / "calib").mkdir()
    config = ship_config(str(rgb_onnx), str(tmp_path / "classes"), calibration=str(tmp_path / "calib"), labels=False)
    assert config["data"] == {"source": "imagefolder", "path": str((tmp_path / "classes").resolve()), "labels": "none"}
    assert config["quantize"] == {"calibration_images": str((tmp_path / "calib").resolve())}
    with pytest.raises(ConfigError, match="labels=False: applies to an image folder or an .npz file, not to 'digits'"):
        ship_config(str(rgb_onnx), "digits", labels=False)
