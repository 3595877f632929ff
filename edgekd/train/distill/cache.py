"""Teacher-output cache: each teacher runs once over the transfer set; later epochs and later runs reuse it.

An entry is one teacher's float16 logits over the whole transfer set, a .npy opened memory-mapped, under
    key = sha256(teacher weights and code, dataset fingerprint, transform description)
so editing a weight, the model's code, the data or the augmentation changes the key and misses. Files are written atomically
(temp file + rename), so two runs filling the same entry at once both end with a complete, identical file.
"""
from __future__ import annotations

import functools
import hashlib
import inspect
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch import nn

from edgekd.core.errors import DataError, EdgeKDError
from edgekd.core.fileio import atomic_path, read_json, write_json_atomic

DEFAULT_CACHE_DIR = Path(".cache/teacher-logits")  # under the run folder's parent
CACHE_ENV = "EDGEKD_CACHE_DIR"
FORMAT = "edgekd.teacher-logits/1"
# Set on a teacher whose probability outputs are replaced by their log (train/distill/teacher_outputs.py): part of
# its identity here.
LOG_OF_PROBABILITIES = "edgekd_log_of_probabilities"


def resolve_cache_dir(configured: Optional[str], base_dir: Optional[Path] = None, run_dir: Optional[Path] = None) -> Path:
    """Config value (relative to the config file), else $EDGEKD_CACHE_DIR, else .cache/teacher-logits beside the
    run folder: runs started as `--out runs/<name>` share runs/.cache wherever the command is started from."""
    if configured:
        path = Path(configured)
        return path if path.is_absolute() or base_dir is None else Path(base_dir) / path
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(run_dir).parent / DEFAULT_CACHE_DIR if run_dir is not None else Path("runs") / DEFAULT_CACHE_DIR


def weights_digest(model: nn.Module) -> str:
    """sha256 of every parameter and buffer (name, dtype, shape, bytes) and of the code that runs them (code_digest):
    the model's identity for the cache."""
    digest = hashlib.sha256(type(model).__qualname__.encode())
    digest.update(code_digest(model).encode())
    if getattr(model, LOG_OF_PROBABILITIES, False):  # outputs cached before the conversion are not read back as logits
        digest.update(b"|outputs: log of its probabilities")
    for name, tensor in sorted(model.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def code_digest(model: nn.Module) -> str:
    """sha256 of the source files that define the model's classes, its own and its submodules' (a user's factory
    file, torchvision's, edgekd's zoo): a forward() edited in the user's file, with the same weights, computes other
    outputs, and read an earlier run's cached ones (a teacher with two classes swapped taught as before)."""
    # by module name and content, not path: a cache shared by two checkouts (EDGEKD_CACHE_DIR) still hits
    digest = hashlib.sha256()
    for module, source in sorted({(type(m).__module__, _source_digest(type(m))) for m in model.modules()}):
        digest.update(f"{module}|{source}".encode())
    return digest.hexdigest()


def _source_digest(cls: type) -> str:
    """sha256 of the file defining `cls`; its module's name alone where there is no file to read (a class defined in
    C, at the prompt, in a zip or a sourceless install)."""
    try:
        path = inspect.getsourcefile(cls)
        stat = os.stat(path) if path else None
    except (TypeError, OSError):
        return ""
    return _file_sha256(path, stat.st_mtime_ns, stat.st_size) if stat else ""


@functools.lru_cache(maxsize=512)
def _file_sha256(path: str, _mtime_ns: int, _size: int) -> str:  # read once a process while the file is unchanged
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def cache_key(weights: str, dataset: str, transform: dict) -> str:
    canonical = json.dumps({"format": FORMAT, "weights": weights, "dataset": dataset, "transform": transform}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass
class CacheEntry:
    key: str
    logits: np.ndarray       # (N, classes) float16, memory-mapped
    hit: bool
    compute_seconds: float   # teacher forward time to fill it (this run's on a miss, the original run's on a hit)


class TeacherLogitCache:
    def __init__(self, root: Path):
        self.root = Path(root)

    def paths(self, key: str) -> tuple[Path, Path]:
        return self.root / f"{key}.npy", self.root / f"{key}.json"

    def get_or_compute(self, key: str, compute: Callable[[], np.ndarray], describe: dict) -> CacheEntry:
        found = self.load(key)
        if found is not None:
            return found
        started = time.perf_counter()
        logits = np.asarray(compute(), dtype=np.float32)
        seconds = time.perf_counter() - started
        if not np.isfinite(logits).all():
            raise DataError(f"{describe.get('teacher', 'teacher')}: outputs contain NaN or Inf; "
                            "check the checkpoint and the data normalisation")
        self.store(key, logits, {**describe, "compute_seconds": round(seconds, 3)})
        return CacheEntry(key, np.load(self.paths(key)[0], mmap_mode="r"), False, seconds)

    def load(self, key: str) -> Optional[CacheEntry]:
        array_path, meta_path = self.paths(key)
        if not array_path.is_file() or not meta_path.is_file():
            return None
        try:
            meta = read_json(meta_path)
            logits = np.load(array_path, mmap_mode="r")
        except (OSError, ValueError, EdgeKDError):  # a damaged entry is recomputed, never trusted
            return None
        if logits.dtype != np.float16 or list(logits.shape) != meta.get("shape"):
            return None
        return CacheEntry(key, logits, True, float(meta.get("compute_seconds", 0.0)))

    def store(self, key: str, logits: np.ndarray, describe: dict) -> None:
        array_path, meta_path = self.paths(key)
        # Metadata first: an entry counts only once its .npy exists, and by then its description does too.
        write_json_atomic(meta_path, {"format": FORMAT, "key": key, "shape": list(logits.shape), "dtype": "float16",
                                      "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **describe})
        with atomic_path(array_path) as tmp, open(tmp, "wb") as handle:
            # float16 halves the cache; soft targets need no more precision than that.
            np.save(handle, logits.astype(np.float16))
