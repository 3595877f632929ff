"""Input scaling is explicit (data.normalize), recorded, and a checkpoint fed other scaling than it was trained
on stops the run with one line instead of silently teaching a student garbage (issue 20, item 1)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from edgekd.data import load_dataset
from edgekd.data.config import DataConfig
from edgekd.train.config import ModelConfig, TrainConfig
from edgekd.train.models import build_model, save_checkpoint
from edgekd.train.trainer import cross_entropy_loss, train

from .helpers import TINY, assert_one_line_error, invoke, write_config

TEACHER = {"arch": "convnet", "width": 16}


def _teacher_trained_on(normalize: str, path: Path) -> Path:
    """A convnet trained elsewhere on the tiny config's data, fed the way `normalize` says (95% on raw pixels)."""
    data = load_dataset(DataConfig(**{**TINY["data"], "normalize": normalize}), seed=TINY["seed"])
    torch.manual_seed(0)
    model = build_model(ModelConfig(**TEACHER), data.input_shape, data.num_classes)
    train(model, torch.from_numpy(data.train.x), torch.from_numpy(data.train.y),
          TrainConfig(epochs=15, lr=0.05, batch_size=32, amp="off"), cross_entropy_loss(), seed=0)
    return save_checkpoint(model.eval(), path)


@pytest.fixture(scope="module")
def raw_teacher(tmp_path_factory) -> Path:
    return _teacher_trained_on("none", tmp_path_factory.mktemp("teacher") / "raw-teacher.pt")


def test_teacher_trained_on_raw_pixels_is_refused_naming_input_scaling(tmp_path, raw_teacher):
    (tmp_path / "raw-teacher.pt").write_bytes(raw_teacher.read_bytes())
    config = write_config(tmp_path, teachers=[{**TEACHER, "checkpoint": "raw-teacher.pt"}])
    result = invoke("run", config, "--out", tmp_path / "run")
    assert_one_line_error(result, "teachers[0].checkpoint 'raw-teacher.pt'", "with data.normalize dataset",
                          "likely trained on other input scaling", "set data.normalize: none")
    assert "validation top-1" in result.stderr  # the teacher's score is shown before the verdict
    assert not (tmp_path / "run").exists()  # stopped before the run folder was made


def test_the_same_teacher_with_its_scaling_runs_and_the_scaling_is_recorded(tmp_path, raw_teacher):
    (tmp_path / "raw-teacher.pt").write_bytes(raw_teacher.read_bytes())
    config = write_config(tmp_path, data={"normalize": "none"}, teachers=[{**TEACHER, "checkpoint": "raw-teacher.pt"}])
    result = invoke("run", config, "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output[-3000:]
    line = next(x for x in result.stderr.splitlines() if "teachers[0].checkpoint" in x)
    assert "validation top-1" in line and "data.normalize none" in line
    run = tmp_path / "run"
    teachers = json.loads((run / "manifest.json").read_text())["stages"]["teachers"]["metrics"]
    assert teachers["given_checkpoints"][0]["val_top1"] > 0.8
    bundle = json.loads((run / "bundle" / "x86-cpu" / "manifest.json").read_text())
    for recorded in (teachers["preprocessing"], bundle["preprocessing"]):
        assert recorded["normalize"] == "none" and recorded["mean"] == [0.0] and recorded["std"] == [1.0]


def test_untrained_checkpoint_is_refused_as_no_better_than_chance(tmp_path):
    data = load_dataset(DataConfig(**TINY["data"]), seed=TINY["seed"])
    torch.manual_seed(3)
    save_checkpoint(build_model(ModelConfig(arch="mlp", width=16), data.input_shape, data.num_classes), tmp_path / "random.pt")
    config = write_config(tmp_path, teachers=[{"arch": "mlp", "width": 16, "checkpoint": "random.pt"}])
    assert_one_line_error(invoke("run", config, "--out", tmp_path / "run"), "teachers[0].checkpoint 'random.pt'",
                          "not clearly above chance", "input scaling")
    assert not (tmp_path / "run").exists()


def test_normalize_with_the_wrong_channel_count_is_one_line(tmp_path):
    config = write_config(tmp_path, data={"normalize": "imagenet"})
    assert_one_line_error(invoke("run", config, "--out", tmp_path / "run"), "data.normalize", "3 channel statistics",
                          "1 channel")


def test_bad_normalize_value_is_one_line(tmp_path):
    config = write_config(tmp_path, data={"normalize": {"mean": [0.5], "std": [0.0]}})
    assert_one_line_error(invoke("run", config), "data.normalize", "std values must be positive")
