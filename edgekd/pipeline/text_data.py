"""`data.source: text`: a corpus file of text,label as the pipeline's dataset. Splits are the file's `split` column
when it has one, else drawn by group (edgekd.text.corpus.split_by_group); the WordPiece tokenizer is learned on the
training split; every split is held tokenized (input_ids, attention_mask), with its texts kept for the bundle.

The same interface as edgekd.data.datasets.Dataset where later stages read it (splits with x and y, classes,
fingerprint, preprocessing), so compile, bench and gate run text models unchanged: x is {input name: array}.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgekd.core.errors import DataError
from edgekd.core.fileio import resolve_path, sha256_of
from edgekd.core.metrics import ACCURACY
from edgekd.text import corpus, tokenizer

DEFAULT_MAX_LENGTH, DEFAULT_VOCAB = 64, 2000
TOKENIZER_FILE = "tokenizer.json"  # its name in the teachers stage's folder and in every bundle


@dataclass(frozen=True)
class TextSplit:
    x: dict[str, np.ndarray]  # input_ids, attention_mask: (N, max_length) int64
    y: np.ndarray
    texts: list[str] = field(repr=False)

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class TextDataset:
    name: str
    classes: list[str]
    train: TextSplit
    val: TextSplit
    test: TextSplit
    tokenizer_json: str = field(repr=False)  # the tokenizer as tokenizers writes it, so every stage encodes alike
    max_length: int = DEFAULT_MAX_LENGTH
    fingerprint: str = ""
    labeled: bool = True
    measured: str = ACCURACY

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def tokenizer(self):
        from tokenizers import Tokenizer

        return tokenizer.with_length(Tokenizer.from_str(self.tokenizer_json), self.max_length)

    def preprocessing(self) -> dict:
        """What the device does to a raw text before the model: the bundle's tokenizer.json, cut and padded."""
        return {"text": {"tokenizer": TOKENIZER_FILE, "max_length": self.max_length,
                         "inputs": ["input_ids", "attention_mask"], "lowercase": True}}


def load_text_dataset(cfg, seed: int, base_dir: Path | None = None) -> TextDataset:
    """The corpus at data.path, split, tokenized; data.train_limit / test_limit keep a stratified subset."""
    path = resolve_path(Path(cfg.path).expanduser(), base_dir)
    examples = corpus.load(path)
    if not all(e.split for e in examples):
        examples = corpus.split_by_group(examples, seed, cfg.val_fraction, cfg.test_fraction)
    parts = {name: corpus.split(examples, name) for name in corpus.SPLITS}
    empty = [name for name, part in parts.items() if not part]
    if empty:
        raise DataError(f"{path}: no {' or '.join(empty)} examples; give more examples, or a split column with train, val and test")
    parts["train"] = corpus.stratified(parts["train"], cfg.train_limit, seed)
    parts["test"] = corpus.stratified(parts["test"], cfg.test_limit, seed)
    names = corpus.label_names(parts["train"])
    if len(names) < 2:
        raise DataError(f"{path}: the training split has {len(names)} label; a classifier needs two or more")
    max_length = cfg.max_length or DEFAULT_MAX_LENGTH
    tok = tokenizer.train([e.text for e in parts["train"]], vocab_size=cfg.vocab_size or DEFAULT_VOCAB, max_length=max_length)
    splits = {name: _encode(tok, part, names) for name, part in parts.items()}
    digest = hashlib.sha256(json.dumps([sha256_of(path), seed, cfg.val_fraction, cfg.test_fraction, cfg.train_limit,
                                        cfg.test_limit, max_length, cfg.vocab_size]).encode()).hexdigest()[:16]
    return TextDataset(path.name, names, splits["train"], splits["val"], splits["test"], tok.to_str(), max_length, digest)


def _encode(tok, examples: list[corpus.Example], names: list[str]) -> TextSplit:
    texts = [e.text for e in examples]
    return TextSplit(tokenizer.encode(tok, texts), corpus.label_ids(examples, names), texts)
