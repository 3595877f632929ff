"""Stage 5: per target, build every candidate the profile allows, measure them on the validation
split, and bundle the fastest one that passes the gate (never one slower than fp32)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..bench.accuracy import predict, topk
from ..bench.bundle import write_bundle
from ..bench.latency import LatencySpec, measure_interleaved
from ..distill.trainer import predict_logits
from ..environment import cpu_info, library_versions
from ..gate import accuracy_drop
from ..targets import get_backend, load_profile
from ..targets.base import Artifact
from .context import RunContext, StageOutput
from .distill import build_student
from .export import fp32_onnx_path
from .quantize import int8_path


def latency_spec(ctx: RunContext) -> LatencySpec:
    b = ctx.cfg.bench
    return LatencySpec(b.warmup_runs, b.warmup_seconds, b.runs, b.min_seconds, b.rounds)


def eval_subset(ctx: RunContext) -> tuple[np.ndarray, np.ndarray]:
    test = ctx.dataset.test
    n = min(ctx.cfg.bench.eval_samples, len(test))
    return test.x[:n], test.y[:n]


def _source_onnx(ctx: RunContext, profile, precision: str) -> Path | None:
    if precision == "int8":
        path = int8_path(ctx, profile.quantization.name)
        return path if path.is_file() else None
    if precision in ("fp16", "bf16") and profile.backend in ("ort", "ort-arm64"):
        return None  # onnxruntime's CPU provider has no fast fp16/bf16 kernels
    return fp32_onnx_path(ctx)


def build_candidates(ctx: RunContext, profile) -> list[Artifact]:
    backend = get_backend(profile.backend)
    input_spec = ctx.manifest.metrics("export")["input"]
    out = []
    for precision in profile.precisions:
        source = _source_onnx(ctx, profile, precision)
        if source is not None:
            folder = ctx.stage_dir("compile") / profile.name / precision
            out.append(backend.compile(source, precision, profile, folder, input_spec=input_spec))
    return out


def _threshold(ctx: RunContext, profile) -> float:
    return profile.gate.max_drop if profile.gate.max_drop is not None else ctx.cfg.gate.max_drop


def evaluate(ctx: RunContext, profile, artifacts: list[Artifact], reference_top1: float) -> list[dict[str, Any]]:
    """Validation accuracy and (where meaningful here) latency of each candidate."""
    backend = get_backend(profile.backend)
    val = ctx.dataset.val
    rows, runners = [], {}
    for artifact in artifacts:
        row: dict[str, Any] = {"precision": artifact.precision, "artifact": artifact.to_json(),
                               "path": str(artifact.root.relative_to(ctx.run_dir))}
        if backend.available() and not artifact.rebuild_on_device:
            session = backend.session(artifact, ctx.cfg.bench.threads or profile.threads)
            row["val_top1"] = topk(predict(session.run, val.x), val.y)
            row["val_drop"] = accuracy_drop(reference_top1, row["val_top1"], ctx.cfg.gate.drop_type)
            if profile.latency_measurable_off_device:
                runners[artifact.precision] = session.run
        rows.append(row)
    if runners:
        stats = measure_interleaved(runners, np.ascontiguousarray(val.x[:1]), latency_spec(ctx), desc=f"{profile.name} candidates")
        for row in rows:
            if row["precision"] in stats:
                row["p50_ms"] = stats[row["precision"]].p50_ms
    return rows


# A candidate must beat fp32 by this margin to replace it: smaller gaps are within timing noise,
# and fp32 is the more accurate choice at equal speed.
MIN_GAIN_OVER_FP32 = 0.03


def choose(rows: list[dict[str, Any]], max_drop: float) -> int:
    """Index of the candidate to ship; fills in why each other one lost."""
    fp32 = next((r for r in rows if r["precision"] == "fp32"), None)
    for row in rows:
        if "val_top1" not in row:
            row["verdict"] = "not measurable here (rebuilt on the device); ranked by profile order"
        elif row["val_drop"] > max_drop:
            row["verdict"] = f"accuracy drop {row['val_drop']:.2f} > max_drop {max_drop}"
        elif fp32 and row is not fp32 and "p50_ms" in row and "p50_ms" in fp32 \
                and row["p50_ms"] > fp32["p50_ms"] * (1 - MIN_GAIN_OVER_FP32):
            row["verdict"] = f"not faster than fp32 by {MIN_GAIN_OVER_FP32:.0%} ({row['p50_ms']:.3f} ms vs {fp32['p50_ms']:.3f} ms)"
        else:
            row["verdict"] = "eligible"
    eligible = [i for i, r in enumerate(rows) if r["verdict"] == "eligible"]
    if eligible and all("p50_ms" in rows[i] for i in eligible):
        best = min(eligible, key=lambda i: rows[i]["p50_ms"])
    elif eligible:
        best = eligible[0]
    else:  # nothing verifiable: fall back to profile order, fp32 preferred
        best = next((i for i, r in enumerate(rows) if r["precision"] == "fp32"), 0)
    for i, row in enumerate(rows):
        if i == best:
            row["verdict"] = "chosen" + ("" if "p50_ms" in row else " (profile order)")
        elif row["verdict"] == "eligible":
            row["verdict"] = f"slower than the chosen {rows[best]['precision']} ({row['p50_ms']:.3f} ms)" if "p50_ms" in row else "lower in profile order"
    return best


def run(ctx: RunContext) -> StageOutput:
    student = build_student(ctx)
    val_reference = topk(predict_logits(student, ctx.dataset.val.x), ctx.dataset.val.y)
    eval_x, eval_y = eval_subset(ctx)
    reference_logits = predict_logits(student, eval_x)
    targets, outputs = {}, []
    for name in ctx.cfg.targets:
        profile = load_profile(name, ctx.base_dir)
        artifacts = build_candidates(ctx, profile)
        rows = evaluate(ctx, profile, artifacts, val_reference)
        best = choose(rows, _threshold(ctx, profile))
        info = _bundle_info(ctx, profile, rows[best])
        bundle = write_bundle(ctx.bundle_dir(profile.name), artifacts[best], eval_x, eval_y, reference_logits, info)
        outputs.append(bundle / "manifest.json")
        targets[profile.name] = {"backend": profile.backend, "chosen": rows[best]["precision"], "candidates": rows,
                                 "bundle": str(bundle.relative_to(ctx.run_dir))}
    return StageOutput(outputs, {"val_reference_top1": val_reference, "targets": targets})


def _bundle_info(ctx: RunContext, profile, row: dict[str, Any]) -> dict[str, Any]:
    data = ctx.dataset
    quant = ctx.manifest.metrics("quantize")
    recipe = quant.get("recipes", {}).get(profile.quantization.name) if row["precision"] == "int8" else None
    return {"target": profile.name, "profile": profile.model_dump(mode="json"), "edgekd_version": __version__,
            "built_on": cpu_info()["model"], "input": ctx.manifest.metrics("export")["input"],
            "output": {"name": "logits", "shape": ["batch", data.num_classes], "dtype": "float32"},
            "preprocessing": data.preprocessing(), "labels": data.classes,
            "quantization": {"recipe": recipe, "calibration": quant.get("calibration")} if recipe else None,
            "library_versions": library_versions(),
            "build_machine_metrics": {k: row.get(k) for k in ("val_top1", "val_drop", "p50_ms")},
            "rebuild_on_device": row["artifact"]["rebuild_on_device"], "dataset_fingerprint": data.fingerprint}
