"""Byte-level BPE (GPT-2's scheme) trained with Hugging Face `tokenizers` on a corpus' train split only.

Byte-level: any text, in any encoding and with any unseen character, encodes without an unknown token,
and decoding gives back the exact text. Encoding and decoding use `tokenizers` and numpy, never torch,
so the device side can tokenize prompts.
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from edgekd.core.errors import ArtifactError, ConfigError, DataError
from edgekd.core.fileio import atomic_path

END_OF_TEXT = "<|endoftext|>"  # GPT-2's document separator, and the only special token
MIN_VOCAB = 256 + 1            # every byte, plus the separator


def _tokenizers():
    try:
        import tokenizers
    except ImportError:
        raise ConfigError("language models need the `tokenizers` package: pip install 'edgekd[lm]'") from None
    return tokenizers


def train_tokenizer(texts: Iterable[str], vocab_size: int, out_path: str | Path, min_frequency: int = 2) -> Path:
    """Train byte-level BPE on `texts` (the train split: val and test must stay unseen) and save tokenizer.json."""
    if vocab_size < MIN_VOCAB:
        raise ConfigError(f"vocab_size {vocab_size}: must be at least {MIN_VOCAB} (256 bytes and {END_OF_TEXT})")
    tk = _tokenizers()
    tokenizer = tk.Tokenizer(tk.models.BPE())
    # add_prefix_space=False: a file's first word encodes as it is written; decoding then gives the file back exactly.
    tokenizer.pre_tokenizer = tk.pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = tk.decoders.ByteLevel()
    trainer = tk.trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=[END_OF_TEXT],
                                     initial_alphabet=tk.pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(texts, trainer=trainer)
    out_path = Path(out_path)
    with atomic_path(out_path) as tmp:
        tokenizer.save(str(tmp))
    return out_path


def train_on_corpus(corpus, vocab_size: int, out_path: str | Path) -> Path:
    """A tokenizer from `corpus`' train split only: val and test perplexities then measure text it never saw."""
    return train_tokenizer(corpus.texts("train"), vocab_size, out_path)


class LMTokenizer:
    """A saved tokenizer.json: text to int32 ids and back, with numpy only."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise ArtifactError(f"{self.path}: tokenizer file not found; train one with train_tokenizer or give its tokenizer.json")
        try:
            self._tokenizer = _tokenizers().Tokenizer.from_file(str(self.path))
        except Exception as exc:  # tokenizers raises a bare Exception for any malformed file
            raise ArtifactError(f"{self.path}: not a tokenizers JSON file ({str(exc).splitlines()[0][:120]})") from None
        eos = self._tokenizer.token_to_id(END_OF_TEXT)
        if eos is None:
            raise ArtifactError(f"{self.path}: has no {END_OF_TEXT} token; use a tokenizer trained by edgekd or GPT-2's")
        self.eos_id = int(eos)

    @property
    def vocab_size(self) -> int:
        return self._tokenizer.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str) -> np.ndarray:
        return np.asarray(self._tokenizer.encode(text, add_special_tokens=False).ids, dtype=np.int32)

    def decode(self, ids: Iterable[int]) -> str:
        return self._tokenizer.decode([int(i) for i in ids], skip_special_tokens=False)

    def count(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def encode_documents(self, texts: Iterable[str]) -> np.ndarray:
        """Documents as one stream, each followed by the separator, as the model sees them in training."""
        parts = []
        for text in texts:
            parts.append(self.encode(text))
            parts.append(np.asarray([self.eos_id], dtype=np.int32))
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32)


def blocks(stream: np.ndarray, block_length: int) -> np.ndarray:
    """A token stream cut into (n, block_length) non-overlapping training blocks; the incomplete tail is dropped.

    A block is both input and target: position t is trained to predict token t + 1 of the same block."""
    if block_length < 2:
        raise ConfigError(f"block_length {block_length}: must be at least 2 (an input token and the next one)")
    n = len(stream) // block_length
    if n == 0:
        raise DataError(f"{len(stream)} tokens make no block of {block_length}; use more text or a shorter block_length")
    return np.ascontiguousarray(np.asarray(stream[: n * block_length], dtype=np.int32).reshape(n, block_length))
