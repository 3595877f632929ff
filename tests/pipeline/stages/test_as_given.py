"""Shipping a model the user already trained (no teachers, no distill): from a checkpoint and from ONNX.

The ONNX path is run in a child process where importing torch fails, so "no torch on that path" is checked,
not assumed.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from edgekd.core.errors import ConfigError
from edgekd.data import load_dataset
from edgekd.data.config import DataConfig
from edgekd.train.config import ExportConfig, ModelConfig
from edgekd.train.models import build_model
from tests.blocking import CLI_WITHOUT_TORCH
from tests.faults.helpers import invoke, subprocess_env

FAST_BENCH = {"eval_samples": 60, "runs": 5, "min_seconds": 0, "warmup_runs": 1, "warmup_seconds": 0, "rounds": 1, "memory": False}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small MLP trained on digits with edgekd's own preprocessing: its checkpoint and its ONNX export."""
    from edgekd.train.onnx_export import export_onnx

    folder = tmp_path_factory.mktemp("byom")
    data = load_dataset(DataConfig(), 0, None)
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch="mlp", width=32), data.input_shape, data.num_classes, None)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    x, y = torch.from_numpy(data.train.x), torch.from_numpy(data.train.y)
    for _ in range(150):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    model.eval()
    checkpoint = folder / "mlp.pt"
    torch.save(model.state_dict(), checkpoint)
    onnx_path = export_onnx(model, data.val.x, folder / "mlp.onnx", ExportConfig(), {})
    with torch.no_grad():
        test_top1 = float((model(torch.from_numpy(data.test.x)).argmax(1).numpy() == data.test.y).mean())
    assert test_top1 > 0.85  # a trained model, so that shipping it faithfully is visible in the numbers
    return {"folder": folder, "checkpoint": checkpoint, "onnx": onnx_path, "test_top1": test_top1, "data": data}


def _config(tmp_path: Path, student: dict, **extra) -> Path:
    config = {"name": "byom", "student": student, "quantize": {"calibration": "train-64"}, "targets": ["x86-cpu"],
              "bench": FAST_BENCH, "gate": {"max_drop": 3.0}, **extra}
    path = tmp_path / "byom.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _run_without_torch(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", CLI_WITHOUT_TORCH, *args], capture_output=True, text=True, timeout=600,
                          cwd=Path(__file__).resolve().parents[3], env=subprocess_env())


def test_checkpoint_student_is_shipped_as_given(trained, tmp_path):
    config = _config(tmp_path, {"arch": "mlp", "width": 32, "checkpoint": str(trained["checkpoint"])})
    result = invoke("run", str(config), "--out", str(tmp_path / "run"))
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    distill = manifest["stages"]["distill"]["metrics"]
    assert distill["mode"] == "none" and distill["source"] == "checkpoint"
    assert distill["test_top1"] == pytest.approx(trained["test_top1"])  # the given weights, untouched
    assert manifest["stages"]["teachers"]["metrics"]["teachers"] == []
    assert (tmp_path / "run" / "bundle" / "x86-cpu" / "manifest.json").is_file()
    assert json.loads((tmp_path / "run" / "gate.json").read_text())["passed"]


def test_onnx_student_ships_without_importing_torch(trained, tmp_path):
    config = _config(tmp_path, {"onnx": str(trained["onnx"])}, targets=["x86-cpu", "intel-cpu"])
    done = _run_without_torch("run", str(config), "--out", str(tmp_path / "run"))
    assert done.returncode == 0, done.stderr[-2000:]
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["stages"]["distill"]["metrics"]["source"] == "onnx"
    assert manifest["stages"]["export"]["metrics"]["given"] is True
    compiled = manifest["stages"]["compile"]["metrics"]["targets"]
    for target in ("x86-cpu", "intel-cpu"):
        names = [c["name"] for c in compiled[target]["candidates"]]
        assert any(n.startswith("int8") for n in names), names  # quantized from the ONNX file alone
        assert (tmp_path / "run" / "bundle" / target / "manifest.json").is_file()
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["references"]["student_fp32"]["top1"] == pytest.approx(trained["test_top1"], abs=0.02)


def test_ship_command_writes_the_pipeline_file_and_runs_it(trained, tmp_path):
    out = tmp_path / "shipped"
    result = invoke("ship", str(trained["onnx"]), "--data", "digits", "--targets", "x86-cpu", "--max-drop", "3", "--out", str(out))
    assert result.exit_code == 0, result.output
    written = yaml.safe_load((out / "edgekd.yaml").read_text())
    assert written["student"] == {"onnx": str(trained["onnx"].resolve())} and written["gate"] == {"max_drop": 3.0}
    assert "teachers" not in written and "distill" not in written
    assert (out / "bundle" / "x86-cpu" / "manifest.json").is_file()
    again = invoke("ship", str(trained["onnx"]), "--data", "digits", "--out", str(out))
    assert again.exit_code == 2 and "--resume" in again.output  # an existing run is not overwritten


