"""The issue-15 text corpus: Debian package descriptions labelled by Section, snapshotted with its sha256.

    env PYTHONPATH=$PWD python benchmarks/text_corpus.py            # as root, with the Debian archive reachable
    python benchmarks/text_corpus.py --smoke                        # seconds, into a temporary folder: does it still run?

1. apt-get update into a private lists folder (CACHE/apt-lists, never the machine's own) with
   Acquire::Languages=en, because the long descriptions are only in Translation-en files, which this
   machine's apt is set not to fetch. `--no-update` reuses the folder as it is.
2. `apt-cache dumpavail` over those lists, joined with Translation-en by Description-md5
   (edgekd/lang/debian.py), becomes the corpus (edgekd/lang/corpus.py): package and source names removed
   from the text, deduplicated, the 20 largest sections, split train/val/test 80/10/10 by source package.
3. Snapshot CACHE/debian-corpus.jsonl.gz with its sha256; a WordPiece tokenizer (8,000 tokens) trained on the
   training split only, saved as CACHE/tokenizer.json, gives the token lengths.
4. A linear baseline (TF-IDF + logistic regression) on the test split: what the transformers must beat.

Writes benchmarks/results/text_corpus.json and text_corpus.md: counts per class and split, token lengths, the
archive's Release dates and the sha256. The archive changes: the sha256 says which snapshot a result used.
Smoke: the machine's own apt lists as they are (no update, no network), the first 3,000 records.
"""
from __future__ import annotations

import argparse
import io
import itertools
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import smoke  # noqa: E402  (benchmarks/smoke.py, beside this script)

from edgekd.core.environment import describe  # noqa: E402
from edgekd.core.errors import DataError  # noqa: E402
from edgekd.core.fileio import sha256_of, write_json_atomic, write_text_atomic  # noqa: E402
from edgekd.lang import corpus, debian  # noqa: E402
from edgekd.lang import text_tokenizer as tokenizer  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
CACHE = Path.home() / ".cache" / "edgekd" / "text"
SYSTEM_LISTS = Path("/var/lib/apt/lists")
APT_HELPER = "/usr/lib/apt/apt-helper"  # apt's own tool: decompresses lists in whatever format apt stored them
CLASSES, SEED, VOCAB, SMOKE_RECORDS = 20, 0, 8000, 3000


def apt_options(lists: Path) -> list[str]:
    # The package cache goes nowhere (empty pkgcache): apt-cache must not rewrite the machine's own.
    return ["-o", f"Dir::State::Lists={lists}", "-o", "Dir::Cache::pkgcache=", "-o", "Dir::Cache::srcpkgcache="]


def update_lists(lists: Path) -> None:
    (lists / "partial").mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["apt-get", "update", "-qq", *apt_options(lists), "-o", "Acquire::Languages=en"],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise DataError(f"apt-get update into {lists} failed ({done.stderr.strip()[-200:]}); run as root with the Debian "
                        "archive reachable, or pass --no-update to use the lists already there")


def has_package_lists(lists: Path) -> bool:
    return any(lists.glob("*_Packages*"))


def dumpavail(lists: Path) -> str:
    done = subprocess.run(["apt-cache", *apt_options(lists), "dumpavail"], capture_output=True, text=True)
    if done.returncode != 0:
        raise DataError(f"apt-cache dumpavail over {lists} failed: {done.stderr.strip()[-200:]}")
    return done.stdout


