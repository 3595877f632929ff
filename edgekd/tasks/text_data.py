"""`data.source: text`: a corpus file of text,label as the pipeline's dataset. Splits are the file's `split` column
when it has one, else drawn by group (edgekd.lang.corpus.split_by_group); the WordPiece tokenizer is learned on the
training split, or is the given model's own (a save_pretrained folder, edgekd.text.pretrained); every split is held
tokenized (input_ids, attention_mask), with its texts kept for the bundle.

The same interface as edgekd.data.datasets.Dataset where later stages read it (splits with x and y, classes,
fingerprint, preprocessing), so compile, bench and gate run text models unchanged: x is {input name: array}.
"""
from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgekd.core.errors import DataError
from edgekd.core.fileio import resolve_path, sha256_of
from edgekd.core.metrics import ACCURACY
from edgekd.lang import corpus
from edgekd.lang import text_tokenizer as tokenizer
from edgekd.text import pretrained

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
    vocabulary_note: str = ""  # why the learned vocabulary is smaller than data.vocab_size asked ("" when it is not)
    truncated_share: float = 0.0  # of the training texts, those longer than max_length tokens (cut to their start)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def tokenizer(self):
        from tokenizers import Tokenizer

        return tokenizer.with_length(Tokenizer.from_str(self.tokenizer_json), self.max_length)

    def preprocessing(self) -> dict:
        """What the device does to a raw text before the model: the bundle's tokenizer.json, cut and padded."""
        # vocab_size: the ids the model takes (its tokenizer's vocabulary), so the device refuses a tokenizer that
        # makes others before onnxruntime fails on them (device/token_ids.py).
        return {"text": {"tokenizer": TOKENIZER_FILE, "max_length": self.max_length,
                         "inputs": ["input_ids", "attention_mask"], "lowercase": True,
                         "vocab_size": self.tokenizer().get_vocab_size()}}


def given_model_key(config) -> str | None:
    """The config key naming a save_pretrained folder, if any: the teacher's checkpoint (distilled from), or with
    distill.mode none the student's (shipped as given). None when the run trains its own teacher."""
    if config.teachers and config.teachers[0].checkpoint:
        return "teachers[0].checkpoint"
    if config.distill.mode == "none" and config.student.checkpoint:
        return "student.checkpoint"
    return None


def given_model(config, base_dir: Path | None) -> pretrained.PretrainedFolder | None:
    """The save_pretrained folder the config names (path relative to the config file), checked; None if none."""
    key = given_model_key(config)
    if key is None:
        return None
    value = config.teachers[0].checkpoint if key.startswith("teachers") else config.student.checkpoint
    return pretrained.inspect(resolve_path(Path(value).expanduser(), base_dir), key)


def _how_to_fill(examples: list) -> str:
    """What gives every split examples: with a group column, the splits are drawn by group (every example of a group
    in one split), so a corpus of few groups needs more groups, not more examples of those groups."""
    groups = {e.group for e in examples if e.group}
    if groups and len(groups) < 10:
        return (f"the splits are drawn by its group column, and it has {len(groups)} group(s), each wholly in one split: "
                "give more groups (10 or more), or a split column with train, val and test")
    return "give more examples, or a split column with train, val and test"


def load_text_dataset(cfg, seed: int, base_dir: Path | None = None,
                      given: pretrained.PretrainedFolder | None = None) -> TextDataset:
    """The corpus at data.path, split, tokenized; data.train_limit / test_limit keep a stratified subset. With a
    `given` model (a save_pretrained folder), its tokenizer encodes the texts and its label order is the classes'."""
    path = resolve_path(Path(cfg.path).expanduser(), base_dir)
    examples = corpus.load(path)
    _check_split_column_is_whole(examples, path)
    _warn_of_texts_with_conflicting_labels(examples, path)
    if not all(e.split for e in examples):
        examples = corpus.split_by_group(examples, seed, cfg.val_fraction, cfg.test_fraction)
    parts = {name: corpus.split(examples, name) for name in corpus.SPLITS}
    empty = [name for name, part in parts.items() if not part]
    if empty:
        raise DataError(f"{path}: no {' or '.join(empty)} examples; {_how_to_fill(examples)}")
    for name, key, limit in (("train", "data.train_limit", cfg.train_limit), ("test", "data.test_limit", cfg.test_limit)):
        _check_limit_holds_every_class(parts[name], key, limit, name, path)
        parts[name] = corpus.stratified(parts[name], limit, seed)
    for name in ("val", "test"):
        _warn_of_texts_seen_in_training(parts[name], parts["train"], name, path)
    names = corpus.label_names(parts["train"])
    if len(names) < 2:
        raise DataError(f"{path}: the training split has {len(names)} label; a classifier needs two or more")
    max_length = cfg.max_length or DEFAULT_MAX_LENGTH
    if given:
        names, tok = _given_labels_and_tokenizer(given, names, max_length)
    else:
        texts = [e.text for e in parts["train"]]
        tok = tokenizer.train(texts, vocab_size=cfg.vocab_size or DEFAULT_VOCAB, max_length=max_length)
        note = vocabulary_note(tok, texts, cfg.vocab_size)
        if note and cfg.vocab_size:  # asked for by name: said now; the default's shortfall is only recorded
            warnings.warn(note, stacklevel=1)
    splits = {name: _encode(tok, part, names, f"{path} ({name} split)") for name, part in parts.items()}
    # A given tokenizer and label order change every encoded split and label id: they are part of the dataset.
    model_side = [hashlib.sha256(given.tokenizer_json.encode()).hexdigest(), names] if given else None
    digest = hashlib.sha256(json.dumps([sha256_of(path), seed, cfg.val_fraction, cfg.test_fraction, cfg.train_limit,
                                        cfg.test_limit, max_length, cfg.vocab_size, model_side]).encode()).hexdigest()[:16]
    cut = tokenizer.token_lengths(tok, [e.text for e in parts["train"]]) > max_length
    return TextDataset(path.name, names, splits["train"], splits["val"], splits["test"], tok.to_str(), max_length, digest,
                       vocabulary_note="" if given else note, truncated_share=float(cut.mean()) if cut.size else 0.0)


