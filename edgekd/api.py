"""The Python API; the CLI is a thin shell over these functions.

    from edgekd import api
    ctx = api.run("configs/quickstart.yaml")
    verdict = api.gate("runs/quickstart/report.json", max_drop=1.0)
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import ArtifactError
from .gate import Check, Thresholds, evaluate_report
from .quant.api import Int8Config, quantize  # noqa: F401  (re-exported: edgekd.api.quantize)


def run(config: str | Path, out: str | Path | None = None, resume: bool = False, force: bool = False,
        only: Sequence[str] | None = None, log=print):
    """Run the pipeline from a YAML file; returns the RunContext (run_dir, manifest, config)."""
    from .pipeline import run_from_file

    return run_from_file(config, str(out) if out else None, resume=resume, force=force, only=only, log=log)


def bench(path: str | Path, threads: int | None = None, runs: int = 50, min_seconds: float = 0.5,
          batch_sizes: Sequence[int] = (1,), warmup_runs: int = 10, warmup_seconds: float = 0.2, rounds: int = 5,
          memory: bool = True) -> dict[str, Any]:
    """Benchmark one bundle, or every bundle of a run folder, on this machine; returns a report
    (schema edgekd.report/1, the same as the pipeline's). Needs no torch."""
    from .bench.device import bench_bundles
    from .bench.latency import LatencySpec

    spec = LatencySpec(warmup_runs=warmup_runs, warmup_seconds=warmup_seconds, runs=runs, min_seconds=min_seconds, rounds=rounds)
    return bench_bundles(Path(path), spec, threads, tuple(batch_sizes), memory)


def gate(report: str | Path, thresholds: Thresholds | None = None, baseline: str | Path | None = None,
         **overrides) -> list[Check]:
    """Check a report.json against thresholds (the report's own gate section unless given).

    baseline: another report.json to take the reference accuracy from (refused unless both were
    measured on the same evaluation set).
    """
    data = _read_report(report)
    if thresholds is None:
        saved = data.get("gate", {})
        thresholds = Thresholds(**{k: saved[k] for k in Thresholds.__dataclass_fields__ if k in saved})
    for key, value in overrides.items():
        if value is not None:
            setattr(thresholds, key, value)
    other = _read_report(baseline) if baseline else None
    try:
        return evaluate_report(data, thresholds, other)
    except ArtifactError as exc:
        raise ArtifactError(f"{report}" + (f" (--baseline {baseline})" if baseline else "") + f": {exc}") from None
    except (KeyError, TypeError, AttributeError) as exc:  # a report edited by hand or cut short
        raise ArtifactError(f"{report}: malformed report ({type(exc).__name__}: {exc}); regenerate it with edgekd bench") from None


def _read_report(path: str | Path) -> dict[str, Any]:
    from .bench.report import REPORT_SCHEMA
    from .fileio import read_json

    data = read_json(path)
    schema = data.get("schema") if isinstance(data, dict) else None
    if schema != REPORT_SCHEMA:
        raise ArtifactError(f"{path}: not an edgekd report (schema {schema!r}, expected {REPORT_SCHEMA!r}); "
                            "give the report.json written by edgekd run or edgekd bench")
    return data


def compare(report_a: str | Path, report_b: str | Path) -> dict[str, Any]:
    """The same artifacts in two reports (two machines or two versions) side by side, with ratios."""
    from .bench.compare import compare_reports

    a, b = _read_report(report_a), _read_report(report_b)
    try:
        return compare_reports(a, b)
    except (KeyError, TypeError, AttributeError) as exc:  # a report edited by hand or cut short
        raise ArtifactError(f"{report_a} or {report_b}: malformed report ({type(exc).__name__}: {exc}); "
                            "regenerate it with edgekd bench") from None


def compile(bundle: str | Path, target: str | None = None) -> dict[str, Any]:
    """(Re)build a bundle's model on this machine (the TensorRT engine on the device, the .ort file)
    and update its manifest; `target` (a profile name or .yaml path) re-derives the build settings."""
    from .bench.bundle import rebuild_bundle
    from .targets import load_profile

    profile = load_profile(target) if target else None
    return rebuild_bundle(Path(bundle), profile)


def targets() -> list:
    """The built-in device profiles."""
    from .targets import list_profiles

    return list_profiles()
