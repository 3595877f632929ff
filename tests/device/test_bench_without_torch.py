"""`edgekd bench BUNDLE` on a device with only numpy and the runtime: fake `torch`, `matplotlib` and `onnx`
packages that raise ImportError go first on PYTHONPATH, so any import of them on the bench path fails
the run (or, for the optional ones, is handled)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def _torchless_env(tmp_path: Path) -> dict[str, str]:
    blocker = tmp_path / "device-site"
    for name in ("torch", "matplotlib", "onnx"):
        (blocker / name).mkdir(parents=True)
        (blocker / name / "__init__.py").write_text(f"raise ImportError('{name} is not installed on this device')\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(blocker), env.get("PYTHONPATH")) if p)
    return env


def test_the_blocker_really_blocks_torch(tmp_path):
    done = subprocess.run([sys.executable, "-c", "import torch"], env=_torchless_env(tmp_path), capture_output=True, text=True)
    assert done.returncode != 0 and "not installed on this device" in done.stderr


def test_edgekd_bench_runs_on_a_bundle_without_torch(tiny_bundle, tmp_path):
    out = tmp_path / "device-report"
    done = subprocess.run([sys.executable, "-m", "edgekd", "bench", str(tiny_bundle), "--runs", "20", "--min-seconds", "0",
                           "--warmup-runs", "2", "--warmup-seconds", "0", "--rounds", "2", "--batch", "4", "--out", str(out)],
                          env=_torchless_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "x86-cpu/fp32" in done.stdout
    report = json.loads((out / "report.json").read_text())
    row = report["rows"][0]
    assert report["schema"] == "edgekd.report/1"
    assert row["fidelity"]["top1_agreement"] == 1.0 and row["fidelity"]["max_abs_error"] < 1e-4
    assert row["top1"] == report["references"]["student_fp32"]["top1"]
    assert set(row["latency"]) == {"batch1", "batch4"} and row["latency"]["batch1"]["runs"] >= 20
    assert row["parameters"] is None  # counted with the `onnx` package, which the device lacks
    assert row["memory"]["peak_rss_mb"] > row["memory"]["baseline_rss_mb"] > 0, row["memory"]
    assert row["threads"]["requested"] is None and row["threads"]["runtime"] == 1  # the bundle's runtime_options
    assert row["session_create_ms"] > 0 and row["first_inference_ms"] > 0 and 0 < row["gzip_bytes"] < row["bytes"] * 1.1
    assert set(report) >= {"environment", "eval_set", "references", "gate", "bench", "rows", "warnings"}
    assert {"cpu", "gpu", "os", "libraries", "usable_cpus"} <= set(report["environment"])
    assert (out / "report.md").is_file()
    assert "Plots need matplotlib" in (out / "report.html").read_text()
