from __future__ import annotations

import numpy as np
import pytest

from edgekd.device.latency import LatencySpec, measure_interleaved, summarize


def test_summary_statistics_of_known_samples():
    stats = summarize([float(v) for v in range(1, 101)], batch_size=4, first_ms=7.0)
    assert stats.p50_ms == pytest.approx(50.5) and stats.p90_ms == pytest.approx(90.1) and stats.p99_ms == pytest.approx(99.01)
    assert stats.mean_ms == pytest.approx(50.5) and stats.std_ms == pytest.approx(np.std(range(1, 101), ddof=1))
    assert stats.cv == pytest.approx(stats.std_ms / 50.5) and stats.noisy
    assert stats.throughput_ips == pytest.approx(4 * 1000 / 50.5)  # batch / median
    assert stats.first_ms == 7.0 and stats.runs == 100


def _recorder(log: list, name: str):
    def run(batch):
        log.append(name)
        return batch
    return run


@pytest.fixture
def one_call_per_sample(monkeypatch):
    """These tests count calls: the recorders answer in well under SHORT_CALL_MS, which would batch calls."""
    import edgekd.device.latency as latency

    monkeypatch.setattr(latency, "SHORT_CALL_MS", 0.0)


def test_warm_up_by_count_then_timed_runs_by_count(one_call_per_sample):
    log: list[str] = []
    spec = LatencySpec(warmup_runs=5, warmup_seconds=0.0, runs=20, min_seconds=0.0, rounds=4)
    stats = measure_interleaved({"a": _recorder(log, "a")}, np.zeros((1, 3)), spec)
    assert len(log) == 1 + 5 + 20  # first inference, warm-up, timed
    assert stats["a"].runs == 20


def test_warm_up_and_timing_by_duration():
    log: list[str] = []
    spec = LatencySpec(warmup_runs=0, warmup_seconds=0.05, runs=1, min_seconds=0.1, rounds=2)
    stats = measure_interleaved({"a": _recorder(log, "a")}, np.zeros((1, 3)), spec)
    assert stats["a"].runs > 100 and len(log) > stats["a"].runs + 100  # time-bound, not count-bound


def test_rounds_interleave_and_rotate_the_order(one_call_per_sample):
    log: list[str] = []
    runners = {name: _recorder(log, name) for name in "abc"}
    spec = LatencySpec(warmup_runs=0, warmup_seconds=0.0, runs=3, min_seconds=0.0, rounds=3)
    measure_interleaved(runners, np.zeros((1, 3)), spec)
    timed = log[3:]  # after each runner's first inference
    assert timed == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]


def test_runtime_clock_is_summarized_beside_the_wall_clock():
    spec = LatencySpec(warmup_runs=0, warmup_seconds=0.0, runs=10, min_seconds=0.0, rounds=2)
    stats = measure_interleaved({"a": lambda b: b, "b": lambda b: b}, np.zeros((1, 3)), spec, runtime_clocks={"a": lambda: 0.25})
    assert stats["a"].runtime_p50_ms == 0.25 and stats["a"].runtime_p99_ms == 0.25
    assert stats["b"].runtime_p50_ms is None  # a runtime without its own clock


def test_openvino_bundle_reports_its_own_clock_next_to_the_wall_clock(tmp_path, bundle_factory):
    from edgekd import api

    bundle_factory(tmp_path, "intel-cpu", backend="openvino")
    report = api.bench(tmp_path, runs=200, min_seconds=0, warmup_runs=5, warmup_seconds=0, rounds=2, memory=False)
    stats = report["rows"][0]["latency"]["batch1"]
    assert report["rows"][0]["backend"] == "openvino" and report["rows"][0]["parameters"] == 650
    # InferRequest.latency times less than the Python call around it
    assert 0 < stats["runtime_p50_ms"] <= stats["p50_ms"] * 1.05, stats


class _FakeClock:
    """A model of 10 us per call whose every 10th call is hit by a 500 us hiccup of the machine: time advances
    only when the model runs, so the test times nothing."""

    def __init__(self):
        self.now, self.calls = 0.0, 0

    def __call__(self) -> float:
        return self.now

    def run(self, batch):
        self.calls += 1
        self.now += 10e-6 + (500e-6 if self.calls % 10 == 0 else 0.0)
        return batch


def test_a_model_under_100_us_is_timed_over_many_calls_per_sample(monkeypatch):
    """Issue 32 item 14: one call per sample gave the quickstart's 10-us models a CV of 1,500%. Samples of about
    1 ms (100 calls here) report the per-call time with a CV that means something."""
    import edgekd.device.latency as latency

    clock = _FakeClock()
    monkeypatch.setattr(latency, "_clock", clock)
    spec = LatencySpec(warmup_runs=20, warmup_seconds=0.0, runs=50, min_seconds=0.0, rounds=5)
    stats = measure_interleaved({"tiny": clock.run}, np.zeros((1, 3)), spec)["tiny"]
    assert stats.calls_per_sample == 100  # 1 ms / the 10 us median warm call
    assert stats.p50_ms == pytest.approx(0.060)  # per call: 10 us + a 500 us hiccup every 10th call
    assert stats.cv < 0.01 and stats.runs == 50
    assert len(stats.round_p50_ms) == 5 and all(r == pytest.approx(0.060) for r in stats.round_p50_ms)


def test_a_model_over_100_us_keeps_one_call_per_sample(monkeypatch):
    import edgekd.device.latency as latency

    clock = _FakeClock()
    monkeypatch.setattr(latency, "_clock", clock)
    slow = lambda batch: setattr(clock, "now", clock.now + 2e-3)  # noqa: E731  # 2 ms a call
    stats = measure_interleaved({"big": slow}, np.zeros((1, 3)), LatencySpec(warmup_runs=3, warmup_seconds=0.0, runs=10,
                                                                             min_seconds=0.0, rounds=2))["big"]
    assert stats.calls_per_sample == 1 and stats.p50_ms == pytest.approx(2.0)
