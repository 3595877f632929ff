"""Is a latency difference real, or within what the measurement itself varies? Lean: numbers only.

Two timings are separated when the per-round medians of one all lie below those of the other (each round
is a median of many calls, so one slow stretch of the machine moves one round, not all of them); without
rounds (older reports), when their p10-p90 ranges do not overlap; without those, when the ratio exceeds
the larger coefficient of variation. A ratio between unseparated timings is reported as "within noise".
"""
from __future__ import annotations

import statistics
from typing import Any

MIN_ROUNDS = 3


def paired_speedup(slow: dict[str, Any], fast: dict[str, Any]) -> dict[str, Any]:
    """How much faster `fast` ran than `slow` (LatencyStats.to_json() of one interleaved measurement): the median
    over rounds of each round's ratio of p50s (both timed back to back in that round, so under the same load), and
    for reference the ratio of the p50s pooled over all rounds, which a machine switching between a slow and a fast
    state can pull either way (the two medians may fall in different states)."""
    ratios = [a / b for a, b in zip(slow["round_p50_ms"], fast["round_p50_ms"], strict=True)]
    return {"paired_median": round(statistics.median(ratios), 3), "rounds": [round(r, 3) for r in ratios],
            "pooled_p50": round(slow["p50_ms"] / fast["p50_ms"], 3)}


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
