"""The release gate: thresholds on accuracy drop, speedup and size; a failure is exit code 1.

drop_type absolute: (reference - value) in top-1 points; relative: (1 - value / reference) in percent.
Lean: no torch, so CI can gate a report on any machine.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional


def accuracy_drop(reference: float, value: float, drop_type: str = "absolute") -> float:
    if drop_type == "absolute":
        return (reference - value) * 100.0
    if drop_type == "relative":
        return (1.0 - value / reference) * 100.0 if reference else 0.0
    raise ValueError(f"unknown drop_type {drop_type!r}")


@dataclass
class Thresholds:
    reference: str = "student_fp32"
    max_drop: Optional[float] = 1.0
    drop_type: str = "absolute"
    min_speedup: Optional[float] = None
    max_size_kb: Optional[float] = None


@dataclass
class Check:
    artifact: str
    threshold: str
    passed: bool
    reason: str


def check_row(row: dict[str, Any], reference_top1: float, baseline_p50: Optional[float], limits: Thresholds) -> list[Check]:
    name, checks = row["artifact"], []
    if row.get("top1") is None:
        return [Check(name, "measured", True, "skipped: not measurable on this machine; gate the report from the device")]
    if limits.max_drop is not None:
        drop = accuracy_drop(reference_top1, row["top1"], limits.drop_type)
        unit = "points" if limits.drop_type == "absolute" else "%"
        checks.append(Check(name, "max_drop", drop <= limits.max_drop,
                            f"top-1 drop {drop:.2f} {unit} vs {limits.reference} (limit {limits.max_drop:g})"))
    if limits.min_speedup is not None:
        p50 = row.get("p50_ms")
        if p50 is None or baseline_p50 is None:
            checks.append(Check(name, "min_speedup", False, "no latency measured on this machine to compare with fp32"))
        else:
            speedup = baseline_p50 / p50
            checks.append(Check(name, "min_speedup", speedup >= limits.min_speedup,
                                f"speedup {speedup:.2f}x over fp32 (limit {limits.min_speedup:g}x)"))
    if limits.max_size_kb is not None:
        size_kb = row["bytes"] / 1024
        checks.append(Check(name, "max_size_kb", size_kb <= limits.max_size_kb,
                            f"size {size_kb:.1f} KB (limit {limits.max_size_kb:g} KB)"))
    return checks


def evaluate_report(report: dict[str, Any], limits: Thresholds) -> list[Check]:
    """Checks for every shipped artifact in a report."""
    from .errors import ArtifactError

    references = report.get("references", {})
    if limits.reference not in references:
        raise ArtifactError(f"report has no reference '{limits.reference}'; available: {', '.join(references)}")
    reference_top1 = references[limits.reference]["top1"]
    checks = []
    for row in report["rows"]:
        if not row.get("shipped"):
            continue
        baseline = next((r.get("p50_ms") for r in report["rows"]
                         if r["target"] == row["target"] and r["precision"] == "fp32"), None)
        checks.extend(check_row(row, reference_top1, baseline, limits))
    return checks
