"""Shared fixtures: a tiny pipeline config that runs every stage in seconds."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]

TINY_CONFIG = {
    "name": "tiny",
    "seed": 0,
    "data": {"source": "digits", "train_limit": 400, "test_limit": 120},
    "teachers": [
        {"arch": "convnet", "width": 8, "train": {"epochs": 2, "lr": 0.05, "batch_size": 64}},
        {"arch": "resnet", "width": 8, "train": {"epochs": 2, "lr": 0.05, "batch_size": 64}},
    ],
    "student": {"arch": "convnet", "width": 4},
    "distill": {"train": {"epochs": 2, "lr": 0.05, "batch_size": 64}},
    "quantize": {"calibration": "train-64"},
    "targets": ["x86-cpu", "arm64-cpu", "intel-cpu"],
    "bench": {"eval_samples": 100, "warmup_runs": 2, "warmup_seconds": 0.0, "runs": 10, "min_seconds": 0.0, "rounds": 2},
    "gate": {"reference": "student_fp32", "max_drop": 100.0},
}


@pytest.fixture
def tiny_config() -> dict:
    """A deep copy of the tiny config, to modify freely."""
    return yaml.safe_load(yaml.safe_dump(TINY_CONFIG))


@pytest.fixture
def write_config(tmp_path):
    def write(config: dict, name: str = "config.yaml") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        return path

    return write


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run `python -m edgekd ARGS` in a subprocess, as a user would."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run([sys.executable, "-m", "edgekd", *args], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(autouse=True, scope="session")
def _teacher_cache_outside_the_repo(tmp_path_factory):
    """Runs started by tests cache teacher logits in a temporary folder, not in ./runs/.cache."""
    previous = os.environ.get("EDGEKD_CACHE_DIR")
    os.environ["EDGEKD_CACHE_DIR"] = str(tmp_path_factory.mktemp("teacher-cache"))
    yield
    if previous is None:
        os.environ.pop("EDGEKD_CACHE_DIR", None)
    else:
        os.environ["EDGEKD_CACHE_DIR"] = previous


@pytest.fixture
def report_path(tmp_path):
    """A report.json as the gate reads one (tests/device/test_gate.make_report): the API tests' report."""
    import json

    from tests.device.test_gate import make_report

    path = tmp_path / "report.json"
    path.write_text(json.dumps(make_report()))
    return path
