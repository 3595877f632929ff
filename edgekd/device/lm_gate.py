"""`edgekd gate` on a language model's report: the lm-report.json `edgekd bench` writes for LM bundles (schema
edgekd.lm-device-report/1) or the pipeline's bench stage writes (edgekd.lm-report/1).

A language model is gated on perplexity, not top-1: each row's perplexity at most (1 + max_increase) x its
reference's, the limit being --max-increase where given, else the one the row was benched under (recorded by this
edgekd's bench). A device report from before rows recorded their limit keeps the verdict bench gave it. The
checks are the image gate's Check records, so the CLI's output, JUnit XML and Markdown summary are the same.
Lean: no torch.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Optional

from edgekd.core.errors import ArtifactError
from edgekd.core.thresholds import threshold_problem
from edgekd.device.gate import Check, GateResult

LM_DEVICE_REPORT = "edgekd.lm-device-report/1"  # `edgekd bench` on LM bundles (device/lm_bench.py)
LM_PIPELINE_REPORT = "edgekd.lm-report/1"       # the pipeline's LM bench stage (edgekd/tasks/lm_ship.py)
LM_REPORTS = (LM_DEVICE_REPORT, LM_PIPELINE_REPORT)


def lm_report_schema(data: Any) -> Optional[str]:
    """The LM report's schema; reports written before they carried `schema` are known by their `format`."""
    if not isinstance(data, dict):
        return None
    for key in ("schema", "format"):
        if data.get(key) in LM_REPORTS:
            return data[key]
    return None


def gate_lm_report(data: dict[str, Any], path: Path | str, max_increase: Optional[float] = None,
                   allow_empty: bool = False) -> GateResult:
    """One max_increase check per row of the report; ArtifactError naming the file and field for a malformed one."""
    rows = data.get("rows")
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise ArtifactError(f"{path}: malformed report: rows must be a list of objects; regenerate it with edgekd bench")
    return GateResult([_check(row, index, data, path, max_increase) for index, row in enumerate(rows)], allow_empty)


def _check(row: dict[str, Any], index: int, data: dict[str, Any], path, max_increase: Optional[float]) -> Check:
    name = str(row.get("artifact") or f"rows[{index}]")
    perplexity = _positive(row.get("perplexity"), f"rows[{index}].perplexity", path)
    reference_name, reference = _reference(row, index, data, path)
    limit = max_increase if max_increase is not None else _recorded_limit(row, index, data, path)
    if perplexity is None or reference is None:
        why = "no perplexity measured" if perplexity is None else f"no {reference_name} perplexity in the report"
        return Check(name, "max_increase", True, f"skipped: {why}", skipped=True)
    if limit is None:
        if row.get("gate") in ("PASS", "FAIL"):  # a report from before rows recorded their limit: bench's own verdict
            return Check(name, "max_increase", row["gate"] == "PASS", f"{row.get('why', '')} (as benched)".strip())
        raise ArtifactError(f"{path}: {name} records no gate limit; pass --max-increase")
    increase = perplexity / reference - 1
    return Check(name, "max_increase", increase <= limit,
                 f"perplexity {perplexity:.3f} vs {reference_name} {reference:.3f}: {increase:+.2%} (limit +{limit * 100:g}%)")


def _reference(row: dict[str, Any], index: int, data: dict[str, Any], path) -> tuple[str, Optional[float]]:
    """The row's own reference (device reports), else the report's (the pipeline's: student_fp32 unless recorded)."""
    own = row.get("reference")
    if isinstance(own, dict):
        return str(own.get("name", "reference")), _positive(own.get("perplexity"), f"rows[{index}].reference.perplexity", path)
    name = str((data.get("gate") or {}).get("reference", "student_fp32")) if isinstance(data.get("gate"), dict) else "student_fp32"
    known = (data.get("references") or {}).get(name)
    value = known.get("perplexity") if isinstance(known, dict) else None
    return name, _positive(value, f"references.{name}.perplexity", path)


def _recorded_limit(row: dict[str, Any], index: int, data: dict[str, Any], path) -> Optional[float]:
    for value, key in ((row.get("max_increase"), f"rows[{index}].max_increase"),
                       ((data.get("gate") or {}).get("max_increase") if isinstance(data.get("gate"), dict) else None,
                        "gate.max_increase")):
        if value is not None:
            if problem := threshold_problem("max_increase", value):
                raise ArtifactError(f"{path}: {key} {problem}; regenerate the report or pass --max-increase")
            return float(value)
    return None


def _positive(value: Any, key: str, path) -> Optional[float]:
    """A perplexity: None when not measured, else a finite number > 0 (a hand-edited one is refused, naming it)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ArtifactError(f"{path}: malformed report: {key} is {value!r}, expected a perplexity > 0; "
                            "regenerate it with edgekd bench")
    return float(value)
