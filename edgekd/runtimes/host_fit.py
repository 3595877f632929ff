"""Does this machine resemble the device a profile describes? Warnings when it does not.

A profile ranks candidates by latency measured on the build machine. That ranking means something only
when this machine has what the device has: its architecture, the instruction sets int8 and bf16 kernels
use (VNNI, AMX, native bf16) and at least the threads the profile runs. Each mismatch is one sentence,
shown in the terminal, report.md/html and report.json (`host_warnings`). Lean: no torch, no runtime.
"""
from __future__ import annotations

from typing import Any

from edgekd.core.environment import cpu_info

# /proc/cpuinfo flags that provide each feature a profile can name (x86 and ARM spellings).
FEATURE_FLAGS = {
    "vnni": ("avx512_vnni", "avx_vnni", "amx_int8"),
    "amx": ("amx_tile", "amx_int8", "amx_bf16"),
    "bf16": ("avx512_bf16", "amx_bf16", "bf16"),
    "dotprod": ("asimddp",),
    "i8mm": ("i8mm",),
}
_ARCH_ALIASES = {"amd64": "x86_64", "x86_64": "x86_64", "arm64": "aarch64", "aarch64": "aarch64"}


def host_warnings(profile: dict[str, Any], cpu: dict[str, Any] | None = None) -> list[str]:
    """One sentence per way this machine differs from the CPU device `profile` (a TargetProfile dump) describes."""
    if profile.get("device", "cpu") != "cpu":
        return []
    cpu = cpu or cpu_info()
    name, flags = profile.get("name", "?"), set(cpu.get("flags", []))
    out = []
    host_arch = _ARCH_ALIASES.get(str(cpu.get("arch", "")).lower(), cpu.get("arch"))
    want_arch = profile.get("arch", "any")
    if want_arch not in ("any", host_arch):
        timed = "" if not profile.get("latency_measurable_off_device", True) else "; its latency measured here is not the device's"
        out.append(f"{name}: the profile is for {want_arch} CPUs and this machine is {host_arch}: accuracy holds, "
                   f"speed does not transfer{timed}; run edgekd bench on the device")
        return out  # feature and core checks compare unlike CPUs
    missing = [f for f in profile.get("cpu_features", []) if not flags & set(FEATURE_FLAGS.get(f, ()))]
    if "bf16" in profile.get("precisions", []) and "bf16" not in missing and not flags & set(FEATURE_FLAGS["bf16"]):
        missing.append("bf16")
    for feature in missing:
        out.append(f"{name}: this CPU has no {feature.upper()} ({' / '.join(FEATURE_FLAGS[feature])}), which the device's "
                   f"{_uses(feature)} use: timings here do not rank candidates as the device would")
    extra = [f for f in profile.get("cpu_lacks", []) if flags & set(FEATURE_FLAGS.get(f, ()))]
    if extra:
        out.append(f"{name}: this CPU has {' and '.join(f.upper() for f in extra)}, which the device lacks: "
                   f"{' and '.join(_uses(f) for f in extra)} run faster here than there, so a choice of int8 for speed "
                   "may not hold on the device")
    threads, cores = profile.get("threads"), cpu.get("cores")
    if threads and cores and threads > cores:
        asked = "--threads asks for" if profile.get("threads_from") == "--threads" else "the profile runs"
        out.append(f"{name}: {asked} {threads} threads and this machine has {cores} cores: latency here is slower and "
                   f"noisier than with {cores} threads or fewer")
    return out


def timings_transfer(profile, cpu: dict[str, Any] | None = None) -> bool:
    """Whether latency measured on this machine says something about the device `profile` (a TargetProfile) describes:
    the profile does not deny it (latency_measurable_off_device) and the device is this machine's architecture (an
    aarch64 board's int8 choice made on x86 timings would rank candidates by another CPU)."""
    if not profile.latency_measurable_off_device:
        return False
    cpu = cpu or cpu_info()
    return profile.device != "cpu" or profile.arch in ("any", _ARCH_ALIASES.get(str(cpu.get("arch", "")).lower(), cpu.get("arch")))


def _uses(feature: str) -> str:
    return {"vnni": "int8 kernels", "amx": "int8/bf16 matrix kernels", "bf16": "bf16 kernels"}.get(feature, f"{feature} kernels")
