"""Running and timing table ONNX graphs (teachers, their ensemble, the student) on onnxruntime, fed raw columns."""
from __future__ import annotations

import os

import numpy as np


def session(model: str | bytes, threads: int | None = None):
    from edgekd.runtimes.ort import open_session

    return open_session(model, threads, 1 if threads else None)


def run_onnx(model: str | bytes, rows: dict[str, np.ndarray], batch: int = 4096) -> np.ndarray:
    """The first output of `model` on raw columns, in batches."""
    sess = session(model)
    names = [i.name for i in sess.get_inputs()]
    n = len(next(iter(rows.values())))
    return np.concatenate([sess.run(None, {k: rows[k][i:i + batch] for k in names})[0] for i in range(0, n, batch)])


def thread_counts() -> list[int]:
    """The thread counts each model is timed at: 1 and every core (its best is reported)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return sorted({1, cores})


def best_latency(path: str, rows: dict[str, np.ndarray], spec, desc: str = "latency") -> dict:
    """p50 at batch 1 of one real row, at each thread count; the best with the count that gave it (edgekd's
    interleaved timer, device/latency.py)."""
    from edgekd.device.latency import measure_interleaved

    sessions = {threads: session(path, threads) for threads in thread_counts()}
    runners = {f"threads{t}": (lambda batch, s=s: s.run(None, batch)) for t, s in sessions.items()}
    names = [i.name for i in sessions[1].get_inputs()]
    one = {k: rows[k][:1] for k in names}
    stats = measure_interleaved(runners, one, spec, desc=desc)
    by_threads = {int(name[7:]): s.p50_ms for name, s in stats.items()}
    best = min(by_threads, key=by_threads.get)
    return {"p50_ms": by_threads[best], "threads": best, "p50_ms_by_threads": by_threads}
