"""Every kind of bad input ends in one line `edgekd: error: ...` naming the file or field and the fix,
exit code 2, and no traceback."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from edgekd.core.fileio import sha256_of, write_json_atomic
from edgekd.device.bundle import sealed
from edgekd.train.models.zoo import MLP

from .helpers import assert_one_line_error, invoke, run_cli, subprocess_env, write_config

# ---- the config file -------------------------------------------------------------------------


def test_misspelled_top_level_key_suggests_the_nearest(tmp_path):
    config = write_config(tmp_path, distil={"temperature": 2.0})
    assert_one_line_error(invoke("run", config), str(config), "unknown key 'distil'", "did you mean 'distill'?")


def test_misspelled_nested_key_suggests_the_nearest(tmp_path):
    config = write_config(tmp_path, distill={"temprature": 2.0})
    assert_one_line_error(invoke("run", config), "unknown key 'distill.temprature'", "did you mean 'temperature'?")


def test_every_unknown_key_is_named_in_the_one_error_line(tmp_path):
    """Two typos once needed two runs: only the first unknown key was reported."""
    config = write_config(tmp_path, distill={"temprature": 2.0}, bench={"runz": 5})
    assert_one_line_error(invoke("run", config), str(config), "unknown keys", "'distill.temprature' (did you mean 'temperature'?)",
                          "'bench.runz' (did you mean 'runs'?)")


def test_wrong_type_names_the_field_and_the_value(tmp_path):
    config = write_config(tmp_path, distill={"train": {"epochs": "many"}})
    assert_one_line_error(invoke("run", config), str(config), "invalid value for 'distill.train.epochs'", "integer", "'many'")


def test_every_key_with_a_bad_value_is_named_in_the_one_error_line(tmp_path):
    """Trial defect (session 12): QAT's temperature and alpha both out of range named only the first, so the file took
    two runs to fix."""
    config = write_config(tmp_path, quantize={"method": "qat", "qat": {"temperature": 0, "alpha": 3}})
    assert_one_line_error(invoke("run", config), "invalid value for 'quantize.qat.", "also check 'quantize.qat.")


def test_out_of_range_value_names_the_limit(tmp_path):
    config = write_config(tmp_path, distill={"alpha": 1.5})
    assert_one_line_error(invoke("run", config), "invalid value for 'distill.alpha'", "less than or equal to 1", "1.5")


def test_qat_with_no_teachers_names_quantize_method(tmp_path):
    config = write_config(tmp_path, teachers=[], distill={"mode": "online"}, quantize={"method": "qat"})
    assert_one_line_error(invoke("run", config), str(config), "quantize.method: qat", "no teachers", "quantize.method: ptq")


def test_invalid_yaml_names_the_line(tmp_path):
    config = tmp_path / "broken.yaml"
    config.write_text("name: x\nteachers:\n  - arch: mlp\n   width: 3\n", encoding="utf-8")
    assert_one_line_error(invoke("run", config), str(config), "not valid YAML at line")


def test_missing_config_file(tmp_path):
    assert_one_line_error(invoke("run", tmp_path / "nope.yaml"), "nope.yaml", "config file not found")


def test_yaml_tags_that_would_run_code_are_refused(tmp_path):
    marker = tmp_path / "code-ran"
    config = tmp_path / "tagged.yaml"
    config.write_text(f"name: !!python/object/apply:os.system ['touch {marker}']\nteachers: [{{arch: mlp}}]\n"
                      "student: {arch: mlp}\n", encoding="utf-8")
    assert_one_line_error(invoke("run", config), "tagged.yaml", "not valid YAML at line 1", "!!python", "refused")
    assert not marker.exists()


# ---- data -----------------------------------------------------------------------------------


def test_missing_fashion_mnist_folder_gives_the_install_command(tmp_path):
    config = write_config(tmp_path, data={"source": "fashion-mnist", "path": str(tmp_path / "no-such-folder")})
    assert_one_line_error(invoke("run", config, "--out", tmp_path / "run"), "data.path", "no-such-folder",
                          "apt-get install -y dataset-fashion-mnist")


def _npz(path: Path, x: np.ndarray, y: np.ndarray, **extra) -> Path:
    np.savez(path, x=x, y=y, **extra)
    return path


def test_empty_dataset(tmp_path):
    data = _npz(tmp_path / "empty.npz", np.zeros((0, 1, 8, 8), np.float32), np.zeros((0,), np.int64))
    config = write_config(tmp_path, data={"source": "npz", "path": str(data)})
    assert_one_line_error(invoke("run", config, "--out", tmp_path / "run"), "empty.npz", "the dataset is empty")


def test_labels_out_of_range(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 60)
    y[7] = 5  # three class names, label 5
    data = _npz(tmp_path / "labels.npz", rng.random((60, 1, 8, 8), np.float32), y, classes=np.array(["a", "b", "c"]))
    config = write_config(tmp_path, data={"source": "npz", "path": str(data)})
    assert_one_line_error(invoke("run", config, "--out", tmp_path / "run"), "labels.npz", "labels out of range", "0..5",
                          "expected 0..2")


def test_nan_in_the_data_that_calibration_draws_from(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((60, 1, 8, 8), np.float32)
    x[3, 0, 2, 2] = np.inf
    data = _npz(tmp_path / "nan.npz", x, rng.integers(0, 3, 60))
    config = write_config(tmp_path, data={"source": "npz", "path": str(data)})
    assert_one_line_error(invoke("run", config, "--out", tmp_path / "run"), "nan.npz", "NaN or Inf")


def test_nan_teacher_outputs(tmp_path):
    teacher = MLP(1, 10, 8, width=16)
    with torch.no_grad():
        teacher.head.weight.fill_(float("nan"))
    torch.save(teacher.state_dict(), tmp_path / "nan-teacher.pt")
    config = write_config(tmp_path, teachers=[{"arch": "mlp", "width": 16, "checkpoint": "nan-teacher.pt"}])
    assert_one_line_error(invoke("run", config, "--out", tmp_path / "run"), "teachers[0]", "NaN or Inf", "checkpoint")


USER_MODEL = """
from torch import nn

