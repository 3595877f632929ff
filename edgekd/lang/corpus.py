"""A labelled text corpus: built from Debian package records, split by group, snapshotted to JSONL, and read
back from any JSONL or CSV file of `text,label` (optional `split`, `group`). Torch-free.
"""
from __future__ import annotations

import codecs
import csv
import gzip
import hashlib
import io
import json
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edgekd.core.errors import DataError
from edgekd.core.fileio import atomic_path, sha256_of
from edgekd.lang.debian import DebianPackage, package_text

SPLITS = ("train", "val", "test")
FORMAT = "edgekd.text-corpus/1"


@dataclass(frozen=True)
class Example:
    text: str
    label: str
    split: str = ""   # "" until split_by_group assigns one
    group: str = ""   # examples of one group (a Debian source package) always land in the same split


def from_packages(records: Iterable[DebianPackage]) -> list[Example]:
    return [Example(package_text(record), record.section, group=record.source) for record in records]


def deduplicate(examples: Iterable[Example]) -> list[Example]:
    """One example per distinct text. A text seen under two labels is dropped altogether: no model can get it
    right, and keeping either label would make the test split judge a coin toss. A text seen in several groups
    keeps the first group in sorted order, so the result does not depend on the input's order."""
    by_text: dict[str, list[Example]] = defaultdict(list)
    for example in examples:
        if example.text:
            by_text[example.text].append(example)
    kept = []
    for seen in by_text.values():
        if len({example.label for example in seen}) == 1:
            kept.append(min(seen, key=lambda example: example.group))
    return sorted(kept, key=lambda example: (example.group, example.text))


def largest_classes(examples: list[Example], keep: int) -> list[Example]:
    """Only the `keep` most frequent labels (ties broken by name, so the choice is deterministic)."""
    counts = Counter(example.label for example in examples)
    chosen = {label for label, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:keep]}
    return [example for example in examples if example.label in chosen]


def split_of(group: str, seed: int, val_fraction: float, test_fraction: float) -> str:
    """A group's split from a hash of (seed, group). Hand-written rather than scikit-learn's GroupShuffleSplit
    because each group's split must not depend on which other groups exist: when the archive adds or drops a
    package, every other package stays where it was, and the snapshot's splits stay comparable."""
    digest = hashlib.sha256(f"{seed}\0{group}".encode()).digest()
    position = int.from_bytes(digest[:8], "big") / 2 ** 64
    if position < test_fraction:
        return "test"
    return "val" if position < test_fraction + val_fraction else "train"


def split_by_group(examples: Iterable[Example], seed: int = 0, val_fraction: float = 0.1,
                   test_fraction: float = 0.1) -> list[Example]:
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise DataError(f"val_fraction {val_fraction} and test_fraction {test_fraction} must be in [0, 1) and sum below 1")
    return [Example(e.text, e.label, split_of(e.group or e.text, seed, val_fraction, test_fraction), e.group)
            for e in examples]


def build(records: Iterable[DebianPackage], classes: int = 20, seed: int = 0, val_fraction: float = 0.1,
          test_fraction: float = 0.1) -> list[Example]:
    """The issue-15 corpus: texts without package names, deduplicated, the largest `classes` sections, split
    by source package."""
    examples = largest_classes(deduplicate(from_packages(records)), classes)
    return split_by_group(examples, seed, val_fraction, test_fraction)


