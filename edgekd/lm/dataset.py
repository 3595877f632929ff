"""A language model's data in a run: the corpus split by file, and its token blocks once the run has a tokenizer.

ctx.dataset is an LMDataset for `task: language-model` (the task's load_dataset): listing the corpus is cheap
and checks the folder before anything trains; blocks are encoded on first use and kept for the process.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from edgekd.core.errors import DataError
from edgekd.core.fileio import resolve_path
from edgekd.lang.generation_bench import held_out_prompts
from edgekd.lang.lm_tokenizer import LMTokenizer, blocks
from edgekd.lm.corpus import SPLITS, Corpus, folder_corpus, stdlib_corpus


@dataclass
class LMDataset:
    corpus: Corpus
    context: int
    tokenizer_path: Optional[Path] = None  # the run's tokenizer.json (made by its first stage), for Task.evaluation_set
    _blocks: dict = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        return self.corpus.source

    @property
    def fingerprint(self) -> str:
        return self.corpus.file_list_sha256

    def blocks(self, tokenizer_path: Path, split: str) -> np.ndarray:
        """(n, context) token blocks of `split`, encoded with the run's tokenizer (once per tokenizer file)."""
        key = (str(tokenizer_path), split)
        if key not in self._blocks:
            stream = LMTokenizer(tokenizer_path).encode_documents(self.corpus.texts(split))
            if len(stream) < self.context:
                raise DataError(too_small(self.corpus, split, len(stream), self.context))
            self._blocks[key] = blocks(stream, self.context)
        return self._blocks[key]

    def check_splits(self, tokenizer_path: Path) -> None:
        """Every split makes at least one block: checked once the tokenizer exists and before any training, so a
        split too small for data.context stops the run in seconds, not after the teacher has trained."""
        for split in SPLITS:
            self.blocks(tokenizer_path, split)


def too_small(corpus: Corpus, split: str, tokens: int, context: int) -> str:
    """Which files of which split are too short for one block, and the two ways out (keys a user can set)."""
    files = corpus.files[split]
    fraction = corpus.fractions[SPLITS.index(split)]
    if not fraction:  # no file can land in it: more text or a shorter context would not help
        return (f"{corpus.root}: data.fractions {list(corpus.fractions)} gives the {split} split nothing, and every split "
                f"needs at least one block of data.context {context}; give it a fraction above 0 (e.g. [0.8, 0.1, 0.1])")
    shown = ", ".join(files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
    return (f"{corpus.root} ({split} split: {len(files)} file{'s' if len(files) != 1 else ''}, {shown}): {tokens} tokens "
            f"make no block of data.context {context}; add text to the corpus (a file's split is a hash of its path) "
            "or lower data.context")


def load_lm_dataset(data_config, base_dir: Path, tokenizer_path: Optional[Path] = None) -> LMDataset:
    if data_config.source == "code":
        corpus = stdlib_corpus(data_config.fractions)
    else:
        corpus = folder_corpus(resolve_path(data_config.path, base_dir), data_config.fractions)
    return LMDataset(corpus, data_config.context, tokenizer_path)


def prompts(test_blocks: np.ndarray, count: int, tokens: int) -> list[np.ndarray]:
    """Held-out prompts: the first `tokens` of `count` test blocks spread evenly over the split (the device's
    `edgekd bench` draws its prompts from a bundle's blocks with the same function)."""
    return held_out_prompts(test_blocks, count, tokens)


def device_blocks(test_blocks: np.ndarray, count: int) -> np.ndarray:
    """The `count` test blocks a bundle carries for the device, spread evenly over the split."""
    rows = np.unique(np.linspace(0, len(test_blocks) - 1, min(count, len(test_blocks))).astype(int))
    return test_blocks[rows]
