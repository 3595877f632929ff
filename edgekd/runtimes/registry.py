"""The one table of backends: name -> class. Profiles, bundles, sizes and the bench ask the backend itself
(Backend and Session in base.py) for what differs between runtimes; each backend module is imported only when
asked for. A new backend: one module with a Backend subclass, and one line here."""
from __future__ import annotations

import importlib

from edgekd.core.errors import TargetError
from edgekd.runtimes.base import Backend

BACKENDS = {
    "ort": "edgekd.runtimes.ort:OrtBackend",
    "ort-arm64": "edgekd.runtimes.ort:OrtArm64Backend",
    "openvino": "edgekd.runtimes.openvino:OpenVinoBackend",
    "tensorrt": "edgekd.runtimes.tensorrt:TensorRTBackend",
}
BACKEND_NAMES = tuple(BACKENDS)


def backend_names() -> list[str]:
    return list(BACKENDS)


def get_backend(name: str) -> Backend:
    if name not in BACKENDS:
        raise TargetError(f"unknown backend '{name}'; known: {', '.join(BACKENDS)}")
    module_name, _, cls_name = BACKENDS[name].partition(":")
    return getattr(importlib.import_module(module_name), cls_name)()
