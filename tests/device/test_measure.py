"""edgekd.device.measure's text-length timing: the median real length of the texts, one unpadded text of it, and
artifacts that cannot take that shape left out with the reason in their row."""
from __future__ import annotations

import weakref

import numpy as np

from edgekd.device.latency import LatencySpec
from edgekd.device.measure import _add_median_text_latency, median_text_batch, median_tokens
from edgekd.device.report.table import median_length_lines

FAST = LatencySpec(warmup_runs=1, warmup_seconds=0.0, runs=4, min_seconds=0.0, rounds=2)


def texts(lengths: list[int], padded: int = 16) -> dict[str, np.ndarray]:
    mask = np.array([[1] * n + [0] * (padded - n) for n in lengths], dtype=np.int64)
    ids = np.where(mask == 1, np.arange(1, padded + 1), 0).astype(np.int64)
    return {"input_ids": ids, "attention_mask": mask}


def test_median_tokens_is_the_median_real_length():
    assert median_tokens(texts([4, 6, 9, 12, 16])) == 9


def test_median_tokens_is_none_for_images_and_for_texts_that_fill_the_padding():
    assert median_tokens(np.zeros((3, 1, 8, 8), np.float32)) is None
    assert median_tokens(texts([16, 16, 5])) is None


def test_the_median_batch_is_one_real_text_cut_to_that_length_without_padding():
    batch = median_text_batch(texts([4, 6, 9, 12, 16]), 9)
    assert batch["input_ids"].shape == batch["attention_mask"].shape == (1, 9)
    assert batch["attention_mask"].all()  # a text at least 9 tokens long: no padding inside the window


def test_runners_are_timed_at_the_median_length_and_one_that_refuses_the_shape_says_why():
    x = texts([4, 6, 9, 12, 16])
    seen = []

    def dynamic(batch):
        seen.append(batch["input_ids"].shape)
        return np.zeros((1, 3), np.float32)

    def static(batch):
        if batch["input_ids"].shape[1] != 16:
            raise ValueError("engine built for 16 tokens\nmore detail")
        return np.zeros((1, 3), np.float32)

    rows = [{"artifact": "ort/fp32"}, {"artifact": "trt/fp16"}]
    _add_median_text_latency(rows, {"ort/fp32": dynamic, "trt/fp16": static}, {}, x, FAST)
    assert set(seen) == {(1, 9)}
    assert rows[0]["latency"]["batch1_tokens9"]["p50_ms"] >= 0
    assert "latency" not in rows[1] and rows[1]["not_timed_at_median_length"] == "9 tokens: engine built for 16 tokens"
    line = median_length_lines({"rows": rows})[-1]
    assert "9 tokens" in line and "`ort/fp32`" in line and "trt/fp16" not in line


def test_image_inputs_get_no_median_length_timing():
    rows = [{"artifact": "ort/fp32"}]
    _add_median_text_latency(rows, {"ort/fp32": lambda b: b}, {}, np.zeros((2, 1, 8, 8), np.float32), FAST)
    assert rows == [{"artifact": "ort/fp32"}] and median_length_lines({"rows": rows}) == []


class _TrackedSession:
    """A runtime session that records the largest batch it ran; `alive` holds the live ones."""

    alive = weakref.WeakSet()

    def __init__(self):
        self.largest = 0
        _TrackedSession.alive.add(self)

    def run(self, x):
        self.largest = max(self.largest, len(x))
        return np.zeros((len(x), 3), np.float32)

    def threads_used(self):
        return 1


class _TrackedBackend:
    runtime_clock = False

    def __init__(self, log):
        self.log = log

    def available(self):
        return True

    def session(self, artifact, threads):
        # sessions still holding an accuracy pass's batch when another is created: what a ship's peak is made of
        self.log.append(sum(s.largest > 8 for s in _TrackedSession.alive))
        return _TrackedSession()


def test_candidates_are_timed_on_fresh_sessions_not_the_ones_that_ran_the_accuracy_pass(monkeypatch):
    """Each candidate's accuracy pass runs large batches, and runtimes keep the largest batch's activations while the
    session lives: holding those sessions open for interleaved timing made a 224x224 ResNet-18's bench peak at 2.5 GB.
    No session that ran a large batch may still be alive when the next one opens."""
    from types import SimpleNamespace

    from edgekd.device import measure

    log = []
    monkeypatch.setattr(measure, "get_backend", lambda name: _TrackedBackend(log))
    monkeypatch.setattr(measure, "describe", lambda candidate: {"artifact": candidate.name})
    artifact = SimpleNamespace(backend="tracked", rebuild_on_device=False)
    candidates = [measure.Candidate(f"t/{name}", "t", artifact) for name in ("fp32", "int8", "bf16")]
    x, y = np.zeros((64, 4), np.float32), np.zeros(64, np.int64)
    rows = measure.measure_rows(candidates, x, y, np.zeros((64, 3), np.float32), FAST, (1, 8), memory=False)
    assert all(row["top1"] == 1.0 and row["p50_ms"] >= 0 for row in rows), rows
    assert len(log) == 6 and max(log) == 0, log  # an accuracy and a timing session per candidate, never overlapping