def test_ship_takes_the_speed_and_size_limits_a_profile_gate_takes(trained, tmp_path):
    """Trial observation (session 14): `edgekd ship` had --max-drop only, so a user who needs a speed-up or a size
    limit had to edit RUN/edgekd.yaml and run it again. --min-speedup and --max-size-kb go into the gate section (and
    the bundle, whose device gate then applies them); a bad value is one line before anything is written."""
    import json

    out = tmp_path / "limits"
    result = invoke("ship", str(trained["onnx"]), "--data", "digits", "--max-drop", "3", "--min-speedup", "0.01",
                    "--max-size-kb", "5000", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert yaml.safe_load((out / "edgekd.yaml").read_text())["gate"] == {"max_drop": 3.0, "min_speedup": 0.01,
                                                                         "max_size_kb": 5000.0}
    manifest = json.loads((out / "bundle" / "x86-cpu" / "manifest.json").read_text())
    assert manifest["gate"]["min_speedup"] == 0.01 and manifest["gate"]["max_size_kb"] == 5000.0
    assert ("speed_reference" in manifest) == (manifest["artifact"]["precision"] != "fp32")  # fp32 to time it against
    bad = invoke("ship", str(trained["onnx"]), "--data", "digits", "--min-speedup", "-1", "--out", str(tmp_path / "bad"))
    assert bad.exit_code == 2 and "--min-speedup" in bad.output and not (tmp_path / "bad").exists()


def test_qat_on_a_given_model_distills_from_its_own_outputs(trained, tmp_path):
    config = _config(tmp_path, {"arch": "mlp", "width": 32, "checkpoint": str(trained["checkpoint"])},
                     quantize={"method": "qat", "calibration": "train-64", "qat": {"train": {"epochs": 1, "amp": "off"}}})
    result = invoke("run", str(config), "--out", str(tmp_path / "run"))
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    recipe = next(iter(manifest["stages"]["quantize"]["metrics"]["recipes"].values()))
    assert recipe["qat"]["transfer_set"]["source"] == "train (self-distillation)"


@pytest.mark.parametrize("student, extra, message", [
    ({"onnx": "m.onnx"}, {"quantize": {"method": "qat"}}, "quantize.method: qat fine-tunes a PyTorch model"),
    ({"arch": "mlp"}, {}, "student.checkpoint: needed to ship a PyTorch student as given"),
    ({"onnx": "m.onnx", "width": 8}, {}, "student.width: describes a PyTorch model"),
    ({"onnx": "m.onnx", "arch": "mlp"}, {}, "give one of student.arch"),
    ({"onnx": "m.onnx"}, {"teachers": [{"arch": "mlp"}]}, "student.onnx: distill.mode offline trains the student"),
    ({"arch": "mlp", "checkpoint": "x.pt"}, {"teachers": [{"arch": "mlp"}], "distill": {"mode": "none"}},
     "teachers: distill.mode none ships the student as given"),
])
def test_contradictory_as_given_configs_are_one_line(tmp_path, student, extra, message):
    from edgekd.pipeline.config import validate_config

    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        validate_config({"student": student, **extra})


def test_onnx_with_a_fixed_batch_or_another_input_shape_is_named(trained, tmp_path):
    import onnx

    model = onnx.load(str(trained["onnx"]))
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
    fixed = tmp_path / "fixed.onnx"
    onnx.save(model, str(fixed))
    result = invoke("run", str(_config(tmp_path, {"onnx": str(fixed)})), "--out", str(tmp_path / "a"))
    assert result.exit_code == 2 and "fixed shape (1, 1, 8, 8)" in result.output and "dynamic batch axis" in result.output
    wrong = tmp_path / "wide.onnx"
    model = onnx.load(str(trained["onnx"]))
    model.graph.input[0].type.tensor_type.shape.dim[3].dim_value = 12
    onnx.save(model, str(wrong))
    result = invoke("run", str(_config(tmp_path, {"onnx": str(wrong)})), "--out", str(tmp_path / "b"))
    assert result.exit_code == 2 and "(batch, 1, 8, 12)" in result.output and "(batch, 1, 8, 8)" in result.output


def test_ship_refuses_bad_arguments_before_writing_anything(trained, tmp_path):
    out = tmp_path / "never"
    for args, message in [(["torchvision:resnet18", "--data", "digits"], "--checkpoint: needed"),
                          ([str(trained["onnx"]), "--data", "nowhere.csv"], "--data 'nowhere.csv'"),
                          ([str(trained["onnx"]), "--checkpoint", str(trained["checkpoint"]), "--data", "digits"], "remove --checkpoint")]:
        result = invoke("ship", *args, "--out", str(out))
        assert result.exit_code == 2 and message in result.output, result.output
    assert not out.exists()


def test_onnx_student_from_an_image_folder_records_the_decoding_steps(trained, tmp_path):
    """The folder stays on disk (decoded per batch) and the bundle says how its images were turned into inputs."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    for index, (image, label) in enumerate(zip(digits.images, digits.target)):
        folder = tmp_path / "images" / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.round(image * 255 / 16).astype(np.uint8), mode="L").save(folder / f"{index}.png")
    config = _config(tmp_path, {"onnx": str(trained["onnx"])},
                     data={"source": "imagefolder", "path": str(tmp_path / "images"), "color": "gray"})
    result = invoke("run", str(config), "--out", str(tmp_path / "run"))
    assert result.exit_code == 0, result.output
    bundle = json.loads((tmp_path / "run" / "bundle" / "x86-cpu" / "manifest.json").read_text())
    assert bundle["preprocessing"]["image"]["color"] == "gray" and bundle["preprocessing"]["input_shape"] == [1, 8, 8]
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["references"]["student_fp32"]["top1"] > 0.8  # the same pixels, through PNG files


def test_a_given_model_no_better_than_chance_is_refused_with_the_likely_causes(capsys):
    from edgekd.pipeline.stages.as_given import _judge_given

    labels = np.repeat(np.arange(10), 50)
    _judge_given(0.92, labels)
    assert "student (as given): validation top-1 92.0% on 500 images (largest class 10.0%)" in capsys.readouterr().err
    # 11% on 500 images with ten classes is above chance (10%) but within what guessing gets: said in those words
    with pytest.raises(ConfigError, match=r"the given model's top-1 11\.0% on 500 validation images, not clearly above chance "
                                          r"\(the largest class's 10\.0%; telling a model from guessing it takes over 14\.0% "
                                          r"on 500 validation images\); .*data\.normalize.*sort in the model's label order"):
        _judge_given(0.11, labels)


def test_a_class_missing_from_validation_and_test_reaches_the_run_log_and_the_report(tmp_path):
    """Trial defect (session 14): "no validation samples of class '4' ..." and "no test samples of class '4' ..." were
    printed on the terminal only, before the run folder existed: not in RUN/edgekd.log, report.md or report.json. They
    are now warnings (replayed into the run log) and carried by the dataset into the report's warnings."""
    from tests.device.conftest import tiny_classifier

    weight, bias = tiny_classifier(tmp_path / "model.onnx")
    x = np.random.default_rng(0).normal(size=(4000, 1, 8, 8)).astype(np.float32)
    y = (x.reshape(len(x), -1) @ weight + bias).argmax(1)
    keep = np.concatenate([np.flatnonzero(y == k)[:40 if k < 9 else 1] for k in range(10)])  # class 9: one sample
    np.savez(tmp_path / "rare.npz", x=x[keep], y=y[keep])
    result = invoke("ship", tmp_path / "model.onnx", "--data", tmp_path / "rare.npz", "--normalize", "none",
                    "--targets", "x86-cpu", "--out", tmp_path / "run")
    assert result.exit_code in (0, 1), result.output[-3000:]
    said = ["no validation samples of class '9' (1 samples)", "no test samples of class '9' (1 samples)"]
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    lines = (tmp_path / "run" / "edgekd.log").read_text().splitlines()  # wrapped, each line after its time
    log = " ".join(" ".join(" ".join(line.split(" ", 1)[1:]) for line in lines).split())
    for text in said:
        assert text in log
        assert text in (tmp_path / "run" / "report.md").read_text()
        assert any(text in warning for warning in report["warnings"])


@pytest.mark.parametrize("student, extra, refused", [
    ({"onnx": "m.onnx"}, {"distill": {"mode": "none", "temperature": 2.0}}, "distill.temperature"),
    ({"onnx": "m.onnx"}, {"distill": {"mode": "none", "train": {"epochs": 3}, "seed": 1}}, "distill.seed, distill.train"),
    ({"arch": "mlp", "checkpoint": "x.pt"}, {"distill": {"mode": "none", "temperature": 2.0, "alpha": 0.5, "ensemble": "logit_mean"}},
     "distill.alpha, distill.ensemble, distill.temperature"),
])
def test_distill_keys_that_mode_none_does_not_read_are_refused(student, extra, refused):
    """Trial defect (ship3-10, session 14): distill: {mode: none, temperature: 2.0} without teachers was accepted and
    the temperature silently ignored (with teachers the config is refused). Each key mode none does not read is named."""
    from edgekd.pipeline.config import validate_config

    with pytest.raises(ConfigError) as error:
        validate_config({"student": student, **extra})
    message = str(error.value)
    assert f"{refused}: not used with distill.mode none, which ships the student as given" in message


def test_qat_of_a_checkpoint_shipped_as_given_keeps_the_keys_it_reads():
    from edgekd.pipeline.config import validate_config

    config = validate_config({"student": {"arch": "mlp", "checkpoint": "x.pt"}, "quantize": {"method": "qat"},
                              "distill": {"mode": "none", "temperature": 2.0, "alpha": 0.5}})
    assert config.distill.temperature == 2.0 and config.distill.mode == "none"
    assert validate_config({"student": {"onnx": "m.onnx"}, "distill": {"mode": "none"}}).distill.mode == "none"
