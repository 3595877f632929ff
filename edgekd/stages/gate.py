"""Stage 7: apply the release gate to each target's shipped artifact."""
from __future__ import annotations

from ..fileio import read_json, write_json_atomic
from ..gate import Thresholds, evaluate_report
from .context import RunContext, StageOutput


def thresholds_from_config(gate_cfg) -> Thresholds:
    return Thresholds(gate_cfg.reference, gate_cfg.max_drop, gate_cfg.drop_type, gate_cfg.min_speedup, gate_cfg.max_size_kb)


def run(ctx: RunContext) -> StageOutput:
    report_path = ctx.run_dir / "report.json"
    checks = evaluate_report(read_json(report_path), thresholds_from_config(ctx.cfg.gate))
    verdict = {"passed": all(c.passed for c in checks), "checks": [c.__dict__ for c in checks]}
    out = write_json_atomic(ctx.run_dir / "gate.json", verdict)
    return StageOutput([out], verdict, inputs=[report_path])
