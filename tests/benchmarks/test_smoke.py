"""Every script in benchmarks/ runs end to end in its --smoke mode (tiny sizes, a temporary folder), so a change
that breaks a benchmark fails here rather than when someone tries to reproduce a published result."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgekd.core.fileio import sha256_of

REPO = Path(__file__).resolve().parents[2]
BENCHMARKS = REPO / "benchmarks"
# Scripts that run only where special hardware or an emulated root exists, each covered by a test of its own.
NOT_SMOKED = {
    "arm64_emulated.py": "make arm64-check: tests/device/test_arm64_emulated.py runs it whenever the arm64 root is built",
    "arm64_device_outputs.py": "runs inside the arm64 root, called by arm64_emulated.py",
    "candidate_bundles.py": "a module of arm64_emulated.py and tensorrt_check.py, not a benchmark of its own",
    "tensorrt_check.py": "needs TensorRT and a CUDA GPU; tests/device/test_tensorrt_check.py checks its refusal here",
}
SCRIPTS = sorted(p.name for p in BENCHMARKS.glob("*.py") if p.name != "smoke.py" and p.name not in NOT_SMOKED)
# Scripts that measure the trained models in ../shared/models beside the checkout. Random weights do not serve
# even a smoke run (the pipeline refuses a model that scores at chance, and int8 of random weights breaks), so a
# checkout without that folder (a clone elsewhere) skips them, saying why.
SHARED_MODELS = REPO.parent / "shared" / "models" / "fashion-mnist-224"
NEEDS_SHARED_MODELS = {"byom.py", "given_sanity.py", "targets_architectures.py"}


def _snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): sha256_of(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def test_every_benchmark_script_has_a_smoke_mode():
    assert SCRIPTS, "no benchmark scripts found"
    missing = [name for name in SCRIPTS if "smoke.add_option(parser)" not in (BENCHMARKS / name).read_text(encoding="utf-8")]
    assert not missing, f"give these a --smoke mode (benchmarks/smoke.py) and they are run below: {missing}"


@pytest.mark.slow  # each trains or exports real models: tens of seconds on 2 cores
@pytest.mark.parametrize("script", SCRIPTS)
def test_benchmark_runs_in_smoke_mode(script, tmp_path):
    if script in NEEDS_SHARED_MODELS and not SHARED_MODELS.is_dir():
        pytest.skip(f"{script} needs the trained models in {SHARED_MODELS}, which this checkout has not beside it")
    published = _snapshot(BENCHMARKS / "results")
    env = {**os.environ, "TMPDIR": str(tmp_path), "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, str(BENCHMARKS / script), "--smoke"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-4000:])
    folders = list(tmp_path.glob("edgekd-smoke-*"))
    assert len(folders) == 1, f"expected one smoke folder in $TMPDIR, found {folders}"
    results = list(folders[0].rglob(f"{Path(script).stem}.json"))
    assert len(results) == 1, f"{script} --smoke wrote no {Path(script).stem}.json under {folders[0]}"
    assert json.loads(results[0].read_text())["smoke"] is True  # marked, so nobody mistakes it for a result
    assert results[0].with_suffix(".md").is_file()
    assert _snapshot(BENCHMARKS / "results") == published, "a smoke run must never touch benchmarks/results"
