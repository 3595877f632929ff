"""What a stage's result depends on beyond the config's own text: the files the config names.

`--resume` skips a stage whose key is unchanged. The key hashes the config sections a stage reads; this
adds the content behind them (a target profile, a calibration recipe, a data file, a checkpoint, the user's
own factory module), so editing one of those files reruns the stages that read it, as editing the config does.
"""
from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from edgekd.core.fileio import resolve_path, sha256_of
from edgekd.core.user_code import is_reference
from edgekd.train.config import ModelConfig


def external_inputs(cfg, section: str, base_dir: Path) -> Any:
    """The content fingerprint of what `section` of a PipelineConfig names outside the config, or None when it names
    nothing. (Untyped: pipeline/config.py calls this, so this module does not import it back.)"""
    if section == "data":
        return {"path": fingerprint(cfg.data.path, base_dir), "source": _reference_file(cfg.data.source, base_dir)}
    if section == "teachers":
        return [_model_files(teacher, base_dir) for teacher in cfg.teachers]
    if section == "student":
        return _model_files(cfg.student, base_dir)
    if section == "distill":
        return [_model_files(peer, base_dir) for peer in cfg.distill.online.peers]
    if section == "targets":
        return target_profiles(cfg.targets, base_dir)
    if section == "quantize" and cfg.quantize.method != "none":
        from edgekd.data.calibration import load_recipe

        recipe = load_recipe(cfg.quantize.calibration, base_dir).model_dump(mode="json")
        folder = cfg.quantize.calibration_images
        return {**recipe, "calibration_images": fingerprint(folder, base_dir)} if folder else recipe
    return None


def target_profiles(targets: list[str], base_dir: Path) -> list[dict]:
    """The target profiles as loaded: a profile file edited in place changes the key of every stage reading targets."""
    from edgekd.runtimes import load_profile

    return [load_profile(name, base_dir).model_dump(mode="json") for name in targets]


def _model_files(spec: ModelConfig, base_dir: Path) -> dict:
    files = {"checkpoint": fingerprint(spec.checkpoint, base_dir),
             "arch": _reference_file(spec.arch, base_dir) if spec.arch else None}
    # Fitted files (a student or teacher as ONNX, a teacher as skops): each keyed only when given, so that the keys of
    # configs without one stay as they were (--resume)
    given = {kind: getattr(spec, kind, None) for kind in ("onnx", "skops")}
    return files | {kind: fingerprint(path, base_dir) for kind, path in given.items() if path}


def _reference_file(reference: str, base_dir: Path) -> str | None:
    """A `file.py:function` reference's file content; a `module:function` is the environment's, not hashed."""
    module_part = reference.rpartition(":")[0]
    return fingerprint(module_part, base_dir) if is_reference(reference) and module_part.endswith(".py") else None


def fingerprint(path: str | None, base_dir: Path) -> str | None:
    if not path:
        return None
    found = resolve_path(Path(path).expanduser(), base_dir)
    if found.is_file():
        stat = found.stat()
        return _file_digest(str(found.resolve()), stat.st_size, stat.st_mtime_ns)
    if found.is_dir():
        # A folder (imagefolder, Fashion-MNIST) can hold thousands of files: names, sizes and times stand in
        # for their bytes, as make's timestamps do.
        listing = sorted((str(f.relative_to(found)), f.stat().st_size, f.stat().st_mtime_ns)
                         for f in found.rglob("*") if f.is_file())
        return hashlib.sha256(json.dumps(listing).encode()).hexdigest()
    return "missing"


@lru_cache(maxsize=256)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    """sha256 of a file, computed once per (size, mtime) for the life of the process: stage keys are asked often."""
    return sha256_of(path)
