"""Everything the trainer creates follows the model's device and dtype, checked without a GPU.

- Pure functions run on torch's `meta` device: their outputs must stay there (a CPU tensor mixed in raises).
- Modules the trainer adds (hint adapters) must follow the student: built here in float64, a float32
  adapter would fail in forward as a CPU-made adapter fails on a GPU.
- Whole stages (offline with augment replay + hints + cache + fine-tune, live teachers, online, data-free)
  run under UnplacedTensors: no tensor made by edgekd without `device=`.
The same paths on a real GPU: tests/test_gpu_smoke.py (marker `cuda`, `make gpu-check`).
"""
from __future__ import annotations

import shutil

import pytest
import torch

from edgekd.core.errors import ConfigError
from edgekd.pipeline.config import load_config, validate_config
from edgekd.pipeline.runner import run_pipeline
from edgekd.train import distributed
from edgekd.train.config import AugmentConfig, HintConfig
from edgekd.train.distill.augment import ShiftFlip, shift_flip
from edgekd.train.distill.datafree import ReplayBank
from edgekd.train.distill.hints import StudentWithHints
from edgekd.train.models import build_model

from .device_audit import UnplacedTensors


def test_shift_flip_follows_the_images_device():
    x = torch.empty(4, 1, 8, 8, device="meta")
    shifts, flips = torch.tensor([[1, -1], [0, 0], [2, 1], [-2, 0]]), torch.tensor([True, False, True, False])
    assert shift_flip(x, shifts, flips, max_shift=2).device.type == "meta"


def test_replayed_draws_apply_to_data_on_another_device():
    augment = ShiftFlip(AugmentConfig(shift=2, flip=True), num_samples=6)
    x = torch.empty(6, 1, 8, 8, device="meta")
    draws = augment.draws(epoch=0)
    assert augment.apply(x, draws, torch.tensor([0, 3, 5])).device.type == "meta"
    moved = draws.to(torch.device("meta"))
    assert moved.shifts.device.type == "meta" and augment.apply(x, moved, torch.tensor([1, 2])).shape == (2, 1, 8, 8)


def _student_and_teacher(dtype=torch.float32):
    student = build_model(validate_config(_tiny()).student, (1, 8, 8), 10, None, where="student").to(dtype)
    teacher = build_model(validate_config(_tiny()).teachers[0], (1, 8, 8), 10, None, where="teachers[0]").to(dtype)
    return student, teacher


def test_hint_adapters_follow_the_students_dtype():
    student, teacher = _student_and_teacher(torch.float64)
    sample = torch.rand(2, 1, 8, 8, dtype=torch.float64)
    module = StudentWithHints(student, [HintConfig(student="features.1", teacher="features.1")], [teacher], sample)
    assert {p.dtype for p in module.adapters.parameters()} == {torch.float64}
    module(sample)  # a float32 adapter on float64 features raises here, as a CPU adapter on CUDA features does
    assert module.adapted[0].dtype == torch.float64


def test_hint_adapters_follow_the_students_device():
    student, teacher = (m.to("meta") for m in _student_and_teacher())
    sample = torch.empty(2, 1, 8, 8, device="meta")
    module = StudentWithHints(student, [HintConfig(student="features.1", teacher="features.1")], [teacher], sample)
    assert {p.device.type for p in module.adapters.parameters()} == {"meta"}


def test_replay_bank_keeps_samples_where_they_were_made():
    bank = ReplayBank(capacity=8)
    bank.add(torch.empty(4, 1, 8, 8, device="meta"), torch.empty(4, 10, device="meta"))
    x, soft = bank.batch(3)
    assert x.device.type == "meta" and soft.device.type == "meta"


def test_device_setting_resolves_and_refuses_a_missing_gpu(monkeypatch):
    assert distributed.device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert distributed.device("auto") == torch.device("cpu")
    for setting in ("cuda", "cuda:1"):
        with pytest.raises(ConfigError, match=rf"^device '{setting}': this machine has no usable CUDA GPU"):
            distributed.device(setting)


def test_device_setting_refuses_a_gpu_index_out_of_range(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert distributed.device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(ConfigError, match=r"^device 'cuda:2': this machine has 2 CUDA GPU\(s\)"):
        distributed.device("cuda:2")


def test_device_field_is_validated_in_the_config():
    with pytest.raises(ConfigError, match="device"):
        validate_config({**_tiny(), "device": "gpu"})
    assert validate_config({**_tiny(), "device": "cuda:0"}).device == "cuda:0"


def test_data_stays_on_the_cpu_when_training_there():
    x = torch.zeros(3, 2)
    assert distributed.place(x, torch.device("cpu")) is x


def _tiny(**distill):
    from .conftest import tiny_distill_config

    return tiny_distill_config(**distill)


def _write(tmp_path, name, cfg):
    import yaml

    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


OFFLINE_EVERYTHING = {"finetune_epochs": 1, "hints": [{"student": "features.1", "teacher": "features.1", "teacher_index": 0}],
                      "augment": {"shift": 1, "flip": True, "teachers": "replay"}}


@pytest.mark.parametrize("distill", [OFFLINE_EVERYTHING, {"augment": {"shift": 1, "teachers": "live"}}], ids=["replay-hints-finetune", "live"])
def test_offline_distillation_creates_no_unplaced_tensor(distill, tmp_path, trained_teachers):
    path = _write(tmp_path, "offline", _tiny(cache_dir=str(tmp_path / "cache"), **distill))
    shutil.copytree(trained_teachers, tmp_path / "run")
    with UnplacedTensors() as audit:
        ctx = run_pipeline(load_config(path), path, tmp_path / "run", only=["distill"], force=True, log=lambda _m: None)
    assert audit.found == []
    assert ctx.manifest.metrics("distill")["test_top1"] > 0.1


def test_online_and_data_free_create_no_unplaced_tensor(tmp_path):
    online = _tiny()
    online.pop("teachers")
    online["distill"] = {"mode": "online", "online": {"peers": [{"arch": "convnet", "width": 4}]},
                         "train": {"epochs": 1, "lr": 0.05, "batch_size": 32, "amp": "off"}}
    data_free = _tiny()
    data_free["teachers"] = data_free["teachers"][:1]
    data_free["distill"] = {"mode": "data_free", "data_free": {"steps": 3, "batch_size": 16, "keep_samples": 32, "amp": "off"}}
    for name, cfg in (("online", online), ("data_free", data_free)):
        path = _write(tmp_path, name, cfg)
        with UnplacedTensors() as audit:
            run_pipeline(load_config(path), path, tmp_path / name, only=["teachers", "distill"], log=lambda _m: None)
        assert audit.found == [], (name, sorted(set(audit.found)))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_cli_refuses_cuda_without_a_gpu_with_one_line_and_exit_2(tmp_path):
    from tests.conftest import run_cli

    path = _write(tmp_path, "gpu", {**_tiny(), "device": "cuda"})
    result = run_cli("run", str(path), "--out", str(tmp_path / "run"))
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if "device 'cuda'" in line]
    assert len(lines) == 1 and "use device: cpu or auto" in lines[0]
