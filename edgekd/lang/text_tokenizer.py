"""A WordPiece tokenizer trained on the training split with Hugging Face `tokenizers`, saved as one
tokenizer.json, and encoding to numpy input_ids / attention_mask. Torch-free: the device bench tokenizes raw
text with this module and onnxruntime alone.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from edgekd.core.errors import ArtifactError, DataError
from edgekd.core.fileio import atomic_path

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]  # BERT's, in BERT's order: [PAD] is id 0


def _missing_tokenizers() -> DataError:
    return DataError("the text path needs Hugging Face tokenizers: pip install 'edgekd[text]' (or tokenizers)")


def train(texts: Iterable[str], vocab_size: int = 8000, min_frequency: int = 2, max_length: int = 128):
    """A BERT-style WordPiece tokenizer (lower-cased, accents stripped, [CLS] text [SEP]) learned from `texts`,
    which must be the training split only: tokens learned from test texts would leak them into the model."""
    try:
        from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors, trainers
        from tokenizers.models import WordPiece
    except ImportError:
        raise _missing_tokenizers() from None
    tokenizer = Tokenizer(WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=SPECIAL_TOKENS,
                                        show_progress=False)
    tokenizer.train_from_iterator(texts, trainer=trainer)
    cls, sep = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    tokenizer.decoder = decoders.WordPiece()
    return with_length(tokenizer, max_length)


def with_length(tokenizer, max_length: int):
    """Pad and truncate every encoding to exactly `max_length` ids, so a batch is one (N, max_length) array."""
    if max_length < 2:
        raise DataError(f"max_length {max_length}: needs room for [CLS] and [SEP]; give 2 or more")
    tokenizer.enable_truncation(max_length=max_length)
    tokenizer.enable_padding(pad_id=tokenizer.token_to_id("[PAD]"), pad_token="[PAD]", length=max_length)
    return tokenizer


def save(tokenizer, path: str | Path) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        tokenizer.save(str(tmp))
    return path


def load(path: str | Path, max_length: int | None = None):
    """A tokenizer.json as saved by `save`; `max_length` overrides the length it was saved with."""
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise _missing_tokenizers() from None
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path}: tokenizer file not found; train one with edgekd.lang.text_tokenizer.train and save it")
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as exc:  # the Rust side raises a bare Exception for every parse error
        raise ArtifactError(f"{path}: not a tokenizers JSON file ({str(exc)[:120]}); regenerate it") from None
    if tokenizer.token_to_id("[PAD]") is None:
        raise ArtifactError(f"{path}: the vocabulary has no [PAD] token; train it with edgekd.lang.text_tokenizer.train")
    length = max_length or (tokenizer.padding or {}).get("length") or (tokenizer.truncation or {}).get("max_length")
    if not length:
        raise ArtifactError(f"{path}: saved without a fixed length; pass max_length")
    return with_length(tokenizer, int(length))


def encode(tokenizer, texts: Sequence[str]) -> dict[str, np.ndarray]:
    """input_ids and attention_mask as (N, max_length) int64 arrays: what the ONNX model's inputs take."""
    if isinstance(texts, str):
        raise DataError("encode takes a list of texts, not one string; wrap it in a list")
    encodings = tokenizer.encode_batch(list(texts))
    return {"input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64)}


def token_lengths(tokenizer, texts: Sequence[str]) -> np.ndarray:
    """Each text's length in tokens including [CLS] and [SEP], before padding and truncation."""
    saved_padding, saved_truncation = tokenizer.padding, tokenizer.truncation
    tokenizer.no_padding()
    tokenizer.no_truncation()
    try:
        return np.array([len(e.ids) for e in tokenizer.encode_batch(list(texts))], dtype=np.int64)
    finally:
        if saved_truncation:
            tokenizer.enable_truncation(max_length=saved_truncation["max_length"])
        if saved_padding:
            tokenizer.enable_padding(pad_id=saved_padding["pad_id"], pad_token=saved_padding["pad_token"],
                                     length=saved_padding["length"])
