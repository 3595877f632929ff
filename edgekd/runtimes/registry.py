"""Backend lookup by name; each backend module is imported only when asked for."""
from __future__ import annotations

import importlib

from edgekd.core.errors import TargetError
from edgekd.runtimes.base import Backend

_BACKENDS = {
    "ort": "edgekd.runtimes.ort:OrtBackend",
    "ort-arm64": "edgekd.runtimes.ort:OrtArm64Backend",
    "openvino": "edgekd.runtimes.openvino:OpenVinoBackend",
    "tensorrt": "edgekd.runtimes.tensorrt:TensorRTBackend",
}


def backend_names() -> list[str]:
    return list(_BACKENDS)


def get_backend(name: str) -> Backend:
    if name not in _BACKENDS:
        raise TargetError(f"unknown backend '{name}'; known: {', '.join(_BACKENDS)}")
    module_name, _, cls_name = _BACKENDS[name].partition(":")
    return getattr(importlib.import_module(module_name), cls_name)()