def write_snapshot(examples: Iterable[Example], path: str | Path) -> str:
    """Write JSONL (gzip when the name ends in .gz) atomically and return its sha256. The gzip header carries
    no time or name, so the same examples give the same bytes and the same sha256 on every machine."""
    path = Path(path)
    lines = "".join(json.dumps(asdict(example), ensure_ascii=False, sort_keys=True) + "\n" for example in examples)
    data = lines.encode("utf-8")
    with atomic_path(path) as tmp:
        if path.name.endswith(".gz"):
            with open(tmp, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as packed:
                packed.write(data)
        else:
            tmp.write_bytes(data)
    return sha256_of(path)


def load(path: str | Path) -> list[Example]:
    """Examples from a .jsonl / .jsonl.gz file (one object a line) or a .csv / .csv.gz file with a header row.
    `text` and `label` are required; `split` and `group` are optional. Errors name the file and line."""
    path = Path(path)
    suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
    kind = suffixes[-1] if suffixes else ""
    if kind not in (".jsonl", ".csv"):
        raise DataError(f"{path}: unknown text corpus format; name it .jsonl or .csv (optionally .gz)")
    try:
        with _open_bytes(path) as raw:
            lines = _decoded_lines(raw, path)
            rows = _jsonl_rows(lines, path) if kind == ".jsonl" else _csv_rows(lines, path)
            examples = [_example(row, path, line) for line, row in rows]
    except FileNotFoundError:
        built = "; the Debian corpus is written by `make text-corpus`" if path.name.startswith("debian-corpus") else ""
        raise DataError(f"{path}: file not found; give the path of your .jsonl or .csv of text,label{built}") from None
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot read ({type(exc).__name__}: {str(exc)[:120]}); the file is damaged or not UTF-8 text") from None
    if not examples:
        raise DataError(f"{path}: no examples; give at least one line with text and label")
    return examples


def _open_bytes(path: Path) -> io.BufferedIOBase:
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")


def _decoded_lines(raw: io.BufferedIOBase, path: Path) -> Iterator[str]:
    """The file's lines as text, decoded one line at a time so that a byte that is not UTF-8 is reported by line and
    column (a text-mode file reports only its offset in an internal 8 KiB buffer). Lines keep their endings: the csv
    module needs them to read a quoted cell across lines. A UTF-8 byte order mark opening the file (Excel's "CSV UTF-8"
    writes one) is dropped, as the utf-8-sig codec does: it would otherwise stick to the first column's name."""
    for number, line in enumerate(raw, start=1):
        if number == 1 and line.startswith(codecs.BOM_UTF8):
            line = line[len(codecs.BOM_UTF8):]
        try:
            yield line.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}:{number}: byte 0x{line[exc.start]:02x} at column {exc.start + 1} is not UTF-8; "
                            "save the file as UTF-8 text") from None


