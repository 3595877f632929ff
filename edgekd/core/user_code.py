"""Resolve `module:function` and `path/to/file.py:function` references from the user's own config.

This imports user code on purpose, and only code the config author named: configs are the user's
own files. Checkpoints, ONNX files and bundles are never allowed to trigger an import.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgekd.core.errors import ConfigError, EdgeKDError
from edgekd.core.fileio import resolve_path, searched


def is_reference(text: str) -> bool:
    head, sep, attr = text.rpartition(":")
    return bool(sep and head and attr.isidentifier() and not text.startswith("torchvision:"))


def resolve(reference: str, base_dir: str | Path | None = None, what: str = "reference") -> Callable[..., Any]:
    module_part, _, attr = reference.rpartition(":")
    if not module_part or not attr.isidentifier():
        raise ConfigError(f"{what} '{reference}': expected module:function or path/to/file.py:function")
    module = _load_file(module_part, base_dir, what) if module_part.endswith(".py") else _import(module_part, what)
    try:
        target = getattr(module, attr)
    except AttributeError:
        raise ConfigError(f"{what} '{reference}': {module_part} has no attribute '{attr}'") from None
    if not callable(target):
        raise ConfigError(f"{what} '{reference}': '{attr}' is not callable")
    return target


def call(reference: str, base_dir: str | Path | None = None, what: str = "reference", **kwargs: Any) -> Any:
    """Resolve and call a factory the user named; an exception in their code becomes one line naming
    the config field (the full traceback stays available with --debug)."""
    factory = resolve(reference, base_dir, what)
    try:
        return factory(**kwargs)
    except EdgeKDError:
        raise
    except Exception as exc:  # the user's own code can raise anything
        raise ConfigError(f"{what} '{reference}': the function raised {_describe(exc)}; "
                          "fix it, or rerun with --debug for the traceback") from exc


def _describe(exc: BaseException) -> str:
    first = str(exc).splitlines()[0][:160] if str(exc) else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def _import(name: str, what: str):
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise ConfigError(f"{what} '{name}': cannot import ({exc}); is the module on PYTHONPATH?") from None
    except Exception as exc:  # the module itself fails while importing
        raise ConfigError(f"{what} '{name}': importing it raised {_describe(exc)}; rerun with --debug for the traceback") from exc


def _load_file(file_part: str, base_dir: str | Path | None, what: str):
    path = resolve_path(file_part, base_dir)
    if not path.is_file():
        raise ConfigError(f"{what} '{file_part}': file not found ({searched(file_part, base_dir)})")
    name = f"edgekd_user_{abs(hash(str(path.resolve())))}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # a syntax error or a failing top-level statement in the user's file
        del sys.modules[name]
        raise ConfigError(f"{what} '{file_part}': loading it raised {_describe(exc)}; "
                          "rerun with --debug for the traceback") from exc
    return module
