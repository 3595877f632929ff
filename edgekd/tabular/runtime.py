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
    n = len(next(iter(rows.values())))
    return np.concatenate([sess.run(None, feed(sess, rows, slice(i, i + batch)))[0] for i in range(0, n, batch)])


def feed(sess, rows: dict[str, np.ndarray], index: slice) -> dict[str, np.ndarray]:
    """The rows `index` of each input's column, in the number type the input declares (a user's teacher converted from a
    DataFrame takes double or int64 columns; edgekd holds numbers as float32)."""
    from edgekd.runtimes.ort import as_declared

    return {i.name: as_declared(rows[i.name][index], i.type, i.name, "teacher graph") for i in sess.get_inputs()}


def thread_counts() -> list[int]:
    """The thread counts each model is timed at: 1 and every core (its best is reported)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return sorted({1, cores})


def best_latency(path: str, rows: dict[str, np.ndarray], spec, desc: str = "latency") -> dict:
    """p50 at batch 1 of one real row, at each thread count; the best with the count that gave it (edgekd's
    interleaved timer, device/latency.py)."""
    return best_latencies({"model": (path, rows)}, spec, desc)["model"]


def best_latencies(models: dict[str, tuple[str, dict[str, np.ndarray]]], spec, desc: str = "latency") -> dict[str, dict]:
    """best_latency for several models ({name: (path, rows)}) timed in the same interleaved rounds, so a ratio of two
    of them is measured under the same machine load (a shared machine's load moves a 200 MB ensemble's time far more
    than a small network's)."""
    from edgekd.device.latency import measure_interleaved

    runners, feeds = {}, {}
    for name, (path, rows) in models.items():
        for threads in thread_counts():
            sess = session(path, threads)
            feeds[name] = feed(sess, rows, slice(0, 1))
            runners[(name, threads)] = lambda _batch, s=sess, feed=feeds[name]: s.run(None, feed)
    keyed = {f"{name}@{threads}": run for (name, threads), run in runners.items()}
    stats = measure_interleaved(keyed, next(iter(feeds.values())), spec, desc=desc)
    out = {}
    for name in models:
        by_threads = {threads: stats[f"{name}@{threads}"].p50_ms for threads in thread_counts()}
        best = min(by_threads, key=by_threads.get)
        out[name] = {"p50_ms": by_threads[best], "threads": best, "p50_ms_by_threads": by_threads}
    return out
