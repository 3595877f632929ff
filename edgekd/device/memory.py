"""Peak resident memory of one artifact, measured in a fresh subprocess.

Why a subprocess: a process's peak only ever grows, so inside the benchmarking process it would report
the largest model (or torch, in the pipeline) for every artifact. A fresh `python -m edgekd.device.memory`
imports numpy and the runtime, records its resident set (the baseline), creates the session, runs the
first inference and a few more, then reports its peak resident set (VmHWM). It imports no torch.

    python -m edgekd.device.memory ARTIFACT_JSON_FILE
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

METHOD = ("fresh subprocess per artifact: import numpy + runtime, create the session, run the first inference and "
          "{runs} more at batch {batch}; peak = VmHWM of that process (/proc/self/status; ru_maxrss elsewhere), "
          "baseline = its resident set after the imports")
_PROBE_RUNS = 20


def _proc_status_mb(field: str) -> float | None:
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    return None  # not Linux


def _rss_mb_now() -> float | None:
    return _proc_status_mb("VmRSS")


def _peak_rss_mb() -> float:
    """VmHWM on Linux: ru_maxrss is no good there, because execve keeps the parent's high-water mark at
    fork time, so every child of a 1 GB pipeline process would report at least 1 GB."""
    peak = _proc_status_mb("VmHWM")
    if peak is not None:
        return peak
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB elsewhere


def probe(request: dict[str, Any]) -> dict[str, Any]:
    """Runs inside the subprocess."""
    from edgekd.runtimes.base import Artifact
    from edgekd.runtimes.registry import get_backend

    artifact = Artifact.from_json(request["artifact"], Path(request["root"]))
    backend = get_backend(artifact.backend)
    backend.require()
    __import__(backend.runtime_module)
    batch = np.load(request["batch"], allow_pickle=False)
    if isinstance(batch, np.lib.npyio.NpzFile):  # several named inputs
        with batch:
            batch = dict(batch)
    baseline = _rss_mb_now()
    started = time.perf_counter()
    session = backend.session(artifact, request.get("threads"))
    created = time.perf_counter()
    session.run(batch)
    first = time.perf_counter()
    for _ in range(_PROBE_RUNS):
        session.run(batch)
    peak = _peak_rss_mb()
    return {"peak_rss_mb": peak, "baseline_rss_mb": baseline,
            "model_rss_mb": peak - baseline if baseline is not None else None,
            "cold_session_create_ms": (created - started) * 1000, "cold_first_inference_ms": (first - created) * 1000,
            "method": METHOD.format(runs=_PROBE_RUNS, batch=len(next(iter(batch.values())) if isinstance(batch, dict) else batch))}


def measure_memory(artifact_json: dict[str, Any], root: Path, batch: np.ndarray, threads: int | None = None,
                   timeout_s: float = 300) -> dict[str, Any]:
    """Run the probe in a fresh interpreter; returns its numbers, or {'error': ...} if it could not run."""
    with tempfile.TemporaryDirectory(prefix="edgekd-mem-") as tmp:
        if isinstance(batch, dict):  # several named inputs
            np.savez(Path(tmp) / "batch.npz", **batch)
        else:
            np.save(Path(tmp) / "batch.npy", np.ascontiguousarray(batch))
        saved = Path(tmp) / ("batch.npz" if isinstance(batch, dict) else "batch.npy")
        request = {"artifact": artifact_json, "root": str(Path(root).resolve()), "batch": str(saved),
                   "threads": threads}
        (Path(tmp) / "request.json").write_text(json.dumps(request), encoding="utf-8")
        done = subprocess.run([sys.executable, "-m", "edgekd.device.memory", str(Path(tmp) / "request.json")],
                              capture_output=True, text=True, timeout=timeout_s, env=_child_env())
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"memory probe exited {done.returncode}: {last[:200]}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _child_env() -> dict[str, str]:
    """The child must find this edgekd even when it runs from a source tree (PYTHONPATH, not installed)."""
    env = dict(os.environ)
    package_parent = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
    return env


def main(argv: list[str]) -> int:
    request = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    print(json.dumps(probe(request)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
