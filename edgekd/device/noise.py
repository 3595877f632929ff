"""Is a latency difference real, or within what the measurement itself varies? Lean: numbers only.

Two timings are separated when the per-round medians of one all lie below those of the other (each round
is a median of many calls, so one slow stretch of the machine moves one round, not all of them); without
rounds (older reports), when their p10-p90 ranges do not overlap; without those, when the ratio exceeds
the larger coefficient of variation. A ratio between unseparated timings is reported as "within noise".

compare_speed is THE rule for "is this artifact faster?": the compile stage's selection, the language-model
pipeline's int8-or-fp32 choice and the report's reasons all call it. It pairs the two artifacts' per-round
medians (timed back to back in each round, so under the same load), takes the median of the per-round ratios,
and calls a difference real only outside a noise band (NOISE_BAND) and in most rounds (MIN_ROUNDS_AGREE).
Inside the band the caller ships the simpler artifact and says "within noise".
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

MIN_ROUNDS = 3
# A paired speed-up within +-3% is not a difference on a shared machine: a tiny model's per-round medians move
# that much from round to round. Outside it, a real difference shows in (nearly) every interleaved round.
NOISE_BAND = 0.03
MIN_ROUNDS_AGREE = 0.8
FASTER, SLOWER, WITHIN_NOISE = "faster", "slower", "within noise"


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


@dataclass(frozen=True)
class SpeedComparison:
    """How a candidate's speed compares with a baseline's: `speedup` > 1 means the candidate is faster."""

    speedup: float   # median over paired rounds of baseline time / candidate time (pooled p50s without rounds)
    rounds: int      # paired rounds compared; 0 when only pooled p50s were available
    faster_in: int   # rounds in which the candidate was faster
    outcome: str     # FASTER, SLOWER or WITHIN_NOISE
    band: float = NOISE_BAND

    def describe(self, baseline: str) -> str:
        """'within noise of fp32 (1.02x its speed, median of 5 paired rounds, faster in 3 of 5; band 3%)'."""
        relation = {FASTER: "faster than", SLOWER: "slower than", WITHIN_NOISE: "within noise of"}[self.outcome]
        how = (f"median of {self.rounds} paired rounds, faster in {self.faster_in} of {self.rounds}" if self.rounds
               else "ratio of p50s, no paired rounds")
        return f"{relation} {baseline} ({self.speedup:.2f}x its speed, {how}; band {self.band:.0%})"

    def to_json(self) -> dict[str, Any]:
        return {"speedup": self.speedup, "rounds": self.rounds, "faster_in": self.faster_in, "outcome": self.outcome,
                "band": self.band}


def compare_speed(candidate: dict[str, Any] | None, baseline: dict[str, Any] | None,
                  band: float = NOISE_BAND) -> SpeedComparison | None:
    """THE rule for "faster": `candidate` and `baseline` are latency stats (LatencyStats.to_json(), or any dict with
    p50_ms and round_p50_ms) from one interleaved measurement. Faster (or slower) only when the paired median is
    outside the band AND at least MIN_ROUNDS_AGREE of the rounds agree; else within noise. Without paired rounds
    (older records), the ratio of the p50s against the band alone. None when either was not timed."""
    if not candidate or not baseline or not candidate.get("p50_ms") or not baseline.get("p50_ms"):
        return None
    mine, theirs = candidate.get("round_p50_ms") or [], baseline.get("round_p50_ms") or []
    if len(mine) == len(theirs) >= MIN_ROUNDS:
        ratios = [b / a for a, b in zip(mine, theirs)]
        return _judge(statistics.median(ratios), ratios, band)
    return _judge(baseline["p50_ms"] / candidate["p50_ms"], [], band)


def judged_speedup(candidate: dict[str, Any] | None, baseline: dict[str, Any] | None) -> tuple[float, str] | None:
    """The speed-up of `candidate` over `baseline` (latency stats as compare_speed takes them) that a min_speedup limit
    is judged by, and the words saying how it was measured: the median of the paired rounds' ratios where both carry
    the same MIN_ROUNDS or more rounds (the number compare_speed calls "within noise" or not), else the ratio of the
    p50s. The gate and the compile stage's selection both use it, so a limit never passes on the pooled p50s while
    the same row's reason calls the gain within noise. None when either was not timed."""
    if not candidate or not baseline or not candidate.get("p50_ms") or not baseline.get("p50_ms"):
        return None
    mine, theirs = candidate.get("round_p50_ms") or [], baseline.get("round_p50_ms") or []
    if len(mine) == len(theirs) >= MIN_ROUNDS:
        return statistics.median([b / a for a, b in zip(mine, theirs)]), f"median of {len(mine)} paired rounds"
    return baseline["p50_ms"] / candidate["p50_ms"], "ratio of p50s"


def compare_rates(candidate: list[float], baseline: list[float], band: float = NOISE_BAND) -> SpeedComparison | None:
    """compare_speed for throughputs (tokens/s, higher is faster) measured in pairs: candidate[i] and baseline[i]
    timed back to back (the same prompt, one after the other)."""
    if not candidate or len(candidate) != len(baseline) or not all(candidate) or not all(baseline):
        return None
    to_times = lambda rates: [1.0 / r for r in rates]  # noqa: E731
    return compare_speed({"p50_ms": 1.0 / statistics.median(candidate), "round_p50_ms": to_times(candidate)},
                         {"p50_ms": 1.0 / statistics.median(baseline), "round_p50_ms": to_times(baseline)}, band)


def _judge(speedup: float, ratios: list[float], band: float) -> SpeedComparison:
    faster_in = sum(r > 1 for r in ratios)
    agree = lambda count: not ratios or count >= MIN_ROUNDS_AGREE * len(ratios)  # noqa: E731
    if speedup >= 1 + band and agree(faster_in):
        outcome = FASTER
    elif speedup <= 1 / (1 + band) and agree(sum(r < 1 for r in ratios)):
        outcome = SLOWER
    else:
        outcome = WITHIN_NOISE
    return SpeedComparison(round(speedup, 3), len(ratios), faster_in, outcome, band)
