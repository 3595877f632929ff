"""Stage 6: measure every candidate of every target on the test evaluation subset, interleaved."""
from __future__ import annotations

import resource
import time
from typing import Any

import numpy as np
import torch

from ..bench.accuracy import accuracy_metrics, fidelity, predict
from ..bench.latency import measure_interleaved
from ..bench.report import REPORT_SCHEMA, write_reports
from ..data.datasets import split_hash
from ..distill.losses import ensemble_soft_targets
from ..distill.trainer import predict_logits
from ..environment import describe
from ..targets import get_backend, load_profile
from ..targets.base import Artifact
from .compile import eval_subset, latency_spec
from .context import RunContext, StageOutput
from .distill import build_student
from .teachers import build_teachers


def references(ctx: RunContext, x: np.ndarray, y: np.ndarray) -> tuple[dict[str, Any], np.ndarray]:
    student_logits = predict_logits(build_student(ctx), x)
    refs = {"student_fp32": accuracy_metrics(student_logits, y)}
    if ctx.cfg.teachers:
        teacher_logits = [torch.from_numpy(predict_logits(t, x)) for t in build_teachers(ctx)]
        ensemble = ensemble_soft_targets(teacher_logits, 1.0, [t.weight for t in ctx.cfg.teachers], ctx.cfg.distill.ensemble)
        refs["teacher"] = accuracy_metrics(ensemble.numpy(), y)
    return refs, student_logits


def run(ctx: RunContext) -> StageOutput:
    x, y = eval_subset(ctx)
    refs, student_logits = references(ctx, x, y)
    rows, runners = [], {}
    for target, info in ctx.manifest.metrics("compile")["targets"].items():
        profile = load_profile(target, ctx.base_dir)
        backend = get_backend(info["backend"])
        for candidate in info["candidates"]:
            artifact = Artifact.from_json(candidate["artifact"], ctx.run_dir / candidate["path"])
            row = {"artifact": f"{target}/{artifact.precision}", "target": target, "backend": artifact.backend,
                   "precision": artifact.precision, "shipped": candidate["verdict"].startswith("chosen"),
                   "verdict": candidate["verdict"], "bytes": sum((artifact.root / f).stat().st_size for f in artifact.files
                                                                  if f.endswith((".onnx", ".xml", ".bin", ".engine", ".ort")))}
            if backend.available() and not artifact.rebuild_on_device:
                started = time.perf_counter()
                session = backend.session(artifact, ctx.cfg.bench.threads or profile.threads)
                row["session_create_ms"] = (time.perf_counter() - started) * 1000
                logits = predict(session.run, x)
                row.update(accuracy_metrics(logits, y), fidelity=fidelity(logits, student_logits))
                if profile.latency_measurable_off_device:
                    runners[row["artifact"]] = session.run
            rows.append(row)
    _measure_latency(ctx, rows, runners, x)
    report = {"schema": REPORT_SCHEMA, "run": ctx.cfg.name, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "environment": describe(), "eval_set": {"samples": len(y), "sha256": split_hash(x, y)},
              "references": refs, "gate": ctx.cfg.gate.model_dump(), "rows": rows,
              "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    outputs = write_reports(ctx.run_dir, report)
    return StageOutput(outputs, {"rows": len(rows), "eval_set_sha256": report["eval_set"]["sha256"]})


def _measure_latency(ctx: RunContext, rows: list[dict], runners: dict, x: np.ndarray) -> None:
    if not runners:
        return
    spec = latency_spec(ctx)
    batches = sorted({1, ctx.cfg.bench.batch_size})
    for size in batches:
        batch = np.ascontiguousarray(np.resize(x, (size, *x.shape[1:])))
        stats = measure_interleaved(runners, batch, spec, desc=f"latency batch {size}")
        for row in rows:
            if row["artifact"] in stats:
                row.setdefault("latency", {})[f"batch{size}"] = stats[row["artifact"]].to_json()
                if size == 1:
                    row["p50_ms"] = stats[row["artifact"]].p50_ms
