from __future__ import annotations

from edgekd.core.metrics import accuracy_drop
from edgekd.device.gate import Thresholds, evaluate_report


def _report(top1: float, p50: float = 1.0, fp32_p50: float = 2.0, size: int = 2048) -> dict:
    return {"references": {"student_fp32": {"top1": 0.90}, "teacher": {"top1": 0.95}},
            "rows": [{"artifact": "t/fp32", "target": "t", "precision": "fp32", "shipped": False, "top1": 0.9,
                      "bytes": size * 4, "p50_ms": fp32_p50},
                     {"artifact": "t/int8", "target": "t", "precision": "int8", "shipped": True, "top1": top1,
                      "bytes": size, "p50_ms": p50}]}


def test_absolute_and_relative_drop():
    assert abs(accuracy_drop(0.90, 0.885, "absolute") - 1.5) < 1e-9
    assert abs(accuracy_drop(0.90, 0.81, "relative") - 10.0) < 1e-9


def test_gate_checks_only_shipped_artifacts_and_names_failures():
    checks = evaluate_report(_report(0.88), Thresholds(max_drop=1.0))
    assert [(c.artifact, c.threshold, c.passed) for c in checks] == [("t/int8", "max_drop", False)]
    checks = evaluate_report(_report(0.895), Thresholds(max_drop=1.0, min_speedup=1.5, max_size_kb=1.0))
    assert {c.threshold: c.passed for c in checks} == {"max_drop": True, "min_speedup": True, "max_size_kb": False}


def test_reference_teacher():
    checks = evaluate_report(_report(0.90), Thresholds(reference="teacher", max_drop=4.0))
    assert not checks[0].passed and "vs teacher" in checks[0].reason


def test_task_metric_drop_uses_max_metric_drop_and_names_the_metric():
    report = {**_report(0.885), "task_metric": "mask_iou"}
    checks = evaluate_report(report, Thresholds(max_drop=2.0))  # unset max_metric_drop: max_drop applies
    assert [(c.threshold, c.passed) for c in checks] == [("max_drop", True)]
    assert checks[0].reason.startswith("mask_iou drop 1.50 points")
    checks = evaluate_report(report, Thresholds(max_drop=2.0, max_metric_drop=1.0))
    assert [(c.threshold, c.passed) for c in checks] == [("max_metric_drop", False)]


def test_min_cosine_and_min_sqnr_read_the_rows_fidelity():
    report = _report(0.90)
    report["rows"][1]["fidelity"] = {"cosine": 0.995, "sqnr_db": 18.0}
    checks = evaluate_report(report, Thresholds(max_drop=None, min_cosine=0.99, min_sqnr_db=20))
    assert [(c.threshold, c.passed) for c in checks] == [("min_cosine", True), ("min_sqnr_db", False)]
    assert checks[1].reason == "sqnr_db 18 dB vs fp32 (limit 20 dB)"
    del report["rows"][1]["fidelity"]
    checks = evaluate_report(report, Thresholds(max_drop=None, min_cosine=0.99))
    assert not checks[0].passed and "no cosine" in checks[0].reason
