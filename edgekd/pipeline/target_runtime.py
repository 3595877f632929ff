"""The profile a target builds with in this run: its own, or, when its runtime cannot read or convert the run's fp32
model at all, the runtime, precisions and int8 recipe of its profile's `fallback` target, under its own name.

Issue 34: OpenVINO 2025-2026 cannot convert Silero VAD (a Conv whose input rank a nested If leaves unknown), so
intel-cpu shipped nothing, while onnxruntime runs the file. intel-cpu's profile names x86-cpu as its fallback: its
candidates are then x86-cpu's, chosen and gated the same way. Only a conversion refusal (Backend.conversion_refusal)
triggers it, never a slower or less accurate result; it is said in one line and recorded in the bundle's manifest
(runtime_fallback), the compile record and the report's rows.
"""
from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edgekd.core.errors import TargetError
from edgekd.runtimes import get_backend, load_profile
from edgekd.runtimes.profiles import on_fallback

# How users know the runtimes (Backend.runtime_module is their import name).
RUNTIME_TITLES = {"openvino": "OpenVINO", "onnxruntime": "onnxruntime", "tensorrt": "TensorRT"}


@dataclass(frozen=True)
class RuntimeFallback:
    """Why `target` ships on `backend` (its fallback `profile`'s) instead of its own `refused_backend`."""

    target: str
    refused_backend: str
    backend: str
    profile: str
    reason: str
    given_as: str  # the profile's fallback key as written (a target name or a profile path): what loads it again

    def line(self) -> str:
        refused, used = (_title(b) for b in (self.refused_backend, self.backend))
        return (f"{self.target}: {refused} cannot convert this model ({self.reason}); shipping {used} instead "
                f"(the {self.profile} target's candidates)")

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "line": self.line()}


def _title(backend: str) -> str:
    runtime = get_backend(backend).runtime_module
    return RUNTIME_TITLES.get(runtime, runtime)


def resolve(profile, onnx_path: Path, base_dir: Path | None = None):
    """(the profile to build `onnx_path` with, the RuntimeFallback or None). `profile` as it is when its runtime takes
    the file, when it names no fallback, or when the file does not exist yet (before the export stage)."""
    if not profile.fallback or not Path(onnx_path).is_file():
        return profile, None
    reason = get_backend(profile.backend).conversion_refusal(Path(onnx_path))
    if reason is None:
        return profile, None
    fallback = load_profile(profile.fallback, base_dir)
    if fallback.fallback or fallback.backend == profile.backend:
        raise TargetError(f"{profile.source}: fallback '{profile.fallback}' must name a target on another runtime "
                          "with no fallback of its own; fix the profile's fallback key")
    note = RuntimeFallback(profile.name, profile.backend, fallback.backend, fallback.name, reason, profile.fallback)
    return on_fallback(profile, fallback, note.line()), note


def run_profile(ctx, name: str):
    """Target `name`'s profile as this run builds it (module docstring); the fallback is said once per target."""
    profile, note = resolve(load_profile(name, ctx.base_dir), ctx.layout.fp32_onnx, ctx.base_dir)
    if note is not None:
        # stacklevel 1, this line: Python's default filter then shows it once, whichever stage asks
        warnings.warn(note.line(), stacklevel=1)
    return profile


def run_fallback(ctx, name: str) -> RuntimeFallback | None:
    """The RuntimeFallback target `name` ships with in this run, or None."""
    return resolve(load_profile(name, ctx.base_dir), ctx.layout.fp32_onnx, ctx.base_dir)[1]


def profile_named(ctx, name: str):
    """The profile a compile record's target `name` (the profile's own name, which bundle/<name> and the report rows
    carry) was built from: the config's target that loads as it, a file given by path included, so that every stage
    after compile reads the user's file (never a built-in profile of the same name, nor an unknown target)."""
    for target in ctx.cfg.targets:
        profile = load_profile(target, ctx.base_dir)
        if profile.name == name:
            return profile
    return load_profile(name, ctx.base_dir)
