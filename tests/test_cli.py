"""`edgekd run`'s output: the gate verdict shown is this invocation's, never a leftover gate.json."""
from __future__ import annotations

import json

from click.testing import CliRunner

from edgekd import cli
from edgekd.stages.context import RunContext

from .test_gate import make_report


def _run_with(monkeypatch, tmp_path, outcomes: dict, passed: bool):
    (tmp_path / "report.json").write_text(json.dumps(make_report()))
    (tmp_path / "gate.json").write_text(json.dumps({"passed": passed, "summary": f"gate: {'PASS' if passed else 'FAIL'} (1 failed)",
                                                    "checks": []}))
    ctx = RunContext(cfg=None, config_path=tmp_path / "c.yaml", run_dir=tmp_path, manifest=None, outcomes=outcomes)
    monkeypatch.setattr("edgekd.pipeline.run_from_file", lambda *a, **k: ctx)
    (tmp_path / "c.yaml").write_text("name: x\n")
    return CliRunner().invoke(cli.main, ["run", str(tmp_path / "c.yaml"), "--only", "bench", "--force"])


def test_run_without_the_gate_stage_reports_no_verdict(monkeypatch, tmp_path):
    result = _run_with(monkeypatch, tmp_path, {"bench": "ran"}, passed=False)  # gate.json from an earlier, failed run
    assert result.exit_code == 0, result.output
    assert "gate: not run (use --only gate or a full run)" in result.output and "FAIL" not in result.output
    assert "x86-cpu/int8" in result.output  # the fresh bench table is still shown


def test_run_with_the_gate_stage_exits_1_on_its_failure(monkeypatch, tmp_path):
    result = _run_with(monkeypatch, tmp_path, {"bench": "ran", "gate": "ran"}, passed=False)
    assert result.exit_code == 1 and "gate: FAIL (1 failed)" in result.output
