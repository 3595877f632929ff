"""Every candidate a run compiled for a target, as a bundle of its own (the run ships only the chosen one).

Used by benchmarks/arm64_emulated.py and benchmarks/tensorrt_check.py, which measure each candidate (fp32,
fp16, int8) on the device: the shipped bundle is copied as the run wrote it; the others are written by
edgekd's own bundle writer (sha256 of every file) with the shipped bundle's eval set and build record.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from edgekd.core.fileio import read_json
from edgekd.device.bundle import load_bundle, write_bundle
from edgekd.runtimes.base import Artifact


def stage_candidate_bundles(run_dir: Path, target: str, dest: Path) -> dict[str, str]:
    """dest/bundle/<candidate> for every candidate of `target` in run_dir; returns {candidate: how it was made}."""
    shipped_dir = run_dir / "bundle" / target
    shipped, _ = load_bundle(shipped_dir)  # the run's bundle is checked before anything is copied from it
    stages = read_json(run_dir / "manifest.json")["stages"]
    compiled = stages["compile"]["metrics"]["targets"][target]
    with np.load(shipped_dir / "eval.npz", allow_pickle=False) as data:
        x, y, reference = data["x"], data["y"], data["reference_logits"]
    staged = {}
    for row in compiled["candidates"]:
        out = dest / "bundle" / row["name"]
        if row["name"] == compiled["chosen"]:
            shutil.copytree(shipped_dir, out)
            staged[row["name"]] = "shipped bundle"
            continue
        info = {k: v for k, v in shipped.items() if k not in ("schema", "artifact", "files", "eval_set_sha256")}
        info["quantization"] = _quantization(stages, shipped, row) if row["precision"] == "int8" else None
        info["build_machine_metrics"] = {k: row.get(k) for k in ("val_top1", "val_drop", "p50_ms")}
        write_bundle(out, Artifact.from_json(row["artifact"], run_dir / row["path"]), x, y, reference, info)
        staged[row["name"]] = f"{row['path']} bundled by edgekd.device.bundle.write_bundle"
    return staged


def _quantization(stages: dict, shipped: dict, row: dict) -> dict:
    quantize = stages["quantize"]["metrics"]
    recipe_name = shipped["profile"]["quantization"]["name"]
    return {"recipe": quantize["recipes"].get(recipe_name), "variant": row["name"], "calibration": quantize.get("calibration")}
