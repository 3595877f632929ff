from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from edgekd.core.errors import ArtifactError, ConfigError, DataError
from edgekd.lang.lm_tokenizer import END_OF_TEXT, LMTokenizer, blocks, train_on_corpus, train_tokenizer
from edgekd.lm.corpus import folder_corpus
from tests.blocking import BLOCK_TORCH

pytest.importorskip("tokenizers")

TEXTS = ["def add(a, b):\n    return a + b\n", "class Point:\n    def __init__(self, x):\n        self.x = x\n"] * 20


@pytest.fixture
def tokenizer(tmp_path) -> LMTokenizer:
    return LMTokenizer(train_tokenizer(TEXTS, 300, tmp_path / "tokenizer.json"))


def test_round_trip_is_exact_for_any_text(tokenizer):
    for text in ["def add(a, b):\n    return a + b\n", "  leading spaces\ttabs\r\n", "naïve café → 字 🙂", ""]:
        ids = tokenizer.encode(text)
        assert ids.dtype == np.int32
        assert tokenizer.decode(ids) == text


def test_vocabulary_size_and_merges_learned(tokenizer):
    assert 257 < tokenizer.vocab_size <= 300
    assert tokenizer.eos_id == 0  # the special token comes first
    # learned merges: frequent training text takes fewer tokens than its bytes
    assert len(tokenizer.encode(TEXTS[0])) < len(TEXTS[0].encode()) / 2


def test_documents_are_separated_by_end_of_text(tokenizer):
    stream = tokenizer.encode_documents(["a = 1\n", "b = 2\n"])
    assert (stream == tokenizer.eos_id).sum() == 2 and stream[-1] == tokenizer.eos_id
    assert tokenizer.decode(stream) == f"a = 1\n{END_OF_TEXT}b = 2\n{END_OF_TEXT}"


def test_trained_on_the_train_split_only(tmp_path):
    root = tmp_path / "corpus"
    for index in range(80):
        (root / f"f{index}.txt").parent.mkdir(parents=True, exist_ok=True)
        (root / f"f{index}.txt").write_text("common words here\n" * 5)
    corpus = folder_corpus(root)
    for path in corpus.paths("val") + corpus.paths("test"):
        path.write_text("zyzzyvaquux " * 50)  # frequent in held-out files, absent from train
    tokenizer = LMTokenizer(train_on_corpus(corpus, 400, tmp_path / "tok.json"))
    assert len(tokenizer.encode("zyzzyvaquux")) > 3  # never merged: the tokenizer did not see it
    assert len(tokenizer.encode("common words here")) <= 3


def test_blocks_cut_the_stream_and_drop_the_tail():
    out = blocks(np.arange(23, dtype=np.int32), 5)
    assert out.shape == (4, 5) and out.dtype == np.int32 and out[-1, -1] == 19
    with pytest.raises(DataError, match="no block of 50"):
        blocks(np.arange(23), 50)
    with pytest.raises(ConfigError, match="at least 2"):
        blocks(np.arange(23), 1)


def test_bad_tokenizer_files_and_sizes(tmp_path):
    with pytest.raises(ArtifactError, match="not found"):
        LMTokenizer(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="bad.json: not a tokenizers JSON"):
        LMTokenizer(tmp_path / "bad.json")
    with pytest.raises(ConfigError, match="at least 257"):
        train_tokenizer(TEXTS, 100, tmp_path / "t.json")
    assert not (tmp_path / "t.json").exists()


def test_tokenizer_works_with_torch_blocked(tokenizer):
    """The device side tokenizes prompts without torch or transformers: importing either fails in this child."""
    code = BLOCK_TORCH + textwrap.dedent(f"""
        from edgekd.lang.lm_tokenizer import LMTokenizer
        import edgekd.lang.generate, edgekd.lm.cache, edgekd.lm.corpus
        tok = LMTokenizer({str(tokenizer.path)!r})
        assert tok.decode(tok.encode("return a + b")) == "return a + b"
        try:
            import torch
        except ImportError:
            print("torch blocked")
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "torch blocked" in done.stdout
