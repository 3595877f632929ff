"""Damaged data files, degenerate datasets and out-of-range seeds are bad input: exit 2 with one line, never an
internal error and never a model trained on them (issue 20, items 6 and 7)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edgekd.core.fileio import sha256_of, write_json_atomic
from edgekd.device.bundle import sealed

from .helpers import assert_one_line_error, invoke, write_config


def _npz(path: Path, n: int = 90, classes: int = 3, **arrays) -> Path:
    rng = np.random.default_rng(0)
    y = arrays.pop("y", np.arange(n) % classes)
    np.savez(path, x=arrays.pop("x", rng.random((len(y), 1, 8, 8), np.float32)), y=y, **arrays)
    return path


def _run_on(tmp_path: Path, data: Path):
    """`edgekd run` on `data`, after which (a refusal) no run folder may exist."""
    config = write_config(tmp_path, data={"source": "npz", "path": str(data)})
    result = invoke("run", config, "--out", tmp_path / "run")
    assert result.exit_code == 0 or not (tmp_path / "run").exists(), "a refused input left a run folder"
    return result


# ---- damaged files ------------------------------------------------------------------------------


def test_truncated_npz(tmp_path):
    data = _npz(tmp_path / "cut.npz")
    data.write_bytes(data.read_bytes()[:700])
    assert_one_line_error(_run_on(tmp_path, data), "cut.npz", "cannot read npz", "damaged", "numpy.savez")


def test_npy_file_named_npz(tmp_path):
    data = tmp_path / "plain.npz"
    with open(data, "wb") as handle:
        np.save(handle, np.zeros((10, 1, 8, 8), np.float32))
    assert_one_line_error(_run_on(tmp_path, data), "plain.npz", "a single .npy array, not an .npz archive")


# ---- degenerate datasets --------------------------------------------------------------------------


def test_a_single_class_is_refused(tmp_path):
    data = _npz(tmp_path / "one.npz", y=np.zeros(90, np.int64))
    assert_one_line_error(_run_on(tmp_path, data), "data.path", "every image has label 0", "at least two classes")


def test_a_label_gap_is_refused(tmp_path):
    y = np.arange(120) % 10
    y[5] = 11  # ten classes 0..9 and one stray 11: would silently make a 12-way model with two empty classes
    data = _npz(tmp_path / "gap.npz", y=y)
    assert_one_line_error(_run_on(tmp_path, data), "gap.npz", "no image has label 10", "labels run to 11",
                          "every class present")


# ---- seeds ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("section, value", [({}, -1), ({}, 2**70), ({"distill": {"seed": -5}}, None),
                                            ({"distill": {"augment": {"seed": 2**64}}}, None)])
def test_out_of_range_seeds_are_refused(tmp_path, section, value):
    config = write_config(tmp_path, **(section or {"seed": value}))
    assert_one_line_error(invoke("run", config, "--out", tmp_path / "run"), "seed")
    assert not (tmp_path / "run").exists()


def test_a_pinned_calibration_set_that_changed_is_refused_before_training(tmp_path):
    """Trial defect (session 12, carried): a recipe's expected_sha256 was checked in the quantize stage, after the
    teachers and the student had trained on data that had changed since the recipe was pinned."""
    recipe = tmp_path / "pinned.yaml"
    recipe.write_text(f"name: pinned\nsource: train\ncount: 32\nexpected_sha256: '{'0' * 64}'\n", encoding="utf-8")
    config = write_config(tmp_path, quantize={"calibration": str(recipe)})
    assert_one_line_error(invoke("run", config, "--out", tmp_path / "run"), "calibration recipe 'pinned'", "the data changed")
    assert not [p for p in (tmp_path / "run").rglob("*") if p.is_file()], "nothing trained, nothing written"


# ---- a bundle's eval.npz (as an attacker or a bad copy would leave it, hashes updated) --------------------


@pytest.fixture
def bundle(tmp_path, finished_run) -> Path:
    return shutil.copytree(finished_run / "bundle" / "x86-cpu", tmp_path / "x86-cpu")


def _replace_eval(bundle: Path, **changes) -> None:
    with np.load(bundle / "eval.npz") as loaded:
        arrays = {**dict(loaded), **changes}
    np.savez_compressed(bundle / "eval.npz", **arrays)
    manifest = json.loads((bundle / "manifest.json").read_text())
    for entry in manifest["files"]:
        if entry["path"] == "eval.npz":
            entry.update(sha256=sha256_of(bundle / "eval.npz"), bytes=(bundle / "eval.npz").stat().st_size)
    write_json_atomic(bundle / "manifest.json", sealed(manifest))


def _bench(bundle: Path):
    return invoke("bench", bundle, "--no-memory", "--runs", "1", "--min-seconds", "0")


def test_eval_images_of_another_shape(bundle):
    with np.load(bundle / "eval.npz") as loaded:
        n = len(loaded["y"])
    _replace_eval(bundle, x=np.zeros((n, 1, 9, 9), np.float32))
    assert_one_line_error(_bench(bundle), "eval.npz", "images 'x' are (1, 9, 9)", "the model takes (1, 8, 8)")


def test_eval_with_fewer_labels_than_images(bundle):
    with np.load(bundle / "eval.npz") as loaded:
        y = loaded["y"]
    _replace_eval(bundle, y=y[:-3])
    assert_one_line_error(_bench(bundle), "eval.npz", "labels 'y' must be", "one per image")


def test_truncated_eval_npz_with_its_hash_updated(bundle):
    data = (bundle / "eval.npz").read_bytes()
    (bundle / "eval.npz").write_bytes(data[: len(data) // 2])
    manifest = json.loads((bundle / "manifest.json").read_text())
    for entry in manifest["files"]:
        if entry["path"] == "eval.npz":
            entry.update(sha256=sha256_of(bundle / "eval.npz"))
    write_json_atomic(bundle / "manifest.json", sealed(manifest))
    assert_one_line_error(_bench(bundle), "eval.npz", "cannot read npz")


def test_bad_data_under_resume_leaves_the_earlier_run_untouched(tmp_path, finished_run):
    run = shutil.copytree(finished_run, tmp_path / "run")
    before = {str(p.relative_to(run)): sha256_of(p) for p in run.rglob("*") if p.is_file()}
    config = write_config(tmp_path, targets=["x86-cpu", "intel-cpu"],
                          data={"source": "npz", "path": str(_npz(tmp_path / "one.npz", y=np.zeros(90, np.int64)))})
    log_before = (run / "edgekd.log").read_text()
    assert_one_line_error(invoke("run", config, "--out", run, "--resume"), "at least two classes")
    after = {str(p.relative_to(run)): sha256_of(p) for p in run.rglob("*") if p.is_file()}
    # Only the run's log has changed: the refused attempt and its error appended (session 14), nothing rewritten.
    assert {k: v for k, v in after.items() if k != "edgekd.log"} == {k: v for k, v in before.items() if k != "edgekd.log"}
    log_after = (run / "edgekd.log").read_text()
    assert log_after.startswith(log_before) and "at least two classes" in log_after[len(log_before):]


def test_reports_name_the_model_they_measured_and_gate_holds_them_to_it(tmp_path, bundle, finished_run):
    """Trial defect (session 13): a --baseline from another ship on the same data lent its reference to these bundles
    (PASS at a drop of -54.6 points), and a report gated PASS after its bundle's model.onnx was replaced."""
    from edgekd import api

    device = tmp_path / "device.json"
    assert invoke("bench", bundle, "--no-memory", "--runs", "1", "--min-seconds", "0", "--rounds", "1",
                  "--json", device).exit_code == 0
    built = json.loads((finished_run / "report.json").read_text())
    shipped = next(r for r in built["rows"] if r["target"] == "x86-cpu" and r["shipped"])
    measured = json.loads(device.read_text())["rows"][0]
    assert measured["model_sha256"] == shipped["model_sha256"] and len(shipped["model_sha256"]) == 64
    assert api.gate(device, baseline=finished_run / "report.json", max_drop=100).passed

    other = tmp_path / "other.json"
    other.write_text(json.dumps({**built, "rows": [{**r, "model_sha256": "0" * 64} for r in built["rows"]]}))
    assert_one_line_error(invoke("gate", device, "--baseline", other, "--max-drop", "100"),
                          "measured none of the models this report ships", "the run that built these bundles")

    (bundle / "model.onnx").write_bytes((bundle / "model.onnx").read_bytes() + b"\0")
    with pytest.warns(UserWarning, match=rf"bundle {bundle} has changed since this report measured it.*bench it again"):
        api.gate(device, max_drop=100)


def test_gate_of_a_report_page_names_the_json_beside_it(tmp_path, finished_run):
    """Trial defect (session 13): `edgekd gate RUN/report.md` said "not valid JSON ...: copy it again", not which file."""
    assert_one_line_error(invoke("gate", finished_run / "report.md"), "is the report for people",
                          f"give the report.json beside it: {finished_run / 'report.json'}")
