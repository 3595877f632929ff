"""Stage 7: apply the release gate to each target's shipped artifact; put the verdicts in the reports."""
from __future__ import annotations

from edgekd.core.errors import ConfigError, StageError
from edgekd.core.fileio import read_json, write_json_atomic
from edgekd.device.ci_outputs import write_ci_outputs
from edgekd.device.gate import failed_reasons, gate_report, verdicts
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
        unmeasured = _not_measured_here(config, base_dir)
        usable = [row for row in rows if row.partition("/")[0] not in unmeasured]
        reference = config.gate.reference
        if reference in rows and reference not in usable:
            target = reference.partition("/")[0]
            raise ConfigError(f"gate.reference '{reference}': target {target}'s models are not measured on this machine "
                              f"({unmeasured[target]}), so the row has no {task_for(config).metric} to compare with; use "
                              f"one of: {', '.join(usable)}")
        if reference not in rows:
            raise ConfigError(f"gate.reference '{reference}': not a row of this run's report; use one of: {', '.join(usable)}")

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
        outputs += write_reports(ctx.run_dir, report, verdicts(checks), failed_reasons(checks))[1:] + [junit, summary]
        return StageOutput(outputs, verdict, inputs=[report_path])


def _not_measured_here(config, base_dir) -> dict[str, str]:
    """The targets whose runtime cannot run here (TensorRT on a workstation), with why: their report rows carry no
    accuracy, so none can be the gate's reference."""
    from edgekd.core.errors import EdgeKDError
    from edgekd.runtimes import get_backend, load_profile

    out = {}
    for name in config.targets:
        try:
            profile = load_profile(name, base_dir)
        except EdgeKDError:
            continue  # the compile stage's check names the target at fault
        backend = get_backend(profile.backend)
        if not backend.available():
            out[profile.name] = backend.unavailable_reason()
    return out
