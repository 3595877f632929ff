"""The text quantize stage keeps the int8 file whose validation drop is within the limit with the same float
tolerance as every other accuracy budget (core.metrics.within_limit), not a bare `<=`."""
from __future__ import annotations

from edgekd.tasks.text import _pick_int8


def test_a_drop_equal_to_the_limit_up_to_float_noise_is_within_it():
    noisy = 0.1 + 0.2  # 0.30000000000000004: a drop computed as a difference of accuracies
    rows = {"static": {"val_drop": noisy, "p50_ms": 2.0}, "dynamic": {"val_drop": 0.9, "p50_ms": 1.0}}
    assert _pick_int8(rows, 0.3) == ("static", True)


def test_the_faster_of_those_within_the_limit_else_the_smaller_drop():
    rows = {"static": {"val_drop": 0.1 + 0.2, "p50_ms": 2.0}, "dynamic": {"val_drop": 0.3, "p50_ms": 1.0}}
    assert _pick_int8(rows, 0.3) == ("dynamic", True)
    rows = {"static": {"val_drop": 0.8, "p50_ms": 2.0}, "dynamic": {"val_drop": 0.9, "p50_ms": 1.0}}
    assert _pick_int8(rows, 0.3) == ("static", False)