def _jsonl_rows(handle: Iterable[str], path: Path) -> Iterator[tuple[int, dict]]:
    for line, raw in enumerate(handle, start=1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{line}: not valid JSON ({exc.msg}); each line must be one object with text and label") from None
        if not isinstance(row, dict):
            raise DataError(f"{path}:{line}: a JSON {type(row).__name__}, not an object; write {{\"text\": ..., \"label\": ...}}")
        yield line, row


def _csv_rows(handle: Iterable[str], path: Path) -> Iterator[tuple[int, dict]]:
    reader = csv.DictReader(handle)
    missing = {"text", "label"} - set(reader.fieldnames or [])
    if missing:
        raise DataError(f"{path}:1: the header row has no {' or '.join(sorted(missing))} column; "
                        f"the first row must name the columns, with text and label among them")
    try:
        for row in reader:
            if None in row:  # more cells than the header has names
                raise DataError(f"{path}:{reader.line_num}: more cells than the header's {len(reader.fieldnames)} columns; "
                                "quote texts that contain commas")
            yield reader.line_num, row
    except csv.Error as exc:
        raise DataError(f"{path}:{reader.line_num}: malformed CSV ({exc}); quote texts that contain commas or quotes") from None


def _example(row: dict, path: Path, line: int) -> Example:
    values = {}
    for key in ("text", "label", "split", "group"):
        value = row.get(key)
        if key in ("text", "label") and value is None:
            raise DataError(f"{path}:{line}: no {key}; every example needs a non-empty text and label{_keys_found(row)}")
        if key in ("text", "label") and not _visible(str(value)):
            raise DataError(f"{path}:{line}: no {key}: {str(value)[:40]!r} is only spaces, control or invisible "
                            "characters, which the tokenizer drops; every example needs a non-empty text and label")
        if value is not None and not isinstance(value, (str, int)):
            raise DataError(f"{path}:{line}: {key} is a {type(value).__name__}; give a string")
        values[key] = "" if value is None else str(value)
    if values["split"] and values["split"] not in SPLITS:
        raise DataError(f"{path}:{line}: split {values['split']!r} is none of {', '.join(SPLITS)}; fix it or leave it out")
    return Example(**values)


INVISIBLE = {"Cc", "Cf", "Zs", "Zl", "Zp"}  # Unicode categories: control, format (zero-width), space and separators


def _visible(value: str) -> bool:
    """Whether a text has a character the tokenizer keeps: it drops spaces and control and format characters (zero-width
    spaces, byte order marks, NUL), and a text of only those becomes [CLS] [SEP], a sample with nothing to learn from."""
    return any(unicodedata.category(char) not in INVISIBLE for char in value)


def _keys_found(row: dict) -> str:
    """The keys a row has, and the one it perhaps meant ('Text' for text): a file from another tool names columns its way."""
    import difflib

    found = ", ".join(map(repr, list(row)[:8])) or "none"
    close = {want: difflib.get_close_matches(want, [str(k).lower() for k in row], n=1, cutoff=0.6) for want in ("text", "label")}
    meant = [f"{next(k for k in row if str(k).lower() == match[0])!r} as {want!r}" for want, match in close.items()
             if match and want not in row]
    return f" (keys found: {found}{'; rename ' + ' and '.join(meant) if meant else ''})"


def counts(examples: Iterable[Example]) -> dict[str, dict[str, int]]:
    """label -> split -> count, labels by total size (largest first): the table the benchmark prints."""
    table: dict[str, Counter] = defaultdict(Counter)
    for example in examples:
        table[example.label][example.split or "unsplit"] += 1
    ordered = sorted(table.items(), key=lambda item: (-sum(item[1].values()), item[0]))
    return {label: dict(sorted(per_split.items())) for label, per_split in ordered}


def split(examples: Iterable[Example], name: str) -> list[Example]:
    return [example for example in examples if example.split == name]


def stratified(examples: list[Example], count: int | None, seed: int) -> list[Example]:
    """`count` examples with the classes in their proportions (scikit-learn's stratified split), sorted by group and
    text; all of them when `count` is None, 0 or not smaller. A class too small to split is kept whole
    (stratified_rows)."""
    if not count or count >= len(examples):
        return examples
    kept = [examples[row] for row in stratified_rows([e.label for e in examples], count, seed)]
    return sorted(kept, key=lambda e: (e.group, e.text))


def stratified_rows(labels: list, count: int, seed: int) -> np.ndarray:
    """The rows (ascending) of a draw of `count` of `labels` with the classes in their proportions, the same for the
    same labels and seed. scikit-learn's stratified split refuses a class of one example and a draw that leaves a class
    without its share, so: a class of one example is kept whole (it cannot be split), and when the rest cannot be
    stratified (fewer rows to keep or to leave than it has classes) its rows are drawn at random instead."""
    from sklearn.model_selection import train_test_split

    labels = list(labels)
    if count >= len(labels):
        return np.arange(len(labels))
    sizes = Counter(labels)
    whole = [row for row, label in enumerate(labels) if sizes[label] < 2]
    rest = [row for row, label in enumerate(labels) if sizes[label] >= 2]
    budget = count - len(whole)
    if budget <= 0:  # more one-example classes than rows to keep: an unstratified draw of them all
        return np.sort(np.random.default_rng(seed).permutation(len(labels))[:count])
    classes = len({labels[row] for row in rest})
    if budget < classes or len(rest) - budget < classes:
        drawn = list(np.random.default_rng(seed).permutation(rest)[:budget])
    else:
        drawn, _ = train_test_split(rest, train_size=budget, random_state=seed, stratify=[labels[row] for row in rest])
    return np.sort(np.array(whole + list(drawn), dtype=np.int64))


def label_names(examples: Iterable[Example]) -> list[str]:
    """The classes in order: the model's output i is label_names[i], as for image folders. Labels that are all
    integers (5, "12", "-1") go in numeric order, so output i is label i (as strings, "10" would come before "2");
    any other labels in sorted string order."""
    names = {example.label for example in examples}
    if names and all(_is_integer(name) for name in names):
        return sorted(names, key=lambda name: (float(name), name))  # "7" and "07" both: still one order
    return sorted(names)


def _is_integer(label: str) -> bool:
    """5, "12", "-1", and "2.0" as pandas writes a whole number in a column with gaps."""
    body = label[1:] if label[:1] in "+-" else label
    whole, dot, zeros = body.partition(".")
    return whole.isascii() and whole.isdigit() and (not dot or (zeros.isascii() and zeros.isdigit() and not zeros.strip("0")))


TRAINING_LABEL_ADVICE = "every label needs training examples: add some to the train split, or drop these examples"


def label_ids(examples: Iterable[Example], names: list[str], where: str = "", advice: str = TRAINING_LABEL_ADVICE,
              known_as: str = "training labels") -> np.ndarray:
    """Each example's class index in `names` (from the training split), as int64. `where` names the file and split
    the examples come from, `advice` what to do there (the pipeline can add training examples, a device cannot)."""
    index = {name: i for i, name in enumerate(names)}
    examples = list(examples)
    unknown = sorted({e.label for e in examples} - index.keys())
    if unknown:
        shown = ", ".join(map(repr, unknown[:5])) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        known = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
        raise DataError(f"{where + ': ' if where else ''}labels {shown} are not among the {len(names)} {known_as} "
                        f"({known}); {advice}")
    return np.array([index[e.label] for e in examples], dtype=np.int64)
