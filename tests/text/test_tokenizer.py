"""The WordPiece tokenizer: trained on given texts only, saved and loaded as tokenizer.json, numpy encodings of a
fixed length, and no torch anywhere on the way (the device tokenizes raw text with numpy and onnxruntime)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tokenizers")

from edgekd.core.errors import ArtifactError, DataError  # noqa: E402
from edgekd.lang import text_tokenizer as tokenizer  # noqa: E402

TRAIN = ["a library for parsing configuration files", "a game of cards for two players",
         "documentation for the parsing library", "command line tools for files"] * 5


@pytest.fixture(scope="module")
def trained():
    return tokenizer.train(TRAIN, vocab_size=120, min_frequency=1, max_length=8)


def test_encodings_are_fixed_length_int64_with_cls_sep_and_padding(trained):
    encoded = tokenizer.encode(trained, ["parsing files", "a library for parsing configuration files of a game of cards"])
    assert set(encoded) == {"input_ids", "attention_mask"}
    ids, mask = encoded["input_ids"], encoded["attention_mask"]
    assert ids.shape == mask.shape == (2, 8) and ids.dtype == mask.dtype == np.int64
    cls, sep, pad = (trained.token_to_id(t) for t in ("[CLS]", "[SEP]", "[PAD]"))
    assert pad == 0
    assert ids[0, 0] == cls and ids[0, 3] == sep and mask[0].tolist() == [1, 1, 1, 1, 0, 0, 0, 0] and (ids[0, 4:] == pad).all()
    assert ids[1, -1] == sep and mask[1].all()  # truncated, still ends with [SEP]


def test_words_seen_only_outside_training_are_not_in_the_vocabulary(trained):
    assert trained.token_to_id("parsing") is not None
    assert trained.token_to_id("zebra") is None  # the test split's words never leak into the vocabulary


def test_save_and_load_give_the_same_encodings(trained, tmp_path):
    path = tokenizer.save(trained, tmp_path / "tok" / "tokenizer.json")
    loaded = tokenizer.load(path)
    texts = ["parsing the cards", "unknown zebra words"]
    assert all((tokenizer.encode(loaded, texts)[k] == tokenizer.encode(trained, texts)[k]).all() for k in ("input_ids", "attention_mask"))
    assert tokenizer.encode(tokenizer.load(path, max_length=16), texts)["input_ids"].shape == (2, 16)


def test_token_lengths_count_unpadded_tokens_and_leave_padding_on(trained):
    lengths = tokenizer.token_lengths(trained, ["files", "a library for parsing configuration files of a game of cards"])
    assert lengths[0] == 3 and lengths[1] > 8
    assert tokenizer.encode(trained, ["files"])["input_ids"].shape == (1, 8)


def test_bad_tokenizer_files_and_inputs_are_one_line(tmp_path, trained):
    with pytest.raises(ArtifactError, match="tokenizer file not found"):
        tokenizer.load(tmp_path / "absent.json")
    (tmp_path / "broken.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ArtifactError, match=r"broken.json: not a tokenizers JSON file"):
        tokenizer.load(tmp_path / "broken.json")
    with pytest.raises(DataError, match="a list of texts"):
        tokenizer.encode(trained, "one string")
    with pytest.raises(DataError, match="max_length 1"):
        tokenizer.with_length(trained, 1)


def _torchless_env(tmp_path: Path) -> dict[str, str]:
    """As tests/bench/test_bench_without_torch.py: a fake torch that raises first on PYTHONPATH."""
    import os

    blocker = tmp_path / "device-site"
    for name in ("torch", "transformers"):
        (blocker / name).mkdir(parents=True)
        (blocker / name / "__init__.py").write_text(f"raise ImportError('{name} is not installed on this device')\n")
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(blocker), os.environ.get("PYTHONPATH")) if p)}


def test_corpus_and_tokenizer_run_with_torch_blocked(trained, tmp_path):
    saved = tokenizer.save(trained, tmp_path / "tokenizer.json")
    code = ("import sys\n"
            "from edgekd.lang import corpus, text_tokenizer as tokenizer\n"
            f"tok = tokenizer.load({str(saved)!r})\n"
            "out = tokenizer.encode(tok, ['parsing files', 'a game'])\n"
            "corpus.write_snapshot([corpus.Example('t', 'l')], sys.argv[1])\n"
            "assert corpus.load(sys.argv[1])\n"
            "assert not [m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers')]\n"
            "print(out['input_ids'].tolist())\n")
    env = _torchless_env(tmp_path)
    blocked = subprocess.run([sys.executable, "-c", "import torch"], env=env, capture_output=True, text=True)
    assert blocked.returncode != 0 and "not installed on this device" in blocked.stderr  # the blocker blocks
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "c.jsonl")], env=env, capture_output=True, text=True,
                          timeout=120, cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(tokenizer.encode(trained, ["parsing files", "a game"])["input_ids"].tolist())
