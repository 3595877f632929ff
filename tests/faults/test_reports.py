"""Hand-edited and impossible reports: `edgekd gate` and `edgekd compare` refuse them with one line naming
the report file and the field (exit 2) instead of turning them into a verdict (issue 20, items 5, 6, 11)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgekd import api
from edgekd.core.errors import ArtifactError

from .helpers import assert_one_line_error, invoke

SAMPLES = 300


def sound_report() -> dict:
    """A report as edgekd bench writes it (the fields the gate and compare read), 300 evaluation samples."""
    def row(artifact, precision, top1, p50, size, shipped):
        return {"artifact": artifact, "target": artifact.split("/")[0], "backend": "ort", "precision": precision,
                "shipped": shipped, "top1": top1, "p50_ms": p50, "bytes": size, "gzip_bytes": size // 2}
    return {"schema": "edgekd.report/1", "run": "faults", "eval_set": {"samples": SAMPLES, "sha256": "a" * 64},
            "references": {"student_fp32": {"top1": 0.95}, "teacher": {"top1": 0.96}},
            "gate": {"reference": "student_fp32", "max_drop": 1.0, "drop_type": "absolute"},
            "rows": [row("x86-cpu/fp32", "fp32", 0.95, 2.0, 40_000, False), row("x86-cpu/int8", "int8", 0.94, 0.8, 12_000, True)],
            "warnings": []}


def _write(folder: Path, report: dict, name: str = "report.json") -> Path:
    path = folder / name
    path.write_text(json.dumps(report), encoding="utf-8")
    return path


# (what the user did, the edit, gate flags, the field the error must name)
IMPOSSIBLE = {
    "negative p50 on both sides": ({"rows": {0: {"p50_ms": -2.0}, 1: {"p50_ms": -0.8}}}, ["--min-speedup", "1.5"],
                                   "rows[0] (x86-cpu/fp32).p50_ms"),
    "p50 of zero": ({"rows": {1: {"p50_ms": 0}}}, ["--min-speedup", "1.5"], "rows[1] (x86-cpu/int8).p50_ms"),
    "negative bytes": ({"rows": {1: {"bytes": -12_000}}}, ["--max-size-kb", "10"], "rows[1] (x86-cpu/int8).bytes"),
    "top-1 in percent": ({"rows": {1: {"top1": 94.0}}}, [], "rows[1] (x86-cpu/int8).top1"),
    "top-1 true": ({"rows": {1: {"top1": True}}}, [], "rows[1] (x86-cpu/int8).top1"),
    "top-1 as text": ({"rows": {1: {"top1": "0.94"}}}, [], "rows[1] (x86-cpu/int8).top1"),
    "top-1 nan": ({"rows": {1: {"top1": float("nan")}}}, [], "rows[1] (x86-cpu/int8).top1"),
    "reference in percent": ({"references": {"student_fp32": {"top1": 95.0}}}, [], "references.student_fp32.top1"),
    "shipped as text": ({"rows": {1: {"shipped": "yes"}}}, [], "rows[1] (x86-cpu/int8).shipped"),
    "no sample count": ({"eval_set": {"samples": 0}}, [], "eval_set.samples"),
}


def _edit(report: dict, edit: dict) -> dict:
    """Merge `edit` into `report`: {"rows": {1: {"top1": 94.0}}} sets rows[1].top1."""
    for key, value in edit.items():
        if isinstance(value, dict) and isinstance(report[key], (dict, list)):
            _edit(report[key], value)
        else:
            report[key] = value
    return report


@pytest.mark.parametrize("case", sorted(IMPOSSIBLE))
def test_gate_refuses_an_impossible_report_naming_the_file_and_the_field(tmp_path, case):
    edit, flags, field = IMPOSSIBLE[case]
    path = _write(tmp_path, _edit(sound_report(), edit))
    from edgekd.device.ci_outputs import junit_xml

    junit = tmp_path / "gate.xml"  # an earlier CI output: a refused report leaves it alone
    junit.write_text(junit_xml([]), encoding="utf-8")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    message = assert_one_line_error(invoke("gate", path, *flags, "--junit", junit), str(path), field, "regenerate")
    assert "malformed report" in message
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_the_same_report_unedited_is_gated(tmp_path):
    """The reports above differ from a sound one only by the edit: this one passes every threshold they used."""
    result = invoke("gate", _write(tmp_path, sound_report()), "--min-speedup", "1.5", "--max-size-kb", "12")
    assert result.exit_code == 0, result.output
    assert "speedup 2.50x" in result.output and "gate: PASS (3 passed)" in result.output


def test_a_report_without_rows_names_the_missing_field(tmp_path):
    report = sound_report()
    del report["rows"]
    assert_one_line_error(invoke("gate", _write(tmp_path, report)), "report.json", "rows is missing")


def test_an_impossible_baseline_is_blamed_on_the_baseline_file(tmp_path):
    report, baseline = sound_report(), _edit(sound_report(), {"references": {"student_fp32": {"top1": 95.0}}})
    other = _write(tmp_path, baseline, "baseline.json")
    assert_one_line_error(invoke("gate", _write(tmp_path, report), "--baseline", other), "baseline.json",
                          "references.student_fp32.top1", "0.94, not 94.0")


def test_compare_refuses_an_impossible_report(tmp_path):
    good = _write(tmp_path, sound_report(), "a.json")
    bad = _write(tmp_path, _edit(sound_report(), {"rows": {1: {"p50_ms": 0}}}), "b.json")
    assert_one_line_error(invoke("compare", good, bad), "b.json", "rows[1] (x86-cpu/int8).p50_ms", "greater than 0")


def test_api_gate_raises_artifact_error_for_an_impossible_report(tmp_path):
    path = _write(tmp_path, _edit(sound_report(), {"rows": {1: {"top1": 94.0}}}))
    with pytest.raises(ArtifactError, match=r"report\.json: malformed report: rows\[1\] \(x86-cpu/int8\)\.top1 must be a fraction"):
        api.gate(path)


# ---- drops at the limit and the drop type (items 2, 11) -------------------------------------------


def test_a_drop_exactly_at_the_limit_passes_on_the_command_line(tmp_path):
    """0.95 -> 0.94 on 300 samples is 3 samples, exactly 1 point; as floats it is 1.0000000000000009."""
    path = _write(tmp_path, sound_report())
    at_limit = invoke("gate", path, "--max-drop", "1.0")
    assert at_limit.exit_code == 0, at_limit.output
    assert "top-1 drop 1.00 points vs student_fp32 (limit 1 points)" in at_limit.output
    one_more = _edit(sound_report(), {"rows": {1: {"top1": 281 / SAMPLES}}})
    assert invoke("gate", _write(tmp_path, one_more), "--max-drop", "1.0").exit_code == 1


def test_a_relative_drop_exactly_at_the_limit_passes(tmp_path):
    """150 -> 147 correct of 300 is exactly a 2 % relative drop; (1 - 0.49 / 0.5) * 100 is 2.0000000000000018."""
    report = sound_report()
    report["references"]["student_fp32"]["top1"] = 0.5
    report["rows"][1]["top1"] = 0.49
    result = invoke("gate", _write(tmp_path, report), "--max-drop", "2", "--relative")
    assert result.exit_code == 0, result.output
    assert "top-1 drop 2.00 % vs student_fp32 (limit 2 %)" in result.output


def test_absolute_drops_can_be_forced_on_a_report_that_recorded_relative_ones(tmp_path):
    report = sound_report()  # 0.95 -> 0.94: 1.00 point, 1.05 % relative
    report["gate"]["drop_type"] = "relative"
    path = _write(tmp_path, report)
    assert invoke("gate", path, "--max-drop", "1.0").exit_code == 1  # the report's relative drop: 1.05 % > 1
    forced = invoke("gate", path, "--max-drop", "1.0", "--absolute")
    assert forced.exit_code == 0, forced.output
    assert "top-1 drop 1.00 points" in forced.output
    assert api.gate(path, max_drop=1.0, drop_type="absolute").passed
    assert not api.gate(path, max_drop=1.0).passed


def test_relative_and_absolute_together_are_refused(tmp_path):
    path = _write(tmp_path, sound_report())
    assert_one_line_error(invoke("gate", path, "--relative", "--absolute"), "--relative and --absolute")
