"""The wheel ships the device profiles and calibration recipes, and its core pulls no torch."""
from __future__ import annotations

import subprocess
import sys
import zipfile

import pytest

from .conftest import REPO

pytestmark = pytest.mark.slow


def test_wheel_has_builtin_data_and_a_light_core(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(REPO)],
                   check=True, capture_output=True)
    wheel = next(tmp_path.glob("edgekd-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(next(n for n in names if n.endswith("METADATA"))).decode()
    for profile in ("x86-cpu", "arm64-cpu", "intel-cpu", "jetson-orin", "nvidia-gpu"):
        assert f"edgekd/_builtin/targets/{profile}.yaml" in names
    assert "edgekd/_builtin/calibration/train-256.yaml" in names
    core = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:") and "extra ==" not in line]
    assert core and not any("torch" in line for line in core)
