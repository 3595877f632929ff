"""Images that are not square, and models that do not fit the data, fail before any training (issue 20, item 8)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from edgekd.train.config import ModelConfig
from edgekd.train.models import build_model

from .helpers import assert_one_line_error, invoke, write_config


@pytest.mark.parametrize("shape", [(1, 8, 12), (1, 1, 30), (3, 12, 8)])
@pytest.mark.parametrize("arch", ["mlp", "convnet", "resnet"])
def test_builtin_models_take_non_square_inputs(arch, shape):
    model = build_model(ModelConfig(arch=arch, width=8), shape, 4).eval()
    assert model(torch.zeros((3, *shape))).shape == (3, 4)


def _npz(path: Path, shape: tuple[int, ...], n: int = 120) -> Path:
    rng = np.random.default_rng(0)
    y = np.arange(n) % 3
    x = rng.random((n, *shape), dtype=np.float32) * 0.2 + y[:, None, None, None] / 3
    np.savez(path, x=x, y=y)
    return path


def test_pipeline_trains_an_mlp_on_non_square_images(tmp_path):
    data = _npz(tmp_path / "wide.npz", (1, 8, 12))
    config = write_config(tmp_path, data={"source": "npz", "path": str(data), "train_limit": None, "test_limit": None},
                          targets=["x86-cpu"])
    result = invoke("run", config, "--out", tmp_path / "run", "--only", "teachers", "--only", "distill")
    assert result.exit_code == 0, result.output[-3000:]


def test_a_student_that_does_not_fit_stops_before_the_teachers_train(tmp_path):
    (tmp_path / "models.py").write_text(
        "import torch\n"
        "def fixed(num_classes):\n"
        "    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, num_classes))\n", encoding="utf-8")
    data = _npz(tmp_path / "wide.npz", (1, 8, 12))
    config = write_config(tmp_path, data={"source": "npz", "path": str(data), "train_limit": None, "test_limit": None},
                          student={"arch": "models.py:fixed", "width": None})
    assert_one_line_error(invoke("run", config, "--out", tmp_path / "run"), "student.arch 'models.py:fixed'",
                          "does not accept the data's images of shape (1, 8, 12)")
    assert not (tmp_path / "run").exists()  # refused before the run folder was made, let alone a teacher trained
