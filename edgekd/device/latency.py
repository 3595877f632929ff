"""Latency measurement with warm-up, interleaved rounds and robust statistics.

A model that answers in under SHORT_CALL_MS is timed over k back-to-back calls per sample (k so that one sample
lasts about TARGET_SAMPLE_MS), and the sample is reported per call: one 10-microsecond call is shorter than the
scheduler's hiccups, so single-call samples scatter by orders of magnitude (a CV of 1,500% on the quickstart) while
the mean of k calls is stable. Its p99 is then the p99 of those per-call means, said in the stats (calls_per_sample).
"""
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
SHORT_CALL_MS = 0.5      # below this per call (0.1 ms models scattered as badly as 0.01 ms ones), a sample is k calls...
TARGET_SAMPLE_MS = 1.0   # ...with k such that a sample lasts about this long
MAX_CALLS_PER_SAMPLE = 1000
_clock = time.perf_counter  # one name for the clock, so tests can drive the loop without timing anything


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
    calls_per_sample: int = 1  # >1: each sample is the mean of this many back-to-back calls (a model under SHORT_CALL_MS)

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


def _timed(run: Runner, batch: np.ndarray, calls: int = 1) -> float:
    """Milliseconds per call, over `calls` back-to-back calls."""
    start = _clock()
    for _ in range(calls):
        run(batch)
    return (_clock() - start) * 1000.0 / calls


def calls_per_sample(per_call_ms: list[float]) -> int:
    """1 for a model slower than SHORT_CALL_MS per call (the median of its warm-up calls); else enough back-to-back
    calls for a sample of about TARGET_SAMPLE_MS."""
    per_call = statistics.median(per_call_ms)
    if per_call >= SHORT_CALL_MS:
        return 1
    return int(min(MAX_CALLS_PER_SAMPLE, -(-TARGET_SAMPLE_MS // max(per_call, 1e-6))))


def _warm_up(run: Runner, batch: np.ndarray, spec: LatencySpec) -> tuple[float, int]:
    """Run the first inference (timed, reported apart), then warm up by count and by time; the warm calls' times
    decide how many calls one timed sample takes (calls_per_sample)."""
    first = _timed(run, batch)
    deadline = _clock() + spec.warmup_seconds
    warm: list[float] = []
    while len(warm) < spec.warmup_runs or _clock() < deadline:
        warm.append(_timed(run, batch))
    return first, calls_per_sample(warm[-20:] or [first])


def measure_interleaved(runners: dict[str, Runner], batch: np.ndarray, spec: LatencySpec, desc: str = "latency",
                        runtime_clocks: dict[str, RuntimeClock] | None = None) -> dict[str, LatencyStats]:
    """Time every runner in rounds, rotating the order, so machine drift hits all of them alike."""
    names, clocks = list(runners), runtime_clocks or {}
    warmed = {name: _warm_up(runners[name], batch, spec) for name in names}
    first, calls = {n: w[0] for n, w in warmed.items()}, {n: w[1] for n, w in warmed.items()}
    samples: dict[str, list[float]] = {name: [] for name in names}
    round_p50: dict[str, list[float]] = {name: [] for name in names}
    runtime: dict[str, list[float]] = {name: [] for name in clocks}
    per_round_runs = max(1, -(-spec.runs // spec.rounds))
    per_round_seconds = spec.min_seconds / spec.rounds
    for round_index in progress(range(spec.rounds), desc=desc, unit="round"):
        order = names[round_index % len(names):] + names[:round_index % len(names)]
        for name in order:
            started, done_before = _clock(), len(samples[name])
            while len(samples[name]) < per_round_runs * (round_index + 1) or _clock() - started < per_round_seconds:
                samples[name].append(_timed(runners[name], batch, calls[name]))
                if name in clocks:  # the runtime's own time of the sample's last call
                    runtime[name].append(clocks[name]())
            round_p50[name].append(statistics.median(samples[name][done_before:]))
    stats = {name: summarize(samples[name], sample_count(batch), first[name], runtime.get(name)) for name in names}
    for name in names:
        stats[name].round_p50_ms, stats[name].calls_per_sample = round_p50[name], calls[name]
    return stats
