"""An int8 model's validation accuracy on each target's own runtime, measured in the quantize stage, before the
fallback decision is final (issue 32 item 13).

The fallback search (quant/fallback.py) measures with onnxruntime. A target that runs another runtime (OpenVINO
for intel-cpu) can lose more: efficientnet_b0's int8 dropped 0.0 points under onnxruntime, so no node was kept in
float, and 0.83 under OpenVINO, so the compile stage then refused int8 for intel-cpu. Here each such target builds
the int8 model as the compile stage will and scores it on the validation split; when its drop breaks the budget,
more nodes are kept in float, in the search's own sensitivity order, until every target's runtime meets it.
(quant/fallback.py's search scores with onnxruntime only; this loop reuses its ranking and quantizer and scores
on the targets' runtimes, rather than teaching that module about every runtime.)
"""
from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgekd.core.errors import ArtifactError
from edgekd.core.metrics import accuracy_drop, predict, within_limit
from edgekd.pipeline.target_runtime import run_profile
from edgekd.runtimes import get_backend

# The runtime the fallback search measures with: targets on it need no second measurement.
SEARCH_RUNTIME = "onnxruntime"


def own_runtime_targets(ctx, recipe_name: str) -> list:
    """Profiles of the configured targets using this int8 recipe that run another runtime, buildable and runnable here."""
    out = []
    for name in ctx.cfg.targets:
        profile = run_profile(ctx, name)
        backend = get_backend(profile.backend)
        if (profile.quantization and profile.quantization.name == recipe_name and "int8" in profile.precisions
                and backend.runtime_module != SEARCH_RUNTIME and backend.available()):
            out.append(profile)
    return out


def runtime_drops(ctx, profiles: list, int8_onnx: Path, fp32_val_top1: float, input_spec: dict | None, val) -> dict[str, Any]:
    """Per target: {runtime, split, val_top1, val_drop} of `int8_onnx` built for it on `val` (the search's part of the
    validation split), against the fp32 model's top-1 there (the same drop the compile stage's selection reads)."""
    out = {}
    for profile in profiles:
        backend = get_backend(profile.backend)
        with tempfile.TemporaryDirectory(prefix="edgekd-target-int8-") as scratch:
            try:
                artifact = backend.compile(int8_onnx, "int8", profile, Path(scratch) / "int8", input_spec=input_spec)
            except ArtifactError:  # this runtime cannot take the int8 model: the compile stage says so and ships float
                continue
            if artifact.rebuild_on_device:
                continue
            top1 = ctx.task.score(predict(backend.session(artifact, ctx.cfg.bench.threads or profile.threads).run, val.x), val.y)
        drop = accuracy_drop(fp32_val_top1, top1, ctx.cfg.gate.drop_type, len(val.y))
        out[profile.name] = {"runtime": profile.backend, "split": "validation", "samples": len(val.y), "val_top1": top1,
                             "val_drop": drop}
    return out


def within_budget(drops: dict[str, Any], max_drop: float) -> bool:
    return all(within_limit(d["val_drop"], max_drop) for d in drops.values())


def first_passing(ranked: list[str], start: int, max_nodes: int, measure: Callable[[list[str]], tuple[bool, Any]]):
    """(nodes kept in float, what `measure` returned) for the fewest of the `ranked` nodes, more than `start` and at
    most `max_nodes`, whose model `measure` passes; None when none does."""
    for count in range(start + 1, min(max_nodes, len(ranked)) + 1):
        passed, result = measure(ranked[:count])
        if passed:
            return ranked[:count], result
    return None