def translations(lists: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    for path in sorted(lists.glob("*_i18n_Translation-en*")):
        text = subprocess.run([APT_HELPER, "cat-file", str(path)], capture_output=True, text=True, check=True).stdout
        found.update(debian.long_descriptions(io.StringIO(text)))
    return found


def release_dates(lists: Path) -> dict[str, str]:
    """Each suite's Release date: which state of the archive the snapshot is."""
    dates = {}
    for path in sorted(lists.glob("*InRelease")):
        match = re.search(r"^Date: (.+)$", path.read_text(encoding="utf-8", errors="replace"), re.MULTILINE)
        dates[path.name.replace("_InRelease", "")] = match.group(1) if match else "?"
    return dates


def first_records(text: str, count: int) -> str:
    return "\n\n".join(itertools.islice(text.split("\n\n"), count))


def token_statistics(examples: list[corpus.Example], work: Path, smoke_run: bool) -> dict:
    train_texts = [e.text for e in corpus.split(examples, "train")]
    tok = tokenizer.train(train_texts, vocab_size=500 if smoke_run else VOCAB)
    saved = tokenizer.save(tok, work / "tokenizer.json")
    tokens = tokenizer.token_lengths(tok, [e.text for e in examples])
    words = np.array([len(e.text.split()) for e in examples])
    return {"vocab_size": tok.get_vocab_size(), "tokenizer_sha256": sha256_of(saved),
            "wordpiece_tokens": {"median": float(np.median(tokens)), "p90": float(np.percentile(tokens, 90)),
                                 "max": int(tokens.max()), "share_over_128": round(float((tokens > 128).mean()), 4)},
            "words": {"median": float(np.median(words)), "p90": float(np.percentile(words, 90))}}


def linear_baseline(examples: list[corpus.Example]) -> dict:
    """Top-1 on the test split of TF-IDF (words and bigrams) + logistic regression trained on the training split, and
    of always answering the largest class: what a transformer must beat, and a check that the labels are learnable
    from the text without the package names."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    train, test = corpus.split(examples, "train"), corpus.split(examples, "test")
    names = corpus.label_names(train)
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, max_features=200_000)
    x_train = vectorizer.fit_transform([e.text for e in train])
    model = LogisticRegression(C=10.0, max_iter=300).fit(x_train, corpus.label_ids(train, names))
    predicted = model.predict(vectorizer.transform([e.text for e in test]))
    truth = corpus.label_ids(test, names)
    majority = np.bincount(corpus.label_ids(train, names)).argmax()
    return {"tfidf_logreg_top1": round(100 * float((predicted == truth).mean()), 2),
            "majority_class_top1": round(100 * float((truth == majority).mean()), 2)}


def markdown(result: dict) -> str:
    data, tokens = result["data"], result["tokens"]
    lines = [f"# Text corpus: Debian package descriptions by Section{' (SMOKE: meaningless numbers)' if result['smoke'] else ''}", "",
             f"{data['examples']} examples, {data['classes']} classes, from {data['records']} package records "
             f"({data['with_long_description']} with a long description). Snapshot `{data['file']}`, sha256 `{data['sha256']}`.", "",
             f"Tokens per text (WordPiece, {tokens['vocab_size']} tokens learned on the training split, with [CLS] and [SEP]): "
             f"median {tokens['wordpiece_tokens']['median']:.0f}, p90 {tokens['wordpiece_tokens']['p90']:.0f}, "
             f"max {tokens['wordpiece_tokens']['max']}, {100 * tokens['wordpiece_tokens']['share_over_128']:.1f}% longer than 128. "
             f"Words: median {tokens['words']['median']:.0f}, p90 {tokens['words']['p90']:.0f}.", "",
             f"Test top-1 of a linear baseline (TF-IDF words+bigrams, logistic regression, training split): "
             f"{result['baseline']['tfidf_logreg_top1']:.2f}%; always the largest class: {result['baseline']['majority_class_top1']:.2f}%.", "",
             "| class | train | val | test | total |", "|---|---:|---:|---:|---:|"]
    for label, per_split in data["per_class"].items():
        row = [per_split.get(name, 0) for name in corpus.SPLITS]
        lines.append(f"| {label} | {' | '.join(map(str, row))} | {sum(row)} |")
    totals = [data["per_split"].get(name, 0) for name in corpus.SPLITS]
    lines += [f"| **all** | {' | '.join(map(str, totals))} | {sum(totals)} |", "",
              "Archive: " + "; ".join(f"{suite} {date}" for suite, date in result["archive"].items()) + ".",
              f"{smoke.machine_line(result['machine'])}. {result['total_seconds']} s. "
              "Generated by `benchmarks/text_corpus.py`.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    smoke.add_option(parser)
    parser.add_argument("--cache", type=Path, default=CACHE, help=f"apt lists, snapshot and tokenizer (default {CACHE})")
    parser.add_argument("--no-update", action="store_true", help="use CACHE/apt-lists as they are (no apt-get update)")
    args = parser.parse_args()
    started = time.perf_counter()
    out = smoke.folder("text_corpus") if args.smoke else RESULTS
    work = out / "text-work" if args.smoke else args.cache
    work.mkdir(parents=True, exist_ok=True)
    lists = SYSTEM_LISTS if args.smoke and has_package_lists(SYSTEM_LISTS) else work / "apt-lists"
    if lists != SYSTEM_LISTS and not args.no_update:  # smoke on a machine that never ran apt-get update: fetch privately
        update_lists(lists)
    raw = dumpavail(lists)
    if args.smoke:
        raw = first_records(raw, SMOKE_RECORDS)
    records = debian.check_not_empty(list(debian.packages(io.StringIO(raw), translations(lists))), f"apt-cache dumpavail over {lists}")
    examples = corpus.build(records, classes=CLASSES, seed=SEED)
    snapshot = work / "debian-corpus.jsonl.gz"
    sha256 = corpus.write_snapshot(examples, snapshot)
    assert corpus.load(snapshot) == examples, "the snapshot does not read back as written"
    tokens = token_statistics(examples, work, args.smoke)
    per_split = {name: len(corpus.split(examples, name)) for name in corpus.SPLITS}
    result = {"smoke": args.smoke, "machine": describe(), "archive": release_dates(lists),
              "data": {"examples": len(examples), "classes": len({e.label for e in examples}), "sha256": sha256,
                       "file": str(snapshot), "records": len(records), "with_long_description": sum(bool(r.long) for r in records),
                       "groups": len({e.group for e in examples}), "seed": SEED, "per_split": per_split,
                       "per_class": corpus.counts(examples)},
              "tokens": tokens, "baseline": linear_baseline(examples), "total_seconds": round(time.perf_counter() - started, 1)}
    write_json_atomic(out / "text_corpus.json", result)
    write_text_atomic(out / "text_corpus.md", markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
