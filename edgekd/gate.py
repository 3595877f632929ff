"""The release gate: thresholds on accuracy drop, speedup and size; a failure is exit code 1.

Drops, in the units the thresholds use:
    absolute: (reference_top1 - top1) * 100          -> top-1 points (0.99 -> 0.97 is a 2.0 point drop)
    relative: (1 - top1 / reference_top1) * 100      -> percent of the reference (0.99 -> 0.97 is 2.02 %)
Speedup: p50 at batch 1 of the same target's fp32 artifact / p50 of the artifact (same report, same machine).
Size: bytes of the model files / 1024.
The reference is a name in the report's `references` (teacher, student_fp32) or an artifact row
(e.g. x86-cpu/fp32); with a baseline report it is taken from there, and only if both reports were
measured on the same evaluation set (sha256).
Lean: no torch, so CI can gate a report on any machine.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import ArtifactError


def accuracy_drop(reference: float, value: float, drop_type: str = "absolute") -> float:
    if drop_type == "absolute":
        return (reference - value) * 100.0
    if drop_type == "relative":
        return (1.0 - value / reference) * 100.0 if reference else 0.0
    raise ValueError(f"unknown drop_type {drop_type!r}")


@dataclass
class Thresholds:
    reference: str = "student_fp32"
    max_drop: float | None = 1.0
    drop_type: str = "absolute"
    min_speedup: float | None = None
    max_size_kb: float | None = None


@dataclass
class Check:
    artifact: str
    threshold: str
    passed: bool
    reason: str
    skipped: bool = False


def reference_top1(report: dict[str, Any], name: str, baseline: dict[str, Any] | None = None) -> float:
    """Top-1 of the named reference, from the baseline report when given (same evaluation set only)."""
    source = report if baseline is None else baseline
    if baseline is not None:
        ours, theirs = report.get("eval_set", {}).get("sha256"), baseline.get("eval_set", {}).get("sha256")
        if not ours or ours != theirs:
            raise ArtifactError(f"baseline report was measured on a different evaluation set (sha256 {str(theirs)[:12]} "
                                f"vs {str(ours)[:12]}); accuracy drops between them mean nothing. "
                                "Bench both on the same eval.npz")
    if name in source.get("references", {}):
        return source["references"][name]["top1"]
    row = next((r for r in source.get("rows", []) if r["artifact"] == name and r.get("top1") is not None), None)
    if row is None:
        known = [*source.get("references", {}), *(r["artifact"] for r in source.get("rows", []))]
        raise ArtifactError(f"report has no reference '{name}' with a top-1; available: {', '.join(known)}")
    return row["top1"]


def check_row(row: dict[str, Any], reference_top1: float, baseline_p50: float | None, limits: Thresholds) -> list[Check]:
    name = row["artifact"]
    if row.get("top1") is None:
        return [Check(name, "measured", True, "skipped: not measurable on this machine; gate the report from the device",
                      skipped=True)]
    checks = []
    if limits.max_drop is not None:
        drop = accuracy_drop(reference_top1, row["top1"], limits.drop_type)
        unit = "points" if limits.drop_type == "absolute" else "%"
        checks.append(Check(name, "max_drop", drop <= limits.max_drop,
                            f"top-1 drop {drop:.2f} {unit} vs {limits.reference} (limit {limits.max_drop:g} {unit})"))
    if limits.min_speedup is not None:
        checks.append(_speedup_check(name, row.get("p50_ms"), baseline_p50, limits.min_speedup))
    if limits.max_size_kb is not None:
        size_kb = row["bytes"] / 1024
        checks.append(Check(name, "max_size_kb", size_kb <= limits.max_size_kb,
                            f"size {size_kb:.1f} KB (limit {limits.max_size_kb:g} KB)"))
    return checks


def _speedup_check(name: str, p50: float | None, baseline_p50: float | None, min_speedup: float) -> Check:
    if p50 is None or baseline_p50 is None:
        # Unverifiable is not a pass: the gate must be able to show the speedup it promises.
        return Check(name, "min_speedup", False, "no fp32 latency on this machine to compare with; bench fp32 too")
    speedup = baseline_p50 / p50
    return Check(name, "min_speedup", speedup >= min_speedup, f"speedup {speedup:.2f}x over fp32 (limit {min_speedup:g}x)")


def evaluate_report(report: dict[str, Any], limits: Thresholds, baseline: dict[str, Any] | None = None) -> list[Check]:
    """Checks for every shipped artifact in a report."""
    top1 = reference_top1(report, limits.reference, baseline)
    checks = []
    for row in report["rows"]:
        if not row.get("shipped"):
            continue
        fp32_p50 = next((r.get("p50_ms") for r in report["rows"]
                         if r["target"] == row["target"] and r["precision"] == "fp32"), None)
        checks.extend(check_row(row, top1, fp32_p50, limits))
    return checks


def verdicts(checks: list[Check]) -> dict[str, str]:
    """Per artifact: FAIL if any of its checks failed, else PASS."""
    out: dict[str, str] = {}
    for check in checks:
        out[check.artifact] = "FAIL" if not check.passed else out.get(check.artifact, "PASS")
    return out
