"""What edgekd wrote for language models before they shared the image pipeline's formats stays readable
(device/lm_legacy.py): an edgekd.lm-bundle/1 bundle benches, and both old report schemas (edgekd bench's
edgekd.lm-device-report/1, the pipeline's edgekd.lm-report/1) gate with the verdicts they always had."""
from __future__ import annotations

import json

import pytest

from edgekd import api
from tests.device.test_lm_gate import _device_report

OLD_PIPELINE_REPORT = {"format": "edgekd.lm-report/1",
                       "references": {"student_fp32": {"perplexity": 8.0}, "teacher": {"perplexity": 7.0}},
                       "rows": [{"artifact": "x86-cpu/int8", "target": "x86-cpu", "precision": "int8", "perplexity": 8.1},
                                {"artifact": "arm64-cpu/int8", "target": "arm64-cpu", "precision": "int8", "perplexity": 8.4}]}


def _write(tmp_path, report, name="lm-report.json"):
    path = tmp_path / name
    path.write_text(json.dumps(report), encoding="utf-8")
    return path


def test_an_old_lm_bundle_benches_and_keeps_its_gate(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    from edgekd.core.fileio import read_json
    from tests.device.tiny_lm import build_lm_run

    run = build_lm_run(tmp_path, old=True)
    assert read_json(run / "bundle" / "x86-cpu" / "manifest.json")["format"] == "edgekd.lm-bundle/1"
    report = api.bench(run)
    assert {row["artifact"] for row in report["rows"]} == {"x86-cpu/fp32", "arm64-cpu/int8"}
    fp32 = next(row for row in report["rows"] if row["artifact"] == "x86-cpu/fp32")
    assert fp32["perplexity"] > 1 and fp32["tokens_per_second"] > 0
    assert report["verdict"]["passed"] is True


def test_an_old_device_report_gates_by_its_recorded_limits(tmp_path):
    checks = api.gate(_write(tmp_path, _device_report()))
    assert [c.passed for c in checks] == [True, False] and not checks.passed
    assert api.gate(_write(tmp_path, _device_report()), max_increase=0.1).passed


def test_an_old_device_report_without_limits_keeps_the_verdict_bench_gave(tmp_path):
    checks = api.gate(_write(tmp_path, _device_report(recorded=False)))
    assert [c.passed for c in checks] == [True, False] and all("(as benched)" in c.reason for c in checks)
    # a limit given now judges the rows again
    checks = api.gate(_write(tmp_path, _device_report(recorded=False)), max_increase=10)
    assert checks.passed and "(limit +1000%)" in checks[1].reason


def test_an_old_pipeline_report_gates_against_its_reference(tmp_path):
    path = _write(tmp_path, OLD_PIPELINE_REPORT)
    checks = api.gate(path, max_increase=0.03)
    assert [c.passed for c in checks] == [True, False]
    assert "perplexity 8.400 vs student_fp32 8.000: +5.00%" in checks[1].reason
    assert api.gate(path, max_increase=0.06).passed


def test_each_row_of_an_old_device_report_keeps_the_limit_it_was_benched_under(tmp_path):
    """Bundles of two runs benched together: +9% passes the bundle benched under +10% and fails the one under +5%, as
    bench judged them; a limit given now applies to both."""
    report = _device_report(perplexities=(10.9, 10.9))
    report["rows"][1]["max_increase"] = 0.10
    checks = api.gate(_write(tmp_path, report))
    assert [c.passed for c in checks] == [False, True] and "(limit +10%)" in checks[1].reason
    assert [c.passed for c in api.gate(_write(tmp_path, report), max_increase=0.2)] == [True, True]
