"""Fixtures for the fault tests."""
from __future__ import annotations

from pathlib import Path

import pytest

from .helpers import invoke, write_config


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory) -> Path:
    """One complete tiny run (x86-cpu via onnxruntime, intel-cpu via OpenVINO), shared read-only."""
    folder = tmp_path_factory.mktemp("finished")
    config = write_config(folder, targets=["x86-cpu", "intel-cpu"])
    result = invoke("run", config, "--out", folder / "run")
    assert result.exit_code == 0, result.output[-3000:]
    return folder / "run"
