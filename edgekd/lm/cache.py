"""A bounded cache of the teacher's top-k next-token logits: the teacher runs once over the training blocks and
every distillation step reads its targets from disk.

A full vocabulary per token (8k float16 values over 1M tokens: 16 GB) does not fit; the top k does
(k = 32: 192 MB). Per block and position it holds the k largest logits (float16), their token ids (int32) and
the log-sum-exp of the teacher's logits over the whole vocabulary at the distillation temperature (float32),
from which the loss recovers the probability mass outside the top k (the tail bucket, see losses.py).

The arrays are .npy files opened as numpy memmaps, sized up front (the size is known and checked against a
budget before anything is written), read with allow_pickle=False. Like edgekd's image-teacher cache
(edgekd/distill/cache.py, whose layout this mirrors; it stores full logits, so it is not reused as is), an
entry lives under its key, sha256 of the teacher's weights, the token blocks and the settings, and counts only
once its metadata says `complete`: a run stopped mid-fill leaves an entry that the next run refills.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgekd.core.errors import ConfigError, DataError, EdgeKDError
from edgekd.core.fileio import read_json, write_json_atomic

FORMAT = "edgekd.lm-topk-logits/1"
DEFAULT_MAX_BYTES = 2 * 1024 ** 3
ARRAYS = {"values": np.float16, "indices": np.int32, "logsumexp": np.float32}


def entry_bytes(blocks: int, block_length: int, k: int) -> int:
    """Disk bytes of an entry: float16 values + int32 indices per top-k slot, one float32 log-sum-exp per token."""
    tokens = blocks * block_length
    return tokens * k * (2 + 4) + tokens * 4


def cache_key(teacher_digest: str, blocks: np.ndarray, k: int, temperature: float) -> str:
    """Changes with the teacher's weights, the token blocks, k and the temperature (the log-sum-exp depends on it)."""
    tokens = hashlib.sha256(np.ascontiguousarray(blocks, dtype=np.int32).tobytes()).hexdigest()
    canonical = json.dumps({"format": FORMAT, "teacher": teacher_digest, "tokens": tokens, "shape": list(blocks.shape),
                            "k": int(k), "temperature": float(temperature)}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass
class TopKEntry:
    folder: Path
    values: np.ndarray      # (blocks, block_length, k) float16: the teacher's k largest logits, descending
    indices: np.ndarray     # (blocks, block_length, k) int32: their token ids
    logsumexp: np.ndarray   # (blocks, block_length) float32: log sum_v exp(z_v / temperature) over the full vocabulary
    temperature: float
    complete: bool

    def batch(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The cached targets of these block rows, as float32 / int64 arrays ready for the loss."""
        rows = np.asarray(rows)
        return (np.asarray(self.values[rows], dtype=np.float32), np.asarray(self.indices[rows], dtype=np.int64),
                np.asarray(self.logsumexp[rows], dtype=np.float32))

    def write(self, start: int, values: np.ndarray, indices: np.ndarray, logsumexp: np.ndarray) -> None:
        """Fill rows start .. start + len(values) (the teacher's outputs for those blocks)."""
        if self.complete:
            raise DataError(f"{self.folder}: this cache entry is complete and read-only; use a new key to refill it")
        stop = start + len(values)
        self.values[start:stop] = values
        self.indices[start:stop] = indices
        self.logsumexp[start:stop] = logsumexp

    def finish(self) -> None:
        """Flush the arrays, then mark the entry complete: only now will a later run trust it."""
        mark_complete(self.folder, (self.values, self.indices, self.logsumexp))
        self.complete = True


# The entry life cycle both LM caches share (this top-k cache and sequences.py's continuations): metadata written
# first with complete false, arrays filled through memmaps, then flushed and marked complete; open() trusts only
# a complete entry, create() clears an unfinished one.


def read_complete(folder: Path, fmt: str, names) -> tuple[dict, dict[str, np.ndarray]] | None:
    """meta.json and the named .npy arrays (memory-mapped, read-only, no pickle) of a complete entry in the
    given format; None when missing, unfinished or unreadable."""
    try:
        meta = read_json(folder / "meta.json")
        arrays = {name: np.load(folder / f"{name}.npy", mmap_mode="r", allow_pickle=False) for name in names}
    except (OSError, ValueError, EdgeKDError):
        return None
    return (meta, arrays) if meta.get("format") == fmt and meta.get("complete") else None


def empty_folder(folder: Path, complete_exists: bool) -> None:
    """A fresh folder for a new entry: refused over a complete one, an unfinished fill of the same key removed
    (its contents are worthless)."""
    if complete_exists:
        raise DataError(f"{folder}: a complete cache entry exists under this key; open() it instead of refilling it")
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)


def mark_complete(folder: Path, arrays) -> None:
    for array in arrays:
        array.flush()
    meta_path = folder / "meta.json"
    write_json_atomic(meta_path, {**read_json(meta_path), "complete": True})


class TopKLogitCache:
    def __init__(self, root: str | Path, max_bytes: int = DEFAULT_MAX_BYTES):
        self.root = Path(root)
        self.max_bytes = int(max_bytes)

    def open(self, key: str) -> TopKEntry | None:
        """A complete entry under `key`, memory-mapped read-only, or None (missing, unfinished or damaged)."""
        folder = self.root / key
        found = read_complete(folder, FORMAT, ARRAYS)
        if found is None or not _shapes_match(found[1], found[0]):
            return None
        meta, arrays = found
        return TopKEntry(folder, arrays["values"], arrays["indices"], arrays["logsumexp"], float(meta["temperature"]), True)

    def create(self, key: str, blocks: int, block_length: int, k: int, temperature: float, describe: dict | None = None) -> TopKEntry:
        """A new, empty entry of fixed size; refused up front when it would exceed max_bytes."""
        if k < 1:
            raise ConfigError(f"top-k cache: k must be at least 1, got {k}")
        needed = entry_bytes(blocks, block_length, k)
        if needed > self.max_bytes:
            raise ConfigError(f"top-k cache: {blocks} blocks x {block_length} tokens x k={k} needs {needed / 2**20:.0f} MiB, "
                              f"over the {self.max_bytes / 2**20:.0f} MiB budget; lower k, use fewer blocks or raise the budget")
        folder = self.root / key
        empty_folder(folder, self.open(key) is not None)
        shapes = {"values": (blocks, block_length, k), "indices": (blocks, block_length, k), "logsumexp": (blocks, block_length)}
        # Metadata first, marked incomplete: a crash from here on leaves an entry that open() ignores.
        write_json_atomic(folder / "meta.json", {"format": FORMAT, "key": key, "k": k, "temperature": float(temperature),
                                                 "shapes": {name: list(shape) for name, shape in shapes.items()},
                                                 "bytes": needed, "complete": False, **(describe or {})})
        arrays = {name: np.lib.format.open_memmap(folder / f"{name}.npy", mode="w+", dtype=dtype, shape=shapes[name])
                  for name, dtype in ARRAYS.items()}
        return TopKEntry(folder, arrays["values"], arrays["indices"], arrays["logsumexp"], float(temperature), False)


def _shapes_match(arrays: dict[str, np.ndarray], meta: dict) -> bool:
    return all(arrays[name].dtype == np.dtype(dtype) and list(arrays[name].shape) == meta.get("shapes", {}).get(name)
               for name, dtype in ARRAYS.items())
