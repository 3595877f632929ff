"""A tiny labelled corpus for end-to-end tests of the text path: four labels, each with its own words among shared
ones, in train/val/test splits. Seconds to train on; its numbers mean nothing beyond "the path works"."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edgekd.lang import corpus

WORDS = {"libs": "library shared runtime symbols linker", "python": "python module import package interpreter",
         "games": "game player level arcade puzzle", "doc": "documentation manual html reference guide"}
SHARED = "the a of and with for tool data this provides".split()


def examples(count: int = 400, seed: int = 0) -> list[corpus.Example]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(count):
        label = list(WORDS)[i % len(WORDS)]
        size = int(rng.integers(6, 30))  # half the words are the label's own
        words = [*rng.choice(WORDS[label].split(), size=size // 2), *rng.choice(SHARED, size=size - size // 2)]
        rng.shuffle(words)
        split = "test" if i % 5 == 0 else "val" if i % 5 == 1 else "train"
        rows.append(corpus.Example(" ".join(words), label, split, f"g{i}"))
    return rows


def write(path: Path, rows: list[corpus.Example] | None = None) -> Path:
    corpus.write_snapshot(examples() if rows is None else rows, path)
    return path
