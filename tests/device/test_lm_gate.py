"""`edgekd gate` on language models' reports (device/lm_legacy.py), on report dicts: the device's (edgekd bench, with or
without the limits it records now), the pipeline's (edgekd.lm-report/1), and malformed ones refused naming the field."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from edgekd import api
from edgekd.cli import main
from edgekd.core.errors import ArtifactError, ConfigError
from tests.faults.helpers import assert_one_line_error


def _device_report(perplexities=(10.2, 10.9), reference=10.0, limit=0.05, recorded=True) -> dict:
    rows = []
    for index, perplexity in enumerate(perplexities):
        increase = perplexity / reference - 1
        row = {"artifact": f"x86-cpu/{'fp32' if index == 0 else 'int8'}", "perplexity": perplexity,
               "reference": {"name": "student_fp32", "perplexity": reference}, "gate": "PASS" if increase <= limit else "FAIL",
               "why": f"{increase:+.2%} (limit +{limit * 100:g}%)"}
        rows.append(row | ({"max_increase": limit} if recorded else {}))
    report = {"format": "edgekd.lm-device-report/1", "rows": rows, "gate": {"passed": None, "summary": ""}}
    return report | ({"schema": "edgekd.lm-device-report/1"} if recorded else {})


def _write(tmp_path, report, name="lm-report.json"):
    path = tmp_path / name
    path.write_text(json.dumps(report), encoding="utf-8")
    return path


def test_each_row_is_judged_by_the_limit_it_was_benched_under_or_the_flag(tmp_path):
    path = _write(tmp_path, _device_report())
    checks = api.gate(path)
    assert [c.passed for c in checks] == [True, False] and not checks.passed
    assert checks[1].reason == "perplexity 10.900 vs student_fp32 10.000: +9.00% (limit +5%)"
    assert api.gate(path, max_increase=0.1).passed
    result = CliRunner().invoke(main, ["gate", str(path)])
    assert result.exit_code == 1 and "FAIL  x86-cpu/int8" in result.output and "gate: FAIL (1 failed, 1 passed)" in result.output


def test_a_report_from_before_rows_recorded_their_limit_keeps_benchs_verdict(tmp_path):
    path = _write(tmp_path, _device_report(recorded=False))
    checks = api.gate(path)
    assert [c.passed for c in checks] == [True, False] and all("(as benched)" in c.reason for c in checks)


def test_the_pipelines_lm_report_is_gated_with_the_flag(tmp_path):
    report = {"format": "edgekd.lm-report/1", "references": {"student_fp32": {"perplexity": 8.0}, "teacher": {"perplexity": 7.0}},
              "rows": [{"artifact": "x86-cpu/int8", "perplexity": 8.1}]}
    path = _write(tmp_path, report)
    assert api.gate(path, max_increase=0.03).passed
    with pytest.raises(ArtifactError, match="x86-cpu/int8 records no gate limit; pass --max-increase"):
        api.gate(path)


@pytest.mark.parametrize("change, message", [
    (lambda r: r["rows"][1].update(perplexity=float("nan")), r"rows\[1\].perplexity is nan, expected a perplexity > 0"),
    (lambda r: r["rows"][0]["reference"].update(perplexity=0), r"rows\[0\].reference.perplexity is 0"),
    (lambda r: r["rows"][0].update(max_increase=float("inf")), r"rows\[0\].max_increase must be a finite number"),
    (lambda r: r.update(rows={"a": 1}), "rows must be a list"),
])
def test_a_malformed_lm_report_is_refused_naming_the_field(tmp_path, change, message):
    report = _device_report()
    change(report)
    with pytest.raises(ArtifactError, match=message):
        api.gate(_write(tmp_path, report))


def test_classifier_thresholds_are_refused_for_an_lm_report(tmp_path):
    path = _write(tmp_path, _device_report())
    with pytest.raises(ConfigError, match="min_speedup: a classifier's gate setting"):
        api.gate(path, min_speedup=1.5)
    assert_one_line_error(CliRunner().invoke(main, ["gate", str(path), "--baseline", str(path)]), "baseline", "perplexity")


def test_min_greedy_agreement_is_checked_where_measured_and_listed_as_skipped_elsewhere():
    """Trial defect (session 13): gate.min_greedy_agreement was never checked on a run shipping fp32 (its row has no
    token_agreement): "gate: PASS (1 passed)", the check neither passed nor skipped."""
    from edgekd.core.thresholds import Thresholds
    from edgekd.device.gate import gate_report

    def row(artifact, precision, **extra):
        return {"artifact": artifact, "target": artifact.split("/")[0], "precision": precision, "shipped": True,
                "perplexity": 10.0, "bytes": 1024, **extra}

    report = {"task_metric": "perplexity", "references": {"student_fp32": {"perplexity": 10.0}},
              "rows": [row("x86-cpu/fp32", "fp32"), row("arm64-cpu/int8", "int8", token_agreement=0.95),
                       row("rpi-cpu/int8", "int8")]}
    checks = gate_report(report, Thresholds(max_increase=0.03, min_greedy_agreement=0.99))
    agreement = {c.artifact: c for c in checks if c.threshold == "min_greedy_agreement"}
    assert agreement["x86-cpu/fp32"].skipped and "fp32's by construction" in agreement["x86-cpu/fp32"].reason
    assert not agreement["arm64-cpu/int8"].passed and "greedy agreement with fp32 0.950 (limit 0.99)" == agreement["arm64-cpu/int8"].reason
    assert agreement["rpi-cpu/int8"].skipped and "no greedy agreement with fp32 in the report" in agreement["rpi-cpu/int8"].reason
    assert checks.summary == "gate: FAIL (1 failed, 3 passed, 2 skipped)"
    shipping_fp32 = dict(report, rows=report["rows"][:1])
    assert gate_report(shipping_fp32, Thresholds(max_increase=0.03, min_greedy_agreement=1.0)).summary == \
        "gate: PASS (1 passed, 1 skipped)"
