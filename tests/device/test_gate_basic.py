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


def test_min_speedup_is_judged_by_the_paired_rounds_the_reason_quotes():
    """Trial defect (session 14): `gate --min-speedup 1.1` PASSed "speedup 1.14x" (the ratio of the table's p50s) on a
    row whose reason said "1.05x its speed, median of 5 paired rounds" (within noise). The limit is now judged by the
    paired rounds' median where both rows carry rounds, else by the p50s' ratio, and the check says which."""
    report = _report(0.90, p50=1.0, fp32_p50=1.14)
    fp32_rounds = [1.05, 1.10, 1.14, 1.20, 1.25]
    int8_rounds = [r / 1.05 for r in fp32_rounds]  # 1.05x in every round, though the pooled p50s say 1.14x
    for row, rounds in zip(report["rows"], (fp32_rounds, int8_rounds)):
        row["latency"] = {"batch1": {"p50_ms": row["p50_ms"], "round_p50_ms": rounds}}
    check, = evaluate_report(report, Thresholds(max_drop=None, min_speedup=1.1))
    assert not check.passed
    assert check.reason == "speedup 1.05x over fp32, median of 5 paired rounds (limit 1.1x)"
    for row in report["rows"]:  # an older report without rounds: the p50s' ratio, said so
        del row["latency"]
    check, = evaluate_report(report, Thresholds(max_drop=None, min_speedup=1.1))
    assert check.passed and check.reason == "speedup 1.14x over fp32, ratio of p50s (limit 1.1x)"


def test_selection_judges_min_speedup_by_the_same_rule():
    """Trial defect (session 14): the compile stage's speed limit used the p50s' ratio too."""
    from edgekd.pipeline.selection import speedup_rule

    rule = speedup_rule(1.1, "gate")
    fp32_rounds = [1.05, 1.10, 1.14, 1.20, 1.25]
    row = {"p50_ms": 1.0, "round_p50_ms": [r / 1.05 for r in fp32_rounds], "fp32_p50_ms": 1.14,
           "fp32_round_p50_ms": fp32_rounds}
    assert rule(row) == "speedup 1.05x (median of 5 paired rounds) < min_speedup 1.1x (gate)"
    assert rule({"p50_ms": 1.0, "fp32_p50_ms": 1.14}) is None


def test_a_failing_value_never_reads_as_its_limit():
    """Trial defect (session 14): "FAIL ... min_speedup speedup 1.10x over fp32 (limit 1.1x)" (the real speed-up was
    1.098): rounding made a failure read as meeting its limit. A value is now shown with the digits that tell it from
    the limit, in every check that prints one beside its limit."""
    from edgekd.core.metrics import shown_against

    report = _report(0.90, p50=1.0, fp32_p50=1.098, size=102441)  # 100.04 KB
    report["rows"][1]["fidelity"] = {"cosine": 0.94996, "sqnr_db": 19.9996}
    checks = {c.threshold: c for c in evaluate_report(report, Thresholds(max_drop=None, min_speedup=1.1, max_size_kb=100,
                                                                          min_cosine=0.95, min_sqnr_db=20))}
    assert not any(c.passed for c in checks.values())
    assert checks["min_speedup"].reason == "speedup 1.098x over fp32, ratio of p50s (limit 1.1x)"
    assert checks["max_size_kb"].reason == "size 100.04 KB (limit 100 KB)"
    assert checks["min_cosine"].reason == "cosine 0.94996 vs fp32 (limit 0.95)"
    assert checks["min_sqnr_db"].reason == "sqnr_db 19.9996 dB vs fp32 (limit 20 dB)"
    assert shown_against(1.0033, 1.0) == "1.003" and shown_against(1.25, 2) == "1.25"  # drops; unchanged when apart
