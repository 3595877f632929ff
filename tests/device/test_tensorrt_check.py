"""benchmarks/tensorrt_check.py (make tensorrt-check) on a machine without TensorRT or a GPU: one line, exit 2,
before any pipeline runs. Its real run needs tensorrt and a CUDA GPU (see the script)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from edgekd.runtimes.tensorrt import TensorRTBackend
from tests.conftest import REPO


def test_without_tensorrt_and_a_gpu_it_says_so_and_exits_2(tmp_path):
    if TensorRTBackend().can_build_here():
        pytest.skip("tensorrt and a CUDA GPU are here: run make tensorrt-check instead")
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "tensorrt_check.py"), "--runs", str(tmp_path / "runs"),
                           "--work", str(tmp_path / "work"), "--results", str(tmp_path / "results")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "tensorrt" in done.stderr and "GPU" in done.stderr
    assert not (tmp_path / "runs").exists() and not (tmp_path / "results.json").exists()
