"""Is a latency difference real, or within what the measurement itself varies? Lean: numbers only.

Two timings are separated when the per-round medians of one all lie below those of the other (each round
is a median of many calls, so one slow stretch of the machine moves one round, not all of them); without
rounds (older reports), when their p10-p90 ranges do not overlap; without those, when the ratio exceeds
the larger coefficient of variation. A ratio between unseparated timings is reported as "within noise".
"""
from __future__ import annotations

from typing import Any

MIN_ROUNDS = 3


def separated(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool | None:
    """True when latency stats `a` and `b` (LatencyStats.to_json()) differ beyond their noise; None when unknown."""
    if not a or not b or not a.get("p50_ms") or not b.get("p50_ms"):
        return None
    ra, rb = a.get("round_p50_ms") or [], b.get("round_p50_ms") or []
    if len(ra) >= MIN_ROUNDS and len(rb) >= MIN_ROUNDS:
        return max(ra) < min(rb) or max(rb) < min(ra)
    if a.get("p10_ms") is not None and b.get("p10_ms") is not None:
        return a["p90_ms"] < b["p10_ms"] or b["p90_ms"] < a["p10_ms"]
    if a.get("cv") is not None and b.get("cv") is not None:
        ratio = max(a["p50_ms"], b["p50_ms"]) / min(a["p50_ms"], b["p50_ms"])
        return ratio - 1 > max(a["cv"], b["cv"])
    return None
