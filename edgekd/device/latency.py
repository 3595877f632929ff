"""Latency measurement with warm-up, interleaved rounds and robust statistics."""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from edgekd.core.metrics import sample_count
from edgekd.core.progress import progress

Runner = Callable[[np.ndarray], np.ndarray]
# The runtime's own timing of the last run in ms, where it keeps one (OpenVINO's InferRequest.latency):
# inference without the Python call and input/output copies, the number benchmark_app and trtexec report.
RuntimeClock = Callable[[], float]
CV_WARNING = 0.10


@dataclass
class LatencySpec:
    warmup_runs: int = 10
    warmup_seconds: float = 0.2
    runs: int = 50
    min_seconds: float = 0.5
    rounds: int = 5


@dataclass
class LatencyStats:
    batch_size: int
    runs: int
    first_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    std_ms: float
    cv: float
    throughput_ips: float
    runtime_p50_ms: float | None = None  # from the RuntimeClock; p50_ms is the wall-clock time the caller sees
    runtime_p99_ms: float | None = None
    round_p50_ms: list[float] = field(default_factory=list)  # per round of measure_interleaved: for paired comparisons
    p10_ms: float | None = None  # with p90_ms, the spread shown in the report's plots

    def to_json(self) -> dict:
        return asdict(self)

    @property
    def noisy(self) -> bool:
        return self.cv > CV_WARNING


def summarize(samples_ms: list[float], batch_size: int, first_ms: float, runtime_ms: list[float] | None = None) -> LatencyStats:
    ordered = np.sort(np.asarray(samples_ms))
    mean = float(ordered.mean())
    std = float(ordered.std(ddof=1)) if len(ordered) > 1 else 0.0
    pct = lambda q: float(np.percentile(ordered, q))  # noqa: E731
    runtime = [float(np.percentile(runtime_ms, q)) for q in (50, 99)] if runtime_ms else [None, None]
    return LatencyStats(batch_size, len(ordered), first_ms, pct(50), pct(90), pct(99), mean, std,
                        std / mean if mean else 0.0, batch_size * 1000.0 / statistics.median(ordered), *runtime, p10_ms=pct(10))


def _timed(run: Runner, batch: np.ndarray) -> float:
    start = time.perf_counter()
    run(batch)
    return (time.perf_counter() - start) * 1000.0


def _warm_up(run: Runner, batch: np.ndarray, spec: LatencySpec) -> float:
    """Run the first inference (timed, reported apart), then warm up by count and by time."""
    first = _timed(run, batch)
    deadline = time.perf_counter() + spec.warmup_seconds
    count = 0
    while count < spec.warmup_runs or time.perf_counter() < deadline:
        run(batch)
        count += 1
    return first


def measure_interleaved(runners: dict[str, Runner], batch: np.ndarray, spec: LatencySpec, desc: str = "latency",
                        runtime_clocks: dict[str, RuntimeClock] | None = None) -> dict[str, LatencyStats]:
    """Time every runner in rounds, rotating the order, so machine drift hits all of them alike."""
    names, clocks = list(runners), runtime_clocks or {}
    first = {name: _warm_up(runners[name], batch, spec) for name in names}
    samples: dict[str, list[float]] = {name: [] for name in names}
    round_p50: dict[str, list[float]] = {name: [] for name in names}
    runtime: dict[str, list[float]] = {name: [] for name in clocks}
    per_round_runs = max(1, -(-spec.runs // spec.rounds))
    per_round_seconds = spec.min_seconds / spec.rounds
    for round_index in progress(range(spec.rounds), desc=desc, unit="round"):
        order = names[round_index % len(names):] + names[:round_index % len(names)]
        for name in order:
            started, done_before = time.perf_counter(), len(samples[name])
            while len(samples[name]) < per_round_runs * (round_index + 1) or time.perf_counter() - started < per_round_seconds:
                samples[name].append(_timed(runners[name], batch))
                if name in clocks:
                    runtime[name].append(clocks[name]())
            round_p50[name].append(statistics.median(samples[name][done_before:]))
    stats = {name: summarize(samples[name], sample_count(batch), first[name], runtime.get(name)) for name in names}
    for name in names:
        stats[name].round_p50_ms = round_p50[name]
    return stats
