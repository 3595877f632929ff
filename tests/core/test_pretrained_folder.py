"""The save_pretrained folder checks the text and language-model paths share: config.json of the right model_type,
safetensors weights only."""
from __future__ import annotations

import json

import pytest

from edgekd.core.errors import ModelError
from edgekd.core.pretrained_folder import read_config, require_safetensors


def test_the_config_of_the_supported_model_type_is_read(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "vocab_size": 30}))
    assert read_config(tmp_path, "teacher", "bert", "BERT classifiers")["vocab_size"] == 30


@pytest.mark.parametrize("content, message", [
    (None, "teacher: no config.json"),
    ("{not json", "is not readable JSON"),
    (json.dumps({"model_type": "gpt2"}), "model_type 'gpt2'; only BERT classifiers (model_type 'bert')"),
    (json.dumps([1, 2]), "model_type None"),
])
def test_a_config_that_cannot_be_used_is_one_line(tmp_path, content, message):
    if content is not None:
        (tmp_path / "config.json").write_text(content)
    with pytest.raises(ModelError, match=None) as error:
        read_config(tmp_path, "teacher", "bert", "BERT classifiers")
    assert message in str(error.value) and "\n" not in str(error.value)


def test_pickled_weights_alone_are_refused(tmp_path):
    (tmp_path / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(ModelError, match="no .safetensors"):
        require_safetensors(tmp_path, "teacher")
    (tmp_path / "model.safetensors").write_bytes(b"")
    require_safetensors(tmp_path, "teacher")  # present: accepted (its content is read by transformers later)
