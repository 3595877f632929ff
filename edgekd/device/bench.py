"""`edgekd bench BUNDLE` on the device: verify, then measure with numpy and the bundle's runtime only.

The bundle carries eval.npz (x, y and the fp32 student's logits from the build machine), so accuracy,
the drop against the fp32 student and fidelity are measured on the device, with the same code and the
same report schema as the pipeline's bench stage.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgekd.core.errors import ArtifactError, TargetError
from edgekd.core.fileio import read_npz
from edgekd.core.metrics import accuracy_metrics, eval_set_hash
from edgekd.device.bundle import load_bundle, shipped_variant
from edgekd.device.gate import Thresholds
from edgekd.device.latency import LatencySpec
from edgekd.device.measure import Candidate, artifact_name, measure_rows
from edgekd.device.report.build import build_report
from edgekd.runtimes.host_fit import host_warnings
from edgekd.runtimes.registry import get_backend


def bundle_paths(path: Path) -> list[Path]:
    """A bundle folder, or every bundle of a run folder (runs/<name>/bundle/<target>)."""
    path = Path(path)
    if (path / "manifest.json").is_file() and not (path / "bundle").is_dir():
        return [path]
    bundles = sorted(p.parent for p in (path / "bundle").glob("*/manifest.json"))
    if not bundles:
        raise ArtifactError(f"{path}: no bundle here; give a bundle folder or a run folder with bundle/<target>/")
    return bundles


def _load_eval(bundle_dir: Path, manifest: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    path = bundle_dir / "eval.npz"
    data = read_npz(path, "rebuild the bundle", ArtifactError)
    missing = [k for k in ("x", "y", "reference_logits") if k not in data]
    if missing:
        raise ArtifactError(f"{path}: no array {', '.join(missing)}; rebuild the bundle")
    x, y, logits = data["x"], data["y"], data["reference_logits"]
    _check_eval_arrays(path, x, y, logits, manifest)
    return x, y, logits


def _check_eval_arrays(path: Path, x: np.ndarray, y: np.ndarray, logits: np.ndarray, manifest: dict[str, Any]) -> None:
    """Shapes that fit each other and the model the manifest describes: a mismatch is bad input, not a crash."""
    shape = (manifest.get("input") or {}).get("shape") if isinstance(manifest.get("input"), dict) else None
    expected = tuple(shape[1:]) if isinstance(shape, list) and all(isinstance(d, int) for d in shape[1:]) else None
    problem = None
    if x.ndim != 4 or not np.issubdtype(x.dtype, np.floating):
        problem = f"images 'x' must be a float (N, C, H, W) array, got {x.dtype} {x.shape}"
    elif expected and tuple(x.shape[1:]) != expected:
        problem = f"images 'x' are {tuple(x.shape[1:])}, the model takes {expected}"
    elif y.ndim != 1 or not np.issubdtype(y.dtype, np.integer) or len(y) != len(x):
        problem = f"labels 'y' must be {len(x)} integers, one per image, got {y.dtype} {y.shape}"
    elif logits.ndim != 2 or len(logits) != len(x):
        problem = f"'reference_logits' must be ({len(x)}, classes), got {logits.shape}"
    if problem:
        raise ArtifactError(f"{path}: {problem}; rebuild the bundle")


def _gate_section(manifest: dict[str, Any]) -> dict[str, Any]:
    """The thresholds the pipeline's gate applied (recorded in the bundle), so a gate on the device
    judges by the same limits. Bundles from before that record: the profile's thresholds where set,
    edgekd's defaults otherwise."""
    gate = Thresholds().__dict__
    recorded = manifest.get("gate")
    if isinstance(recorded, dict):
        gate.update({k: v for k, v in recorded.items() if k in gate})
        return gate
    profile_gate = manifest.get("profile", {}).get("gate", {}) or {}
    gate.update({k: v for k, v in profile_gate.items() if k in gate and v is not None})
    return gate


def _require_a_runtime(loaded: list) -> None:
    """Benching a bundle that cannot run here is an error with the install hint, not an empty report."""
    backends = [(bundle_dir, get_backend(artifact.backend)) for bundle_dir, _m, artifact, *_ in loaded]
    if not any(backend.available() for _, backend in backends):
        bundle_dir, backend = backends[0]
        raise TargetError(f"{bundle_dir}: cannot run this {backend.name} bundle here; {backend.unavailable_reason()}")


def bench_bundles(path: Path, spec: LatencySpec, threads: int | None = None, batch_sizes: Sequence[int] = (1,),
                  memory: bool = True) -> dict[str, Any]:
    """One report (schema edgekd.report/1) for the bundle, or all bundles of a run folder, on this machine."""
    loaded = []
    for bundle_dir in bundle_paths(path):
        manifest, artifact = load_bundle(bundle_dir)  # sha256 of every file checked before anything is loaded
        loaded.append((bundle_dir, manifest, artifact, *_load_eval(bundle_dir, manifest)))
    _require_a_runtime(loaded)
    _, first_manifest, _, x, y, reference = loaded[0]
    digest = eval_set_hash(x, y)
    for bundle_dir, *_rest, bx, by, _ref in loaded[1:]:
        if eval_set_hash(bx, by) != digest:
            raise ArtifactError(f"{bundle_dir}/eval.npz: a different evaluation set than {loaded[0][0]}; bench them separately")
    candidates = [Candidate(artifact_name(m.get("target", d.name), shipped_variant(m, a.precision)), m.get("target", d.name), a, threads,
                            verdict="bundle") for d, m, a, *_ in loaded]
    rows = measure_rows(candidates, x, y, reference, spec, batch_sizes, memory=memory)
    for row, (bundle_dir, *_rest) in zip(rows, loaded, strict=True):
        row["bundle"] = str(bundle_dir)
    references = {"student_fp32": {**accuracy_metrics(reference, y), "source": "bundle eval.npz reference_logits"}}
    run_name = first_manifest.get("run") or Path(path).resolve().name
    notes = [w for _d, m, *_ in loaded for w in host_warnings(m.get("profile") or {})]
    return build_report(run_name, rows, references, {"samples": len(y), "sha256": digest},
                        _gate_section(first_manifest), spec, batch_sizes, memory, host_warnings=notes)
