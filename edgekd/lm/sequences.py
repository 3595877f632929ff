"""A cache of the teacher's own continuations, for sequence-level distillation (Kim & Rush 2016): the teacher
continues prompts once, greedily or by sampling from its top k, and the student then trains on those token
sequences with next-token cross-entropy instead of (or beside) the corpus.

An entry is one .npy array of int32 tokens, (prompts, prompt_tokens + new_tokens): each row is a prompt followed
by the teacher's continuation. It lives under its key (sha256 of the teacher's weights, the prompts and the
generation settings), is sized and checked against a budget before anything is written, is read with
allow_pickle=False, and counts only once its metadata says `complete`: a fill stopped midway leaves an entry that
the next run refills, as the top-k logit cache (cache.py) does.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from edgekd.core.errors import ConfigError, DataError
from edgekd.core.fileio import write_json_atomic
from edgekd.lm.cache import empty_folder, mark_complete, read_complete

FORMAT = "edgekd.lm-teacher-sequences/1"
DEFAULT_MAX_BYTES = 512 * 1024 ** 2  # 134M tokens: far beyond what a CPU teacher generates in an hour


@dataclass(frozen=True)
class Decoding:
    """How the teacher continues a prompt: greedy (top_k None; Kim & Rush's beam of one) or by sampling from
    its top_k tokens at `temperature`, seeded. batch_size is part of it: batched sampling draws differently."""

    new_tokens: int
    top_k: Optional[int] = None
    temperature: float = 1.0
    seed: int = 0
    batch_size: int = 32

    @property
    def greedy(self) -> bool:
        return self.top_k is None

    def describe(self) -> dict:
        """The settings that decide the tokens (temperature and seed mean nothing to greedy decoding)."""
        sampled = {} if self.greedy else {"top_k": self.top_k, "temperature": float(self.temperature), "seed": self.seed}
        return {"decoding": "greedy" if self.greedy else "top-k sampling", "new_tokens": self.new_tokens,
                "batch_size": self.batch_size, **sampled}


def check_prompt_count(count: int, train_blocks: int) -> None:
    """Each prompt from a distinct training block: the teachers stage asks as soon as the blocks exist (before the
    teacher trains), the distill stage again when it takes them."""
    if count > train_blocks:
        raise ConfigError(f"distill.sequence.prompts: {count} prompts asked, but the train split has only {train_blocks} "
                          "blocks to take them from; lower distill.sequence.prompts")


def prompts_from_blocks(blocks: np.ndarray, count: int, tokens: int, seed: int) -> np.ndarray:
    """(count, tokens) prompts: the first `tokens` of `count` distinct blocks, picked at random (seeded)."""
    check_prompt_count(count, len(blocks))
    if tokens > blocks.shape[1]:
        raise ConfigError(f"distill.sequence.prompt_tokens: {tokens} is longer than a block ({blocks.shape[1]} tokens); "
                          "lower it")
    rows = np.sort(np.random.default_rng(seed).choice(len(blocks), size=count, replace=False))
    return np.ascontiguousarray(blocks[rows, :tokens], dtype=np.int32)


def sequence_key(teacher_digest: str, prompts: np.ndarray, decoding: Decoding) -> str:
    """Changes with the teacher's weights, the prompts and every setting that decides the continuations."""
    tokens = hashlib.sha256(np.ascontiguousarray(prompts, dtype=np.int32).tobytes()).hexdigest()
    canonical = json.dumps({"format": FORMAT, "teacher": teacher_digest, "prompts": tokens, "shape": list(prompts.shape),
                            **decoding.describe()}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass
class SequenceEntry:
    folder: Path
    tokens: np.ndarray      # (prompts, prompt_tokens + new_tokens) int32: prompt, then the teacher's continuation
    prompt_tokens: int
    complete: bool

    def batch(self, rows: np.ndarray) -> np.ndarray:
        """These rows as int64 token ids, ready for the model."""
        return np.asarray(self.tokens[np.asarray(rows)], dtype=np.int64)

    def write(self, start: int, rows: np.ndarray) -> None:
        """Fill rows start .. start + len(rows) (prompts with their continuations)."""
        if self.complete:
            raise DataError(f"{self.folder}: this cache entry is complete and read-only; use a new key to refill it")
        self.tokens[start:start + len(rows)] = rows

    def finish(self) -> None:
        """Flush the tokens, then mark the entry complete: only now will a later run trust it."""
        mark_complete(self.folder, (self.tokens,))
        self.complete = True


class SequenceCache:
    def __init__(self, root: str | Path, max_bytes: int = DEFAULT_MAX_BYTES):
        self.root = Path(root)
        self.max_bytes = int(max_bytes)

    def open(self, key: str) -> SequenceEntry | None:
        """A complete entry under `key`, memory-mapped read-only, or None (missing, unfinished or damaged)."""
        folder = self.root / key
        found = read_complete(folder, FORMAT, ("tokens",))
        if found is None:
            return None
        meta, tokens = found[0], found[1]["tokens"]
        if tokens.dtype != np.int32 or list(tokens.shape) != meta.get("shape"):
            return None
        return SequenceEntry(folder, tokens, int(meta["prompt_tokens"]), True)

    def create(self, key: str, prompts: int, prompt_tokens: int, new_tokens: int, describe: dict | None = None) -> SequenceEntry:
        """A new, empty entry of fixed size; refused up front when it would exceed max_bytes."""
        shape = (prompts, prompt_tokens + new_tokens)
        needed = shape[0] * shape[1] * 4
        if needed > self.max_bytes:
            raise ConfigError(f"distill.sequence: {prompts} prompts x {shape[1]} tokens need {needed / 2**20:.0f} MiB, over "
                              f"the {self.max_bytes / 2**20:.0f} MiB budget of the sequence cache; use fewer prompts or tokens")
        folder = self.root / key
        empty_folder(folder, self.open(key) is not None)
        # Metadata first, marked incomplete: a crash from here on leaves an entry that open() ignores.
        write_json_atomic(folder / "meta.json", {"format": FORMAT, "key": key, "shape": list(shape), "prompt_tokens": prompt_tokens,
                                                 "bytes": needed, "complete": False, **(describe or {})})
        tokens = np.lib.format.open_memmap(folder / "tokens.npy", mode="w+", dtype=np.int32, shape=shape)
        return SequenceEntry(folder, tokens, prompt_tokens, False)
