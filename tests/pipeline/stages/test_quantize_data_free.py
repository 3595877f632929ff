"""QAT in data_free mode fine-tunes on the synthetic set, so the pipeline still needs no real
training image; without that set it stops with one line asking for the distill stage."""
from __future__ import annotations

import json

import pytest
import yaml

from edgekd import api
from edgekd.core.errors import StageError
from edgekd.pipeline import run_models
from tests.conftest import TINY_CONFIG

pytestmark = pytest.mark.slow

DATA_FREE_QAT = {
    "teachers": TINY_CONFIG["teachers"][:1],
    "distill": {"mode": "data_free", "data_free": {"steps": 6, "batch_size": 32, "keep_samples": 64, "replay": 256}},
    "quantize": {"method": "qat", "calibration": "synthetic-512", "qat": {"train": {"epochs": 1, "lr": 0.001, "batch_size": 32}}},
    "targets": ["x86-cpu"],
}


@pytest.fixture
def config_path(tmp_path):
    path = tmp_path / "data-free-qat.yaml"
    path.write_text(yaml.safe_dump({**yaml.safe_load(yaml.safe_dump(TINY_CONFIG)), **DATA_FREE_QAT}))
    return path


def _no_training_split(*_args, **_kwargs):
    raise AssertionError("QAT in data_free mode must not use the training split's teacher logits")


def test_qat_fine_tunes_on_the_synthetic_set(config_path, tmp_path, monkeypatch):
    monkeypatch.setattr(run_models, "teacher_soft_targets", _no_training_split)
    api.run(config_path, out=tmp_path / "run", only=["teachers", "distill", "export", "quantize"])
    quantize = json.loads((tmp_path / "run" / "manifest.json").read_text())["stages"]["quantize"]["metrics"]
    assert quantize["method"] == "qat"
    assert quantize["recipes"]["x86-vnni-u8s8"]["qat"]["transfer_set"] == {"source": "synthetic", "samples": 64}


def test_qat_without_the_synthetic_set_asks_for_the_distill_stage(config_path, tmp_path):
    api.run(config_path, out=tmp_path / "run", only=["teachers", "distill", "export"])
    (tmp_path / "run" / "02-distill" / "synthetic.npz").unlink()
    with pytest.raises(StageError, match=r"stage 'quantize' needs 'distill' redone"):
        api.run(config_path, out=tmp_path / "run", resume=True, only=["quantize"])
