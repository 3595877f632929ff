"""Stage 6: measure every candidate of every target on the test evaluation subset, interleaved.

Writes report.json, report.md and report.html (edgekd.bench.report) with the same measurement
code `edgekd bench BUNDLE` runs on a device (edgekd.bench.measure).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..bench.accuracy import accuracy_metrics, eval_set_hash
from ..bench.measure import Candidate, artifact_name, measure_rows
from ..bench.report import build_report, write_reports
from ..targets import load_profile
from ..targets.base import Artifact
from .compile import eval_subset, latency_spec
from .context import RunContext, StageOutput
from .export import student_logits as fp32_student_logits


def references(ctx: RunContext, x: np.ndarray, y: np.ndarray) -> tuple[dict[str, Any], np.ndarray]:
    student_logits = fp32_student_logits(ctx, x)
    refs = {"student_fp32": accuracy_metrics(student_logits, y)}
    if ctx.cfg.teachers:  # teachers are PyTorch models: torch only here
        import torch

        from ..distill.losses import ensemble_soft_targets
        from ..distill.trainer import predict_logits
        from .teachers import build_teachers

        teacher_logits = [torch.from_numpy(predict_logits(t, x)) for t in build_teachers(ctx)]
        ensemble = ensemble_soft_targets(teacher_logits, 1.0, [t.weight for t in ctx.cfg.teachers], ctx.cfg.distill.ensemble)
        refs["teacher"] = accuracy_metrics(ensemble.numpy(), y)
    return refs, student_logits


def candidates(ctx: RunContext) -> list[Candidate]:
    out = []
    for target, info in ctx.manifest.metrics("compile")["targets"].items():
        profile = load_profile(target, ctx.base_dir)
        for candidate in info["candidates"]:
            artifact = Artifact.from_json(candidate["artifact"], ctx.run_dir / candidate["path"])
            out.append(Candidate(artifact_name(target, candidate["name"]), target, artifact, ctx.cfg.bench.threads or profile.threads,
                                 shipped=candidate["verdict"].startswith("chosen"), verdict=candidate["verdict"],
                                 time_latency=profile.latency_measurable_off_device))
    return out


def run(ctx: RunContext) -> StageOutput:
    x, y = eval_subset(ctx)
    refs, student_logits = references(ctx, x, y)
    bench_cfg = ctx.cfg.bench
    batch_sizes = (1, bench_cfg.batch_size)
    rows = measure_rows(candidates(ctx), x, y, student_logits, latency_spec(ctx), batch_sizes, memory=bench_cfg.memory)
    report = build_report(ctx.cfg.name, rows, refs, {"samples": len(y), "sha256": eval_set_hash(x, y)},
                          ctx.cfg.gate.model_dump(), latency_spec(ctx), batch_sizes, bench_cfg.memory)
    # Only report.json is this stage's recorded output: the gate stage rewrites report.md and report.html
    # with its verdicts, and that must not make this stage look stale on --resume.
    outputs = write_reports(ctx.run_dir, report)[:1]
    return StageOutput(outputs, {"rows": len(rows), "eval_set_sha256": report["eval_set"]["sha256"],
                                 "warnings": len(report["warnings"])})
