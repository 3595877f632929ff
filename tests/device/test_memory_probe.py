from __future__ import annotations

import numpy as np

from edgekd.device.bundle import load_bundle
from edgekd.device.memory import measure_memory


def test_peak_memory_is_the_childs_own_not_the_parents(tiny_bundle):
    """execve keeps the parent's ru_maxrss; the probe must report the fresh process's own peak."""
    ballast = np.ones(400 * 2**20 // 8)  # 400 MB resident in this (parent) process
    ballast[::512] = 2.0
    _, artifact = load_bundle(tiny_bundle)
    result = measure_memory(artifact.to_json(), artifact.root, np.zeros((1, 1, 8, 8), np.float32))
    assert "error" not in result, result
    assert 0 < result["baseline_rss_mb"] < result["peak_rss_mb"] < 350, result
    assert result["cold_session_create_ms"] > 0 and result["cold_first_inference_ms"] > 0
    del ballast


def test_probe_failure_is_reported_not_raised(tiny_bundle):
    _, artifact = load_bundle(tiny_bundle)
    broken = {**artifact.to_json(), "main": "missing.onnx"}
    result = measure_memory(broken, artifact.root, np.zeros((1, 1, 8, 8), np.float32))
    assert "error" in result and "exited" in result["error"]
