"""What machine and libraries produced a number. Lean: imports runtimes only if already importable."""
from __future__ import annotations

import importlib.metadata
import os
import platform
from functools import lru_cache
from typing import Any

_TRACKED_LIBRARIES = ("edgekd", "numpy", "torch", "torchvision", "onnx", "onnxruntime", "openvino", "tensorrt", "nncf")
_INTERESTING_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8", "avx_vnni",
                      "neon", "asimd", "asimddp", "sve", "i8mm", "bf16")


def library_versions() -> dict[str, str]:
    versions = {}
    for name in _TRACKED_LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


@lru_cache(maxsize=1)
def cpu_info() -> dict[str, Any]:
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "Model", "CPU part") and model in ("", platform.machine()):
                    model = value.strip()
                elif key in ("flags", "Features"):
                    flags.update(value.split())
    except OSError:
        pass
    return {
        "model": model,
        "arch": platform.machine(),
        "cores": os.cpu_count(),
        "flags": sorted(flag for flag in _INTERESTING_FLAGS if flag in flags),
    }


def has_cpu_flag(flag: str) -> bool:
    return flag in cpu_info()["flags"]


def gpu_info() -> dict[str, Any] | None:
    """Name and driver of the first NVIDIA GPU, via nvidia-smi, without importing torch."""
    import shutil
    import subprocess

    if not shutil.which("nvidia-smi"):
        return None
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip().splitlines()
    except (OSError, subprocess.SubprocessError):
        return None
    if not out:
        return None
    name, _, driver = out[0].partition(",")
    return {"name": name.strip(), "driver": driver.strip()}


def describe() -> dict[str, Any]:
    return {
        "cpu": cpu_info(),
        "gpu": gpu_info(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "libraries": library_versions(),
        "thread_env": {k: os.environ[k] for k in _THREAD_VARIABLES if k in os.environ},
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
    }


# Variables that change how many threads the runtimes use, hence the latency they report.
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_WAIT_POLICY", "KMP_AFFINITY",
                     "TBB_NUM_THREADS", "ORT_NUM_THREADS")
