"""The Fashion-MNIST source from its default place (/usr/share/datasets/fashion-mnist, Debian's
dataset-fashion-mnist, which CI installs): the README's config and the benchmarks read it with no data.path."""
from __future__ import annotations

import json

import pytest

from edgekd.data import load_dataset
from edgekd.data.config import DataConfig
from edgekd.data.sources import FASHION_MNIST_DIR

from .helpers import invoke, write_config


def test_default_folder_loads_without_a_path():
    assert FASHION_MNIST_DIR.is_dir(), "install it: sudo apt-get install -y dataset-fashion-mnist (make fashion-mnist)"
    data = load_dataset(DataConfig(source="fashion-mnist", train_limit=100, test_limit=50), seed=0)
    assert data.input_shape == (1, 28, 28) and data.num_classes == 10
    assert len(data.train) == 100 and len(data.test) == 50


@pytest.mark.slow  # the whole pipeline on 500 images: ~30 s of CPU
def test_pipeline_runs_on_the_default_fashion_mnist_source(tmp_path):
    train = {"epochs": 4, "lr": 0.05, "batch_size": 50, "amp": "off"}
    config = write_config(tmp_path, data={"source": "fashion-mnist", "train_limit": 500, "test_limit": 200,
                                          "val_fraction": 0.01},
                          teachers=[{"arch": "mlp", "width": 32, "train": train}], distill={"train": train})
    result = invoke("run", config, "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output[-3000:]
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["stages"]["gate"]["status"] == "done"
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["references"]["student_fp32"]["top1"] > 0.5  # 10 classes: far above chance, so images and labels were read right
