"""The release gate: thresholds on accuracy drop, speedup, size and fidelity to fp32; a failure is exit code 1.

A report whose `task_metric` is not top1 holds that metric in its `top1` fields: its drop is checked against
max_metric_drop when set, else max_drop. min_cosine and min_sqnr_db check each row's `fidelity` (the worst output).

Drops (absolute points or relative percent, from counts of correct samples): edgekd.core.metrics.accuracy_drop.
Speedup: p50 at batch 1 of the same target's fp32 artifact / p50 of the artifact (same report, same machine).
Size: bytes of the model files / 1024.
The reference is a name in the report's `references` (teacher, student_fp32) or an artifact row
(e.g. x86-cpu/fp32); with a baseline report it is taken from there, and only if both reports were
measured on the same evaluation set (sha256).
A skipped check (an artifact not measurable on this machine) is counted apart, never as a pass; a gate
with no check actually evaluated fails unless `allow_empty` is set: "nothing failed" is not "all passed".
Lean: no torch, so CI can gate a report on any machine.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgekd.core.errors import ArtifactError
from edgekd.core.metrics import FIDELITY, accuracy_drop, at_least, within_limit
from edgekd.core.thresholds import Thresholds  # the one model (core: profiles use it too); re-exported here


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


def check_row(row: dict[str, Any], reference_top1: float, baseline_p50: float | None, limits: Thresholds,
              samples: int | None = None, metric: str = "top1") -> list[Check]:
    """The checks of one artifact; `samples`: the size of the evaluation set, so drops come from counts. `metric`: what
    the row's `top1` holds (the report's task_metric: top-1, or a task metric such as mask_iou)."""
    name = row["artifact"]
    if row.get("top1") is None:
        return [Check(name, "measured", True, "skipped: not measurable on this machine; gate the report from the device",
                      skipped=True)]
    checks = []
    drop_limit = limits.metric_drop_limit(metric)
    if drop_limit is not None:
        drop = accuracy_drop(reference_top1, row["top1"], limits.drop_type, samples)
        unit = "points" if limits.drop_type == "absolute" else "%"
        key = "max_metric_drop" if drop_limit is not limits.max_drop else "max_drop"
        what = "top-1" if metric == "top1" else metric
        checks.append(Check(name, key, within_limit(drop, drop_limit),
                            f"{what} drop {drop:.2f} {unit} vs {limits.reference} (limit {drop_limit:g} {unit})"))
    checks += fidelity_checks(name, row.get("fidelity") or {}, limits)
    if limits.min_speedup is not None:
        checks.append(_speedup_check(name, row.get("p50_ms"), baseline_p50, limits.min_speedup))
    if limits.max_size_kb is not None:
        size_kb = row["bytes"] / 1024
        checks.append(Check(name, "max_size_kb", size_kb <= limits.max_size_kb,
                            f"size {size_kb:.1f} KB (limit {limits.max_size_kb:g} KB)"))
    return checks


def fidelity_checks(name: str, numbers: dict[str, Any], limits: Thresholds) -> list[Check]:
    """min_cosine and min_sqnr_db on a row's fidelity to the fp32 reference (its worst output)."""
    checks = []
    for key, field, unit in (("min_cosine", "cosine", ""), ("min_sqnr_db", "sqnr_db", " dB")):
        limit = getattr(limits, key)
        if limit is None:
            continue
        value = numbers.get(field)
        if value is None:  # unverifiable is not a pass
            checks.append(Check(name, key, False, f"no {field} against fp32 in the report; bench it with this edgekd"))
        else:
            checks.append(Check(name, key, at_least(value, limit), f"{field} {value:.4g}{unit} vs fp32 (limit {limit:g}{unit})"))
    return checks


def _speedup_check(name: str, p50: float | None, baseline_p50: float | None, min_speedup: float) -> Check:
    if p50 is None or baseline_p50 is None:
        # Unverifiable is not a pass: the gate must be able to show the speedup it promises.
        return Check(name, "min_speedup", False, "no fp32 latency on this machine to compare with; bench fp32 too")
    speedup = baseline_p50 / p50
    return Check(name, "min_speedup", at_least(speedup, min_speedup), f"speedup {speedup:.2f}x over fp32 (limit {min_speedup:g}x)")


def evaluate_report(report: dict[str, Any], limits: Thresholds, baseline: dict[str, Any] | None = None) -> list[Check]:
    """Checks for every shipped artifact in a report."""
    top1 = reference_top1(report, limits.reference, baseline)
    samples = report.get("eval_set", {}).get("samples")  # a baseline is only accepted on the same evaluation set
    checks = []
    fidelity = report.get("measured") == FIDELITY  # top-1 against the fp32 model's own top-1: the drop is disagreement
    for row in report["rows"]:
        if not row.get("shipped"):
            continue
        fp32_p50 = next((r.get("p50_ms") for r in report["rows"]
                         if r["target"] == row["target"] and r["precision"] == "fp32"), None)
        row_checks = check_row(row, top1, fp32_p50, limits, samples, report.get("task_metric") or "top1")
        for check in row_checks if fidelity else ():
            if check.threshold in ("max_drop", "max_metric_drop"):
                what = "top-1" if report.get("task_metric", "top1") == "top1" else report["task_metric"]
                check.reason = f"{check.reason}; no labels: this is disagreement with the fp32 model's {what}"
        checks.extend(row_checks)
    return checks


NOTHING_TO_CHECK = ("nothing to check: no shipped artifact has a measured accuracy; "
                    "run edgekd bench on the device (or allow it: --allow-empty, gate.allow_empty)")


class GateResult(list):
    """The checks of one gate (a list, as before) with the verdict that counts skips apart."""

    def __init__(self, checks: list[Check], allow_empty: bool = False):
        super().__init__(checks)
        self.allow_empty = allow_empty

    @property
    def failed(self) -> int:
        return sum(not c.passed for c in self)

    @property
    def skipped(self) -> int:
        return sum(c.passed and c.skipped for c in self)

    @property
    def evaluated(self) -> int:
        return len(self) - self.skipped

    @property
    def passed(self) -> bool:
        return self.failed == 0 and (self.evaluated > 0 or self.allow_empty)

    @property
    def summary(self) -> str:
        """One line, e.g. `gate: PASS (2 passed, 3 skipped)`; with nothing evaluated it says why."""
        counts = ", ".join(f"{n} {word}" for n, word in ((self.failed, "failed"), (self.evaluated - self.failed, "passed"),
                                                         (self.skipped, "skipped")) if n or word == "passed")
        if self.evaluated == 0 and not self.allow_empty:
            return f"gate: FAIL ({NOTHING_TO_CHECK}; {counts})"
        return f"gate: {'PASS' if self.passed else 'FAIL'} ({counts})"


def gate_report(report: dict[str, Any], limits: Thresholds, baseline: dict[str, Any] | None = None) -> GateResult:
    """evaluate_report with its verdict: what the CLI, the API and the pipeline's gate stage all use."""
    return GateResult(evaluate_report(report, limits, baseline), limits.allow_empty)


def verdicts(checks: list[Check]) -> dict[str, str]:
    """Per artifact: FAIL if any of its checks failed, else PASS."""
    out: dict[str, str] = {}
    for check in checks:
        out[check.artifact] = "FAIL" if not check.passed else out.get(check.artifact, "PASS")
    return out
