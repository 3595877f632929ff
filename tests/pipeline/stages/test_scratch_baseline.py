"""distill.compare_scratch's student_scratch row is a student trained from random weights on labels alone."""
from __future__ import annotations

import json

import torch
import yaml

from edgekd.data import load_dataset
from edgekd.data.config import DataConfig
from edgekd.train.config import ModelConfig, TrainConfig
from edgekd.train.models import build_model, save_checkpoint
from edgekd.train.trainer import cross_entropy_loss, train
from tests.conftest import TINY_CONFIG
from tests.faults.helpers import invoke


def test_the_scratch_baseline_starts_from_random_weights_when_the_student_has_a_checkpoint(tmp_path):
    """Trial defect (session 12): with student.checkpoint given, the "trained from scratch" baseline was that checkpoint
    fine-tuned on labels (54% against 27% from random weights), and the warnings and gate judged by the wrong row."""
    config = yaml.safe_load(yaml.safe_dump(TINY_CONFIG))
    data = load_dataset(DataConfig(**config["data"]), seed=config["seed"])
    torch.manual_seed(0)
    student = build_model(ModelConfig(**config["student"]), data.input_shape, data.num_classes)
    train(student, torch.from_numpy(data.train.x), torch.from_numpy(data.train.y),
          TrainConfig(epochs=15, lr=0.05, batch_size=32, amp="off"), cross_entropy_loss(), seed=0)
    save_checkpoint(student.eval(), tmp_path / "student.pt")
    config["student"]["checkpoint"] = str(tmp_path / "student.pt")
    config["distill"] = {"compare_scratch": True, "train": {"epochs": 1, "lr": 1e-6, "batch_size": 64}}  # barely moves
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    result = invoke("run", tmp_path / "c.yaml", "--out", tmp_path / "run", "--only", "teachers", "--only", "distill")
    assert result.exit_code == 0, result.output[-3000:]
    metrics = json.loads((tmp_path / "run" / "manifest.json").read_text())["stages"]["distill"]["metrics"]
    assert metrics["val_top1"] > 0.7  # the given checkpoint, distilled at a learning rate that barely moves it
    assert metrics["scratch"]["val_top1"] < 0.4  # random weights at that rate: near chance, not the checkpoint's score
