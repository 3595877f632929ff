"""Stage 7: apply the release gate to each target's shipped artifact; put the verdicts in the reports."""
from __future__ import annotations

from edgekd.core.fileio import read_json, write_json_atomic
from edgekd.device.ci_outputs import write_ci_outputs
from edgekd.device.gate import Thresholds, gate_report, verdicts
from edgekd.device.report.build import write_reports
from edgekd.device.report.schema import check_report
from edgekd.pipeline.context import RunContext, StageOutput


def thresholds_from_config(gate_cfg) -> Thresholds:
    return Thresholds(gate_cfg.reference, gate_cfg.max_drop, gate_cfg.drop_type, gate_cfg.min_speedup, gate_cfg.max_size_kb,
                      gate_cfg.allow_empty)


def run(ctx: RunContext) -> StageOutput:
    report_path = ctx.run_dir / "report.json"
    report = check_report(read_json(report_path), report_path)  # report.json may have been edited since bench wrote it
    checks = gate_report(report, thresholds_from_config(ctx.cfg.gate))
    verdict = {"passed": checks.passed, "summary": checks.summary, "checks": [c.__dict__ for c in checks]}
    outputs = [write_json_atomic(ctx.run_dir / "gate.json", verdict)]
    junit, summary = ctx.run_dir / "gate-junit.xml", ctx.run_dir / "gate-summary.md"
    write_ci_outputs(checks, ctx.cfg.name, junit, summary)
    # report.md / report.html were written before the gate ran: redo them with the PASS/FAIL column filled.
    outputs += write_reports(ctx.run_dir, report, verdicts(checks))[1:] + [junit, summary]
    return StageOutput(outputs, verdict, inputs=[report_path])