def rgb_net(num_classes):
    # expects 3-channel images; the digits are 1-channel
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, num_classes))

def thousand_classes(num_classes):
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 1000))
"""


def test_user_model_whose_first_layer_does_not_fit_the_images(tmp_path):
    (tmp_path / "usermodels.py").write_text(USER_MODEL, encoding="utf-8")
    config = write_config(tmp_path, student={"arch": "usermodels.py:rgb_net", "width": None})
    message = assert_one_line_error(invoke("run", config, "--out", tmp_path / "run"), "student.arch", "usermodels.py:rgb_net",
                                    "(1, 8, 8)")
    assert "channels" in message


def test_user_model_with_the_wrong_number_of_outputs(tmp_path):
    (tmp_path / "usermodels.py").write_text(USER_MODEL, encoding="utf-8")
    config = write_config(tmp_path, teachers=[{"arch": "usermodels.py:thousand_classes"}])
    assert_one_line_error(invoke("run", config, "--out", tmp_path / "run"), "teachers[0].arch", "1000", "10 classes")


def test_checkpoint_made_for_three_channel_images(tmp_path):
    torch.save(MLP(3, 10, 8, width=16).state_dict(), tmp_path / "rgb.pt")
    config = write_config(tmp_path, teachers=[{"arch": "mlp", "width": 16, "checkpoint": "rgb.pt"}])
    assert_one_line_error(invoke("run", config, "--out", tmp_path / "run"), "teachers[0].checkpoint", "rgb.pt",
                          "(16, 192)", "(16, 64)")


def test_user_model_factory_that_raises(tmp_path):
    (tmp_path / "usermodels.py").write_text("def broken(num_classes):\n    raise ValueError('depth must be even')\n",
                                            encoding="utf-8")
    config = write_config(tmp_path, student={"arch": "usermodels.py:broken", "width": None})
    assert_one_line_error(invoke("run", config, "--out", tmp_path / "run"), "student.arch 'usermodels.py:broken'",
                          "ValueError: depth must be even", "--debug")


def test_user_data_file_with_a_syntax_error(tmp_path):
    (tmp_path / "mydata.py").write_text("def load(:\n    pass\n", encoding="utf-8")
    config = write_config(tmp_path, data={"source": "mydata.py:load"})
    assert_one_line_error(invoke("run", config, "--out", tmp_path / "run"), "data.source 'mydata.py'", "SyntaxError")


def test_imagefolder_with_a_corrupt_image(tmp_path):
    from PIL import Image

    for label in ("cat", "dog"):
        (tmp_path / "images" / label).mkdir(parents=True)
        for i in range(6):
            Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(tmp_path / "images" / label / f"{i}.png")
    (tmp_path / "images" / "dog" / "9.png").write_bytes(b"\x89PNG not really")
    config = write_config(tmp_path, data={"source": "imagefolder", "path": str(tmp_path / "images")})
    assert_one_line_error(invoke("run", config, "--out", tmp_path / "run"), "dog/9.png", "not a readable image",
                          "remove or replace it")


# ---- checkpoints ----------------------------------------------------------------------------


def test_checkpoint_with_other_keys(tmp_path):
    torch.save({"conv.weight": torch.zeros(3)}, tmp_path / "other.pt")
    config = write_config(tmp_path, teachers=[{"arch": "mlp", "width": 16, "checkpoint": "other.pt"}])
    assert_one_line_error(invoke("run", config, "--out", tmp_path / "run"), "teachers[0].checkpoint", "other.pt",
                          "keys do not match", "arch and width")


def test_checkpoint_with_other_shapes(tmp_path):
    torch.save(MLP(1, 10, 8, width=32).state_dict(), tmp_path / "wide.pt")
    config = write_config(tmp_path, teachers=[{"arch": "mlp", "width": 16, "checkpoint": "wide.pt"}])
    assert_one_line_error(invoke("run", config, "--out", tmp_path / "run"), "wide.pt", "has shape (32, 64)",
                          "expects (16, 64)")


def test_truncated_checkpoint(tmp_path):
    torch.save(MLP(1, 10, 8, width=16).state_dict(), tmp_path / "cut.pt")
    data = (tmp_path / "cut.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    config = write_config(tmp_path, teachers=[{"arch": "mlp", "width": 16, "checkpoint": "cut.pt"}])
    assert_one_line_error(invoke("run", config, "--out", tmp_path / "run"), "cut.pt", "not a readable PyTorch checkpoint")


# ---- targets ----------------------------------------------------------------------------------


def test_unknown_target_is_refused_before_any_training(tmp_path):
    config = write_config(tmp_path, targets=["x86-cpuu"])
    assert_one_line_error(invoke("run", config, "--out", tmp_path / "run"), "targets[0]", "unknown target 'x86-cpuu'",
                          "did you mean 'x86-cpu'?")
    assert not (tmp_path / "run" / "01-teachers").exists()


def test_unknown_calibration_recipe_is_refused_before_any_training(tmp_path):
    config = write_config(tmp_path, quantize={"calibration": "train-999"})
    assert_one_line_error(invoke("run", config, "--out", tmp_path / "run"), "quantize.calibration 'train-999'",
                          "train-64")
    assert not (tmp_path / "run" / "01-teachers").exists()


def test_own_target_profile_that_is_not_valid_yaml(tmp_path):
    (tmp_path / "my-device.yaml").write_text("name: my-device\nbackend: [ort\n", encoding="utf-8")
    config = write_config(tmp_path, targets=["my-device.yaml"])
    assert_one_line_error(invoke("run", config, "--out", tmp_path / "run"), "targets[0]", "my-device.yaml",
                          "not valid YAML at line")


def test_own_calibration_recipe_that_is_not_a_mapping(tmp_path):
    (tmp_path / "recipe.yaml").write_text("- 64\n- train\n", encoding="utf-8")
    config = write_config(tmp_path, quantize={"calibration": str(tmp_path / "recipe.yaml")})
    assert_one_line_error(invoke("run", config, "--out", tmp_path / "run"), "recipe.yaml", "expected a mapping", "got list")
    assert not (tmp_path / "run" / "01-teachers").exists()


def _fake_missing_runtime(tmp_path: Path, module: str) -> dict:
    """A module folder that shadows the real runtime and fails to import, as on a device without it."""
    fake = tmp_path / "fake-site" / module
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(f"raise ImportError('No module named {module} (simulated)')\n", encoding="utf-8")
    env = subprocess_env()
    env["PYTHONPATH"] = f"{fake.parent}:{env['PYTHONPATH']}"
    return env


def test_run_for_a_target_whose_runtime_is_missing_stops_before_training(tmp_path):
    config = write_config(tmp_path, targets=["x86-cpu", "intel-cpu"])
    result = run_cli("run", config, "--out", tmp_path / "run", env=_fake_missing_runtime(tmp_path, "openvino"))
    assert_one_line_error(result, "targets[1] 'intel-cpu'", "openvino", "pip install 'edgekd[openvino]'")
    assert not (tmp_path / "run" / "01-teachers").exists()


def test_bench_a_bundle_whose_runtime_is_missing(tmp_path, finished_run):
    bundle = shutil.copytree(finished_run / "bundle" / "intel-cpu", tmp_path / "intel-cpu")
    result = run_cli("bench", bundle, "--runs", "5", "--min-seconds", "0", env=_fake_missing_runtime(tmp_path, "openvino"))
    assert_one_line_error(result, "openvino", "pip install 'edgekd[openvino]'")


# ---- the run folder -----------------------------------------------------------------------------


def test_output_folder_not_writable(tmp_path):
    # Tests run as root, so chmod would not stop a write; a path below a regular file cannot be created by anyone.
    (tmp_path / "file.txt").write_text("not a folder", encoding="utf-8")
    config = write_config(tmp_path)
    assert_one_line_error(invoke("run", config, "--out", tmp_path / "file.txt" / "run"), "file.txt/run",
                          "output folder is not writable", "--out")


def test_existing_run_folder_needs_resume_or_force(tmp_path, finished_run):
    run = shutil.copytree(finished_run, tmp_path / "run")
    before = sha256_of(run / "manifest.json")
    config = write_config(tmp_path, targets=["x86-cpu", "intel-cpu"])
    assert_one_line_error(invoke("run", config, "--out", run), str(run), "--resume", "--force", "--out")
    assert sha256_of(run / "manifest.json") == before


def test_only_a_later_stage_in_an_empty_folder(tmp_path):
    config = write_config(tmp_path)
    assert_one_line_error(invoke("run", config, "--out", tmp_path / "run", "--only", "quantize"),
                          "'quantize' needs 'teachers'", "--only teachers")


# ---- bundles ----------------------------------------------------------------------------------


@pytest.fixture
def bundle(tmp_path, finished_run) -> Path:
    return shutil.copytree(finished_run / "bundle" / "x86-cpu", tmp_path / "x86-cpu")


def _rehash(bundle: Path) -> None:
    """Make the manifest match the (tampered) files again, as an attacker who edits both would."""
    manifest = json.loads((bundle / "manifest.json").read_text())
    for entry in manifest["files"]:
        path = bundle / entry["path"]
        if path.is_file():
            entry.update(sha256=sha256_of(path), bytes=path.stat().st_size)
    write_json_atomic(bundle / "manifest.json", sealed(manifest))


def test_bundle_file_not_matching_its_sha256_is_refused_before_loading(bundle):
    with open(bundle / "model.onnx", "ab") as handle:
        handle.write(b"\0")
    assert_one_line_error(invoke("bench", bundle, "--runs", "5", "--min-seconds", "0"), "'model.onnx'",
                          "does not match its recorded sha256", "refused before loading",
                          "copy the whole bundle folder again from the build machine")


def test_a_bundle_file_missing_on_the_device_says_to_copy_the_bundle_again(bundle):
    """Before: "'eval.npz' is listed in manifest.json but missing", with nothing to do."""
    (bundle / "eval.npz").unlink()
    assert_one_line_error(invoke("bench", bundle, "--runs", "5", "--min-seconds", "0"), "'eval.npz' is listed in "
                          "manifest.json but missing", "copy the whole bundle folder again from the build machine")


def test_bundle_path_escaping_its_folder_is_refused(bundle):
    (bundle.parent / "outside.onnx").write_bytes((bundle / "model.onnx").read_bytes())
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["files"][0]["path"] = "../outside.onnx"
    write_json_atomic(bundle / "manifest.json", sealed(manifest))
    assert_one_line_error(invoke("bench", bundle), "'../outside.onnx'", "escapes the bundle folder", "refused")


def test_truncated_onnx_in_a_rehashed_bundle(bundle):
    data = (bundle / "model.onnx").read_bytes()
    (bundle / "model.onnx").write_bytes(data[: len(data) // 3])
    _rehash(bundle)
    assert_one_line_error(invoke("bench", bundle, "--runs", "5", "--min-seconds", "0"), "model.onnx", "corrupt", "again")


def test_bundle_manifest_that_is_not_json(bundle):
    (bundle / "manifest.json").write_text("{ not json", encoding="utf-8")
    assert_one_line_error(invoke("bench", bundle), "manifest.json", "not valid JSON")


def test_bench_a_folder_without_bundles(tmp_path):
    assert_one_line_error(invoke("bench", tmp_path), str(tmp_path), "no bundle here")


# ---- reports ----------------------------------------------------------------------------------


def test_gate_a_report_that_is_not_json(tmp_path):
    (tmp_path / "report.json").write_text("{", encoding="utf-8")
    assert_one_line_error(invoke("gate", tmp_path / "report.json"), "report.json", "not valid JSON")


def test_gate_a_missing_report(tmp_path):
    assert_one_line_error(invoke("gate", tmp_path / "report.json"), "report.json", "file not found")


def test_gate_with_a_baseline_from_another_evaluation_set(tmp_path, finished_run):
    # A real second report: the same bundle benched on a smaller eval.npz (re-hashed, so bench accepts it).
    bundle = shutil.copytree(finished_run / "bundle" / "x86-cpu", tmp_path / "x86-cpu")
    with np.load(bundle / "eval.npz") as data:
        subset = {key: data[key][:20] for key in data.files}
    np.savez_compressed(bundle / "eval.npz", **subset)
    _rehash(bundle)
    other = tmp_path / "other-report.json"
    benched = invoke("bench", bundle, "--json", other, "--no-memory", "--runs", "5", "--min-seconds", "0",
                     "--warmup-runs", "0", "--warmup-seconds", "0", "--rounds", "1", "--batch", "1")
    assert benched.exit_code == 0, benched.output[-2000:]
    assert_one_line_error(invoke("gate", finished_run / "report.json", "--baseline", other), "report.json",
                          f"--baseline {other}", "different evaluation set", "same eval.npz")


def test_gate_a_json_file_that_is_not_a_report(tmp_path):
    (tmp_path / "list.json").write_text("[1, 2]", encoding="utf-8")
    assert_one_line_error(invoke("gate", tmp_path / "list.json"), "list.json", "not an edgekd report")


def test_gate_a_report_cut_short(tmp_path, finished_run):
    report = json.loads((finished_run / "report.json").read_text())
    del report["rows"]
    write_json_atomic(tmp_path / "report.json", report)
    assert_one_line_error(invoke("gate", tmp_path / "report.json"), "report.json", "malformed report", "regenerate")


def test_compare_a_file_that_is_not_a_report(tmp_path, finished_run):
    (tmp_path / "notes.json").write_text('{"hello": 1}', encoding="utf-8")
    assert_one_line_error(invoke("compare", finished_run / "report.json", tmp_path / "notes.json"), "notes.json",
                          "not an edgekd report")


def test_compile_a_folder_that_is_not_a_bundle(tmp_path):
    assert_one_line_error(invoke("compile", tmp_path), str(tmp_path), "not a bundle")


def test_compile_of_a_run_folder_names_its_bundles(finished_run):
    """Was "RUN/manifest.json: not an edgekd bundle manifest (missing 'artifact'); bundle it again": advice that fits
    no run folder."""
    assert_one_line_error(invoke("compile", finished_run), f"{finished_run}: is a run folder, not a bundle",
                          f"{finished_run / 'bundle'}/<target> (intel-cpu, x86-cpu)")


def test_debug_flag_shows_the_traceback_as_well(tmp_path):
    config = write_config(tmp_path, distil={"temperature": 2.0})
    result = invoke("--debug", "run", config)
    assert result.exit_code == 2
    assert "Traceback" in result.stderr and "ConfigError" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("edgekd: error: ")


def test_resume_with_another_tasks_pipeline_file_is_refused(tmp_path, finished_run):
    """Trial defect (session 13): `edgekd run lm.yaml --out RUN --resume` on a finished text classifier's folder
    replaced its bundle and report and left both runs' files mixed in the stage folders, exit 0."""
    assert json.loads((finished_run / "manifest.json").read_text())["task"] == "image-classification"
    run = shutil.copytree(finished_run, tmp_path / "run")
    manifest = json.loads((run / "manifest.json").read_text())
    write_json_atomic(run / "manifest.json", {**manifest, "task": "text-classification"})
    before = sha256_of(run / "report.json")
    config = write_config(tmp_path)
    assert_one_line_error(invoke("run", config, "--out", run, "--resume"),
                          f"{run}: holds a run of task text-classification", "is for image-classification", "new folder")
    assert sha256_of(run / "report.json") == before


def test_a_union_members_name_is_not_shown_as_a_key(tmp_path):
    """Review (session 13): `teachers: [{sklearn: 5}]` named 'teachers.0.sklearn.str' and
    'teachers.0.sklearn.list[dict[str,dict[str,any]]]', pydantic's names for the union's members."""
    config = write_config(tmp_path, teachers=[{"sklearn": 5}])
    message = assert_one_line_error(invoke("run", config), "teachers.0.sklearn")
    assert ".str'" not in message and "list[" not in message, message
