"""The one table of backends: name -> class. Profiles, bundles, sizes and the bench ask the backend itself
(Backend and Session in base.py) for what differs between runtimes; each backend module is imported only when
asked for. A new backend: one module with a Backend subclass, and one line here."""
from __future__ import annotations

import importlib
from pathlib import Path

from edgekd.core.errors import ArtifactError, TargetError
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


def runtime_of(name: str) -> str:
    """The runtime backend `name` runs on, by its import name ('onnxruntime' for ort and ort-arm64, 'openvino',
    'tensorrt'): what code asks instead of listing backend names ("does this target run onnxruntime?")."""
    return get_backend(name).runtime_module


def backends_on(runtime: str) -> list[str]:
    """The backends that run on `runtime` (runtime_of), in the table's order."""
    return [name for name in BACKENDS if runtime_of(name) == runtime]


def decoder_backends() -> list[str]:
    """The backends that run a language model's decoder (Backend.decoder_methods), in the table's order."""
    return [name for name in BACKENDS if get_backend(name).decoder_methods]


def decoder_backend_for(model_file: Path, runtime: str | None = None) -> str:
    """The backend that opens a language model's decoder file: the first decoder backend on `runtime` when given (what a
    bundle records), else the first whose file_roles name the file's suffix (.xml: openvino), else the first decoder
    backend (onnxruntime, which reads an ONNX file whatever its name)."""
    backends = decoder_backends()
    if runtime:
        chosen = [n for n in backends if runtime_of(n) == runtime]
        if not chosen:
            raise ArtifactError(f"{model_file}: recorded runtime '{runtime}' runs no language model decoder; known: "
                                f"{', '.join(dict.fromkeys(runtime_of(n) for n in backends))}")
        return chosen[0]
    return next((n for n in backends if Path(model_file).suffix in get_backend(n).file_roles), backends[0])


def load_decoder(path: str | Path, threads: int | None = None, runtime: str | None = None):
    """The decoder session for a language model's file (edgekd.lang.generate.Decoder), opened by its backend
    (Backend.decoder): the one that runs on `runtime` (e.g. the 'runtime' a bundle records), else the one whose
    files these are (an OpenVINO IR .xml, an ONNX file otherwise)."""
    return get_backend(decoder_backend_for(Path(path), runtime)).decoder(Path(path), threads)


def get_backend(name: str) -> Backend:
    if name not in BACKENDS:
        raise TargetError(f"unknown backend '{name}'; known: {', '.join(BACKENDS)}")
    module_name, _, cls_name = BACKENDS[name].partition(":")
    return getattr(importlib.import_module(module_name), cls_name)()
