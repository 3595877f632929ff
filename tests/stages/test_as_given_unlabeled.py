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
from tests.stages.test_as_given import _run_without_torch, trained  # noqa: F401  (a module-scoped fixture)

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
def unlabeled_run(trained, tmp_path_factory):  # noqa: F811
    root = tmp_path_factory.mktemp("unlabeled")
    data = _digit_pngs(root / "eval", range(0, 600))
    calibration = _digit_pngs(root / "calibration", range(1000, 1100), depth=2)
    out = root / "run"
    done = _run_without_torch("ship", str(trained["onnx"]), "--data", str(data), "--calibration", str(calibration),
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
    assert NOTE in (out / "report.md").read_text()
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
