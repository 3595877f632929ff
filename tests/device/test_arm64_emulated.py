"""arm64-cpu bundles on aarch64 code (qemu-user, benchmarks/arm64_emulated.py, scripts/arm64/root.sh).

The end-to-end test needs the cached arm64 root that `make arm64-check` builds (minutes, once) and root
privileges (chroot); without them it is skipped with the reason. It never builds the root itself, so
`make test` on a fresh machine stays within its time.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO, TINY_CONFIG

ROOT_SCRIPT = REPO / "scripts" / "arm64" / "root.sh"


def root_status(env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", str(ROOT_SCRIPT), "status"], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=30)


def test_status_names_what_is_missing_in_one_line(tmp_path):
    done = root_status({"EDGEKD_ARM64_ROOT": str(tmp_path / "no-root")})
    assert done.returncode == 1
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1
    assert any(word in lines[0] for word in ("qemu-user-static", "binfmt", str(tmp_path / "no-root")))


def test_an_unknown_command_is_refused_with_the_usage():
    done = subprocess.run(["sh", str(ROOT_SCRIPT), "frobnicate"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert "usage:" in done.stderr


@pytest.mark.slow
def test_a_tiny_runs_arm64_bundle_gives_the_x86_answers_on_aarch64(write_config, tmp_path):
    status = root_status()
    if status.returncode != 0:
        pytest.skip(f"arm64 root not usable here: {status.stdout.strip()}")
    if os.geteuid() != 0:
        pytest.skip("running the arm64 root needs root privileges (chroot, mount)")
    config = write_config({**TINY_CONFIG, "name": "tiny-arm64", "targets": ["arm64-cpu"]}, "tiny-arm64.yaml")
    results = tmp_path / "arm64"
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "arm64_emulated.py"), "--config", str(config),
                           "--runs", str(tmp_path / "runs"), "--work", str(tmp_path / "work"), "--results", str(results),
                           "--qemu-cpu", "max"],
                          capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(results.with_suffix(".json").read_text())
    assert report["environment"]["machine"] == "aarch64"
    assert {row["precision"] for row in report["cases"]} == {"fp32", "int8"}
    for row in report["cases"]:
        assert row["sha256_verified_aarch64"] and row["ort_format_loaded"]
        assert row["top1_samples_apart"] <= 1, row
        assert row["max_abs_diff"] <= row["tolerance_abs"], row
        assert all(row["checks"].values()), row["checks"]
