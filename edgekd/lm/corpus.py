"""Text corpora for language models, split by file so no file's text is in two splits.

The default corpus is on every machine with Python: the standard library's own `.py` sources (its test
suites and site-packages left out). A folder of the user's text files works the same way. Each file's split
comes from a hash of its relative path, so it never changes when other files are added or removed, and the
file list's sha256 is recorded so that two runs can tell whether they trained on the same corpus.
"""
from __future__ import annotations

import hashlib
import sysconfig
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from edgekd.core.errors import DataError

SPLITS = ("train", "val", "test")
DEFAULT_FRACTIONS = (0.9, 0.05, 0.05)
# Folders of the standard library that are test suites or third-party code, not the library itself.
STDLIB_EXCLUDED_DIRS = frozenset({"site-packages", "dist-packages", "test", "tests", "idle_test", "__pycache__"})
TEXT_SUFFIXES = (".txt", ".md", ".rst", ".py")


@dataclass(frozen=True)
class Corpus:
    root: Path
    source: str                          # "stdlib" or "folder"
    files: dict[str, list[str]]          # split -> relative POSIX paths, sorted
    fractions: tuple[float, float, float]
    file_list_sha256: str = field(default="")

    def paths(self, split: str) -> list[Path]:
        return [self.root / name for name in self.files[_known(split)]]

    def texts(self, split: str) -> Iterator[str]:
        """Each file of `split` as text, in sorted order (one file in memory at a time)."""
        for path in self.paths(split):
            yield read_text(path)

    def describe(self) -> dict:
        return {"source": self.source, "root": str(self.root), "fractions": list(self.fractions),
                "file_list_sha256": self.file_list_sha256, "files": {split: len(self.files[split]) for split in SPLITS}}


def stdlib_corpus(fractions: Sequence[float] = DEFAULT_FRACTIONS) -> Corpus:
    """The running Python's standard library sources, without its test suites and site-packages."""
    root = Path(sysconfig.get_paths()["stdlib"])
    names = [name for name in _relative_files(root, (".py",)) if _is_library_source(name)]
    return _split(root, "stdlib", names, fractions)


def folder_corpus(folder: str | Path, fractions: Sequence[float] = DEFAULT_FRACTIONS,
                  suffixes: Sequence[str] = TEXT_SUFFIXES) -> Corpus:
    """Every text file under `folder` (by suffix, recursively), split by file."""
    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"{root}: corpus folder not found (or not a folder); give a folder of text files")
    names = _relative_files(root, tuple(suffixes))
    if not names:
        raise DataError(f"{root}: no text files ({', '.join(suffixes)}) in this folder; add some or point to another folder")
    return _split(root, "folder", names, fractions)


def split_of(relative_path: str, fractions: Sequence[float] = DEFAULT_FRACTIONS) -> str:
    """The split a file belongs to: the first 8 bytes of sha256(path) as a number in [0, 1) against the
    cumulative fractions. Depends on the path alone, so a file keeps its split as the corpus grows."""
    point = int.from_bytes(hashlib.sha256(relative_path.encode("utf-8")).digest()[:8], "big") / 2 ** 64
    edge = 0.0
    for split, fraction in zip(SPLITS, fractions):
        edge += fraction
        if point < edge:
            return split
    return SPLITS[-1]  # rounding of the fractions' sum


def summary(corpus: Corpus, count_tokens: Optional[Callable[[str], int]] = None) -> dict:
    """Files, bytes and (given a token counter, such as LMTokenizer.count) tokens per split."""
    splits = {}
    for split in SPLITS:
        paths = corpus.paths(split)
        row = {"files": len(paths), "bytes": sum(path.stat().st_size for path in paths)}
        if count_tokens is not None:
            row["tokens"] = sum(count_tokens(text) for text in corpus.texts(split))
        splits[split] = row
    return {**corpus.describe(), "splits": splits}


def read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DataError(f"{path}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); convert it to "
                        "UTF-8 or remove it from the corpus") from None


def _split(root: Path, source: str, names: list[str], fractions: Sequence[float]) -> Corpus:
    fractions = _checked_fractions(fractions)
    files: dict[str, list[str]] = {split: [] for split in SPLITS}
    for name in names:
        files[split_of(name, fractions)].append(name)
    empty = [split for split, fraction in zip(SPLITS, fractions) if fraction > 0 and not files[split]]
    if empty:
        raise DataError(f"{root}: {len(names)} file{'s' if len(names) != 1 else ''} leave the {' and '.join(empty)} split "
                        f"empty (files are split by a hash of their path, fractions {list(fractions)}); "
                        f"{_how_to_fill(len(names), fractions)}")
    listing = "\n".join(names).encode("utf-8")
    return Corpus(root, source, files, fractions, hashlib.sha256(listing).hexdigest())


def _how_to_fill(files: int, fractions: Sequence[float]) -> str:
    """Each file goes wholly into one split: with fewer files than splits to fill, no fraction can fill them all."""
    needed = sum(1 for fraction in fractions if fraction > 0)
    if files < needed:
        return f"add files: each file goes wholly into one split, so {needed} splits need at least {needed} files"
    return "add files or raise that split's fraction"


def _relative_files(root: Path, suffixes: tuple[str, ...]) -> list[str]:
    # Sorted POSIX paths: the same list, and so the same sha256, on every machine holding the same files.
    return sorted(path.relative_to(root).as_posix() for path in root.rglob("*") if path.suffix in suffixes and path.is_file())


def _is_library_source(name: str) -> bool:
    *folders, filename = name.split("/")
    return not (STDLIB_EXCLUDED_DIRS.intersection(folders) or filename.startswith("test_"))


def _known(split: str) -> str:
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    return split


def _checked_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    values = tuple(float(value) for value in fractions)
    if len(values) != 3 or any(value < 0 for value in values) or abs(sum(values) - 1.0) > 1e-6:
        raise DataError(f"corpus fractions {list(fractions)}: give three non-negative numbers (train, val, test) that sum to 1")
    return values  # type: ignore[return-value]
