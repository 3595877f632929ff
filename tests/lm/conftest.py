"""Small inputs for the language-model tests: a folder corpus of generated text files."""
from __future__ import annotations

from pathlib import Path

import pytest

WORDS = ["alpha", "beta", "gamma", "delta", "import", "return", "def", "class", "self", "value", "print", "lambda"]


def write_corpus(folder: Path, files: int = 60) -> Path:
    """`files` small Python-like files with deterministic, varied content."""
    for index in range(files):
        lines = [f"def function_{index}_{line}(x):\n    return {WORDS[(index + line) % len(WORDS)]} + x * {line}\n"
                 for line in range(1 + index % 7)]
        path = folder / f"pkg{index % 4}" / f"module_{index}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(lines), encoding="utf-8")
    return folder


@pytest.fixture
def text_folder(tmp_path) -> Path:
    return write_corpus(tmp_path / "corpus")
