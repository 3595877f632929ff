"""Stage 7: apply the release gate to each target's shipped artifact; put the verdicts in the reports."""
from __future__ import annotations

from edgekd.core.errors import ConfigError, StageError
from edgekd.core.fileio import read_json, write_json_atomic
from edgekd.device.ci_outputs import write_ci_outputs
from edgekd.device.gate import gate_report, verdicts
from edgekd.device.report.build import write_reports
from edgekd.device.report.schema import check_report
from edgekd.pipeline.stage import Stage, StageOutput


class GateStage(Stage):
    """Stage 7: the release gate on each target's shipped artifact; verdicts into the reports."""

    name = "gate"
    sections = ("gate",)

    @classmethod
    def check(cls, config, base_dir) -> None:
        """gate.reference names a row this run's report will have: checked before anything trains."""
        from edgekd.pipeline.task import task_for

        rows = task_for(config).report_rows(config, base_dir)
        if config.gate.reference not in rows:
            raise ConfigError(f"gate.reference '{config.gate.reference}': not a row of this run's report; "
                              f"use one of: {', '.join(rows)}")

    def run(self) -> StageOutput:
        ctx = self.ctx
        report_path = ctx.layout.report_json
        if not report_path.exists() and (ctx.run_dir / "lm-report.json").exists():  # a language model's, from before
            raise StageError(f"{ctx.run_dir / 'lm-report.json'}: written by an older edgekd's bench stage; gate it with edgekd "
                             "gate, or run the last stages again: edgekd run CONFIG --out RUN --force --only compile --only "
                             "bench --only gate")
        report = check_report(read_json(report_path), report_path)  # report.json may have been edited since bench wrote it
        checks = gate_report(report, ctx.cfg.gate)
        verdict = {"passed": checks.passed, "summary": checks.summary, "checks": [c.__dict__ for c in checks]}
        outputs = [write_json_atomic(ctx.layout.gate_json, verdict)]
        junit, summary = ctx.layout.gate_junit, ctx.layout.gate_summary
        write_ci_outputs(checks, ctx.cfg.name, junit, summary)
        # report.md / report.html were written before the gate ran: redo them with the PASS/FAIL column filled.
        outputs += write_reports(ctx.run_dir, report, verdicts(checks))[1:] + [junit, summary]
        return StageOutput(outputs, verdict, inputs=[report_path])
