"""Settings a new user gave that a text or language-model run accepted and then ignored, or refused with the wrong words
(trials of text and language-model runs): each is refused in one line naming the key."""
from __future__ import annotations

import pytest

from edgekd.core.errors import ConfigError
from edgekd.pipeline.config import validate_config


def _lm(**sections) -> dict:
    return {"task": "language-model", "data": {"source": "code", "vocab_size": 300, "context": 128},
            "teacher": {"layers": 1, "width": 32, "heads": 2}, "student": {"layers": 1, "width": 16}, **sections}


def test_a_given_teacher_takes_no_sizes_or_training():
    """teacher.checkpoint with layers/width/heads/train: the checkpoint's own sizes were used and the rest ignored."""
    with pytest.raises(ConfigError, match=r"teacher.layers: the teacher's sizes come from teacher.checkpoint .* remove layers, train"):
        validate_config(_lm(teacher={"checkpoint": "t/", "tokenizer": "t/tokenizer.json", "layers": 6, "train": {"steps": 9}}))
    validate_config(_lm(teacher={"checkpoint": "t/", "tokenizer": "t/tokenizer.json"}))  # as given: accepted


def test_distill_top_k_beyond_the_vocabulary_is_refused_before_training():
    """Was an internal error (topk: selected index k out of range) after the teacher had trained."""
    with pytest.raises(ConfigError, match=r"distill.top_k 500 exceeds data.vocab_size 300"):
        validate_config(_lm(distill={"top_k": 500}))


@pytest.mark.parametrize("key, value", [("max_increase", 0.0), ("min_greedy_agreement", 1.0)])
def test_a_classifier_refuses_a_language_models_gate_keys(key, value):
    """A text classifier with gate.max_increase: accepted, unused, and gated on max_drop's default 1 point."""
    raw = {"data": {"source": "digits"}, "teachers": [{"arch": "mlp"}], "student": {"arch": "mlp"}, "gate": {key: value}}
    with pytest.raises(ConfigError, match=rf"gate.{key}: a language model's gate key .* use gate.max_drop"):
        validate_config(raw)


def test_the_api_refuses_a_temperature_without_top_k_as_the_cli_does():
    from edgekd.device.lm_bench import Decoding

    with pytest.raises(ConfigError, match=r"temperature applies to sampling; give top_k too"):
        Decoding(temperature=0.5)
    assert Decoding(top_k=5, temperature=0.5).describe()["temperature"] == 0.5


@pytest.mark.parametrize("data", [{"source": "code"}, {"source": "code", "max_length": 64}])
def test_a_language_models_corpus_without_its_task_says_to_add_it(data):
    """Was "unknown; use digits, ..." (a list without text, csv, parquet), or "data.max_length: ... remove it"."""
    with pytest.raises(ConfigError, match=r"data.source 'code': a language model's corpus; add task: language-model"):
        validate_config({"data": data, "teachers": [{"arch": "mlp"}], "student": {"arch": "mlp"}})


@pytest.mark.parametrize("key, value", [("normalize", "imagenet"), ("scale", "255")])
def test_pixel_keys_on_a_text_source_are_refused(key, value):
    """A trial: data.normalize imagenet on data.source text was accepted and did nothing (resize and color are refused)."""
    raw = {"data": {"source": "text", "path": "texts.jsonl", key: value}, "teachers": [{"arch": "bert"}],
           "student": {"arch": "bert-half"}}
    with pytest.raises(ConfigError, match=rf"data.{key}: applies to images and arrays, not to data.source text"):
        validate_config(raw)


def test_images_on_a_text_bundle_says_it_takes_texts():
    """A trial: --images on a text model's bundle said "the model was built from arrays, not image files"."""
    from edgekd.core.errors import DataError
    from edgekd.data.images import Preprocess

    with pytest.raises(DataError, match=r"a text model's bundle, which takes text, not images; bench it on texts with --texts"):
        Preprocess.from_manifest({"text": {"tokenizer": "tokenizer.json"}, "mean": [], "std": []}, "b/manifest.json")


def test_a_text_teacher_the_run_did_not_train_must_be_clearly_above_chance():
    """A trial: a random save_pretrained BERT (34.7% on 49 validation texts, 4 classes) taught the student with no word;
    the scikit-learn teachers were held to 1/classes only."""
    import numpy as np

    from edgekd.core.errors import StageError
    from edgekd.tasks.text import _clearly_above_chance

    labels = np.repeat(np.arange(4), 12)
    with pytest.raises(StageError, match=r"teachers\[0\]: top-1 34.7% on 48 validation samples, not clearly above chance"):
        _clearly_above_chance("teachers[0]", 0.347, labels, "an untrained model teaches nothing")
    _clearly_above_chance("teachers[0]", 0.80, labels, "")  # a trained one passes