def _check_split_column_is_whole(examples: list[corpus.Example], path: Path) -> None:
    """A split column given on some rows only is refused rather than thrown away: drawing every split anew would
    move the rows the user put in test into training without a word."""
    given = sum(1 for e in examples if e.split)
    if 0 < given < len(examples):
        first = next(number for number, e in enumerate(examples, start=1) if not e.split)
        raise DataError(f"{path}: example {first} ({examples[first - 1].text[:40]!r}) has no split, while {given} of "
                        f"{len(examples)} examples have one; give every example a split (train, val or test), "
                        "or remove the split column to have the splits drawn")


def _check_limit_holds_every_class(part: list[corpus.Example], key: str, limit: int | None, name: str,
                                   path: Path) -> None:
    """A limit below the split's number of classes would leave some class out of it whatever the draw: refused."""
    classes = len({e.label for e in part})
    if limit and limit < len(part) and limit < classes:
        raise DataError(f"{key} {limit}: the {name} split of {path} has {classes} classes, and a draw of {limit} cannot "
                        f"hold one example of each; give {key} {classes} or more, or remove it")


def _warn_of_texts_with_conflicting_labels(examples: list[corpus.Example], path: Path) -> None:
    """Warn when one text appears under two labels or more. They are kept, as given (the user's labels are the user's
    to fix; corpus.deduplicate drops them only from the Debian corpus it builds): no model can get every copy right,
    so top-1 on them is capped, and the count says how much."""
    labels: dict[str, set[str]] = {}
    for e in examples:
        labels.setdefault(e.text, set()).add(e.label)
    conflicting = [(text, sorted(seen)) for text, seen in labels.items() if len(seen) > 1]
    if conflicting:
        text, seen = conflicting[0]
        warnings.warn(f"{path}: {len(conflicting)} text(s) appear with different labels (e.g. {text[:40]!r} as "
                      f"{', '.join(map(repr, seen[:4]))}); they are kept, each copy with its label, and no model gets "
                      "every copy right: give each text one label, or remove the copies", stacklevel=2)


def _warn_of_texts_seen_in_training(part: list[corpus.Example], train: list[corpus.Example], name: str,
                                    path: Path) -> None:
    """Warn when a given split repeats training texts: the model has learned those answers, so its score on them
    measures memory, not how it does on new texts. (Drawn splits cannot repeat: a text's split is its hash's.)"""
    seen = {e.text for e in train}
    repeated = sum(1 for e in part if e.text in seen)
    if repeated:
        warnings.warn(f"{path}: {repeated} of {len(part)} {name} texts are also in the train split: top-1 on them says "
                      f"nothing about new texts; give the {name} split texts that training lacks", stacklevel=2)


def vocabulary_note(tok, texts: list[str], asked: int | None) -> str:
    """One line when the tokenizer learned fewer tokens than data.vocab_size asks (None: the default), and why:
    WordPiece stops merging when no pair of pieces occurs twice (min_frequency 2) in the training texts, at the
    latest when each of their words is a whole token. The models' embedding tables take the learned size."""
    learned, wanted = tok.get_vocab_size(), asked or DEFAULT_VOCAB
    if learned >= wanted:
        return ""
    words = {word for text in texts for word, _ in tok.pre_tokenizer.pre_tokenize_str(tok.normalizer.normalize_str(text))}
    vocabulary = tok.get_vocab()
    why = (f"each of their {len(words)} distinct words is a whole token already" if all(w in vocabulary for w in words)
           else "no further word piece occurs twice or more in them")
    key = f"data.vocab_size {asked}" if asked else f"data.vocab_size (default {DEFAULT_VOCAB})"
    fix = f"set data.vocab_size to {learned} to say so, or give more training text" if learned >= 100 else "give more training text"
    return f"{key}: the tokenizer learned {learned} tokens from the {len(texts)} training texts, as {why}; the models take {learned}: {fix}"


def _given_labels_and_tokenizer(given: pretrained.PretrainedFolder, names: list[str], max_length: int):
    """The given model's label order and tokenizer, checked against the corpus. The classes take the model's order
    (rather than the classifier's rows being permuted to the corpus'): the model stays as the user saved it, so the
    shipped ONNX file's logits keep its config.id2label order, and the stages after this one read `classes` as always."""
    from tokenizers import Tokenizer

    pretrained.check_labels(given, names)
    try:
        tok = Tokenizer.from_str(given.tokenizer_json)
    except Exception as exc:  # the Rust side raises a bare Exception for every parse error
        raise DataError(f"{given.where}: {pretrained.TOKENIZER_FILE} is not a tokenizers JSON file ({str(exc)[:120]}); "
                        "save the tokenizer with tokenizers' Tokenizer.save") from None
    if tok.token_to_id("[PAD]") is None:
        raise DataError(f"{given.where}: {pretrained.TOKENIZER_FILE} has no [PAD] token; give a BERT-style tokenizer")
    tok = tokenizer.with_length(tok, max_length)
    pretrained.check_vocabulary(given, tok.get_vocab_size(), max_length)
    return list(given.labels), tok


def _encode(tok, examples: list[corpus.Example], names: list[str], where: str) -> TextSplit:
    texts = [e.text for e in examples]
    return TextSplit(tokenizer.encode(tok, texts), corpus.label_ids(examples, names, where), texts)
