"""The Python API; the CLI is a thin shell over these functions.

    from edgekd import api
    ctx = api.run("configs/quickstart.yaml")
    verdict = api.gate("runs/quickstart/report.json", max_drop=1.0)
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

from .gate import Check, Thresholds, evaluate_report


def run(config: str | Path, out: Optional[str | Path] = None, resume: bool = False, force: bool = False,
        only: Optional[Sequence[str]] = None, log=print):
    """Run the pipeline from a YAML file; returns the RunContext (run_dir, manifest, config)."""
    from .pipeline import run_from_file

    return run_from_file(config, str(out) if out else None, resume=resume, force=force, only=only, log=log)


def bench(path: str | Path, threads: Optional[int] = None, runs: int = 50, min_seconds: float = 0.5,
          batch_sizes: Sequence[int] = (1,)) -> list[dict[str, Any]]:
    """Benchmark one bundle, or every bundle of a run folder, on this machine. Needs no torch."""
    from .bench.bundle import bench_bundle
    from .bench.latency import LatencySpec

    spec = LatencySpec(runs=runs, min_seconds=min_seconds)
    return [bench_bundle(b, spec, threads, tuple(batch_sizes)) for b in bundle_paths(Path(path))]


def bundle_paths(path: Path) -> list[Path]:
    from .errors import ArtifactError

    if (path / "manifest.json").is_file() and not (path / "bundle").is_dir():
        return [path]
    bundles = sorted(p.parent for p in (path / "bundle").glob("*/manifest.json"))
    if not bundles:
        raise ArtifactError(f"{path}: no bundle here; give a bundle folder or a run folder with bundle/<target>/")
    return bundles


def gate(report: str | Path, thresholds: Optional[Thresholds] = None, **overrides) -> list[Check]:
    """Check a report.json against thresholds (the report's own gate section unless given)."""
    from .fileio import read_json

    data = read_json(report)
    if thresholds is None:
        saved = data.get("gate", {})
        thresholds = Thresholds(**{k: saved[k] for k in Thresholds.__dataclass_fields__ if k in saved})
    for key, value in overrides.items():
        if value is not None:
            setattr(thresholds, key, value)
    return evaluate_report(data, thresholds)


def targets() -> list:
    """The built-in device profiles."""
    from .targets import list_profiles

    return list_profiles()
