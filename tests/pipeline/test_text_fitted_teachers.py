"""Issue 35, text: a TF-IDF + logistic-regression teacher beside the BERT one, fitted by edgekd on the raw training
texts, its outputs cached, the ensemble's weights picked on validation, and the student distilled from the mix
(edgekd/text/fitted_teachers.py, pipeline/stages/text.py); text pipelines given data that is not text, and teachers
that do not read text given texts, are refused in one line."""
from __future__ import annotations

import numpy as np
import pytest
import yaml

pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

from edgekd.core.errors import ConfigError  # noqa: E402
from edgekd.core.fileio import read_json  # noqa: E402
from edgekd.text import fitted_teachers as ft  # noqa: E402
from edgekd.train.config import TeacherConfig  # noqa: E402
from tests.faults.helpers import invoke  # noqa: E402
from tests.pipeline.test_text_e2e import text_config  # noqa: E402
from tests.text import tiny_corpus  # noqa: E402

TFIDF = {"sklearn": [{"TfidfVectorizer": {"ngram_range": [1, 2]}}, {"LogisticRegression": {"C": 10.0, "max_iter": 200}}]}


def test_mix_is_the_log_of_the_weighted_mean_of_probabilities():
    a, b = np.log(np.array([[0.7, 0.3]])), np.log(np.array([[0.1, 0.9]]))
    assert np.allclose(np.exp(ft.mix([a, b], [3.0, 1.0])), [[0.55, 0.45]], atol=1e-6)


def test_weights_are_picked_on_validation():
    labels = np.array([0, 1, 1, 0])
    right = np.log(np.eye(2)[labels] * 0.8 + 0.1)  # always right
    wrong = np.log(np.eye(2)[1 - labels] * 0.9 + 0.05)  # always wrong, and surer
    weights, how = ft.pick_weights([wrong, right], labels, [1.0, 1.0])
    assert ft.top1(ft.mix([wrong, right], weights), labels) == 1.0 and weights[1] > weights[0] and "validation" in how
    equal, _ = ft.pick_weights([right, right], labels, [1.0, 1.0])
    assert equal == [0.5, 0.5]  # a tie goes to equal weights


def test_a_fitted_text_teachers_outputs_are_cached_and_not_refitted(tmp_path, monkeypatch):
    from edgekd.train import teacher_kinds
    from edgekd.train.distill.cache import TeacherLogitCache

    texts = {"train": ["red apple", "green apple", "blue sky", "grey sky"] * 5, "val": ["red apple", "blue sky"],
             "test": ["green apple", "grey sky"]}
    labels = np.array([0, 0, 1, 1] * 5)
    cache, spec = TeacherLogitCache(tmp_path), TeacherConfig(**TFIDF)
    first = ft.fitted_outputs(spec, 1, (texts["train"], labels), texts, 2, 0, cache, "data-1")
    assert not first.cached and first.logits["val"].shape == (2, 2) and ft.top1(first.logits["test"], np.array([0, 1])) == 1.0
    monkeypatch.setattr(teacher_kinds, "fit_teacher", lambda *a, **k: pytest.fail("refitted despite the cache"))
    again = ft.fitted_outputs(spec, 1, (texts["train"], labels), texts, 2, 0, cache, "data-1")
    assert again.cached and np.allclose(again.logits["val"], first.logits["val"], atol=1e-2)  # float16 in the cache


def test_a_text_pipeline_teacher_given_a_table_is_one_line(tmp_path):
    from edgekd.pipeline.config import validate_config
    from tests.tabular.conftest import table_config

    config = table_config()
    config["teachers"].append(TFIDF)
    with pytest.raises(ConfigError) as caught:
        validate_config(config)
    message = str(caught.value)
    assert "teachers[3].sklearn: TfidfVectorizer reads raw texts (data.source text), and data.source is 'csv'" in message
    assert "\n" not in message


@pytest.mark.parametrize("teacher, message", [
    ({"sklearn": "RandomForestClassifier"}, "teachers[1]: on data.source text a teacher beside the BERT one reads raw texts"),
    ({"onnx": "model.onnx"}, "teachers[1].onnx: data.source text distills from a BERT teacher, teachers[0] {arch: bert}"),
])
def test_a_teacher_that_does_not_read_text_beside_bert_is_one_line(tmp_path, teacher, message):
    path = tiny_corpus.write(tmp_path / "corpus.jsonl")
    config = text_config(path)
    config["teachers"].append(teacher)
    (tmp_path / "text.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    result = invoke("run", tmp_path / "text.yaml", "--out", tmp_path / "run")
    assert result.exit_code == 2 and message in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1, result.output


@pytest.mark.slow
def test_the_text_pipeline_distills_bert_and_tfidf_mixed_with_weights_picked_on_validation(tmp_path):
    path = tiny_corpus.write(tmp_path / "corpus.jsonl")
    config = text_config(path)
    config["teachers"].append(TFIDF)
    (tmp_path / "text.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    result = invoke("run", tmp_path / "text.yaml", "--out", tmp_path / "run", "--only", "teachers", "--only", "distill")
    assert result.exit_code == 0, (result.output, result.exception)
    stages = read_json(tmp_path / "run" / "manifest.json")["stages"]
    teachers = stages["teachers"]["metrics"]
    assert [t["kind"] for t in teachers["teachers"]] == ["torch", "sklearn"]
    tfidf = teachers["teachers"][1]
    assert tfidf["estimator"] == "TfidfVectorizer + LogisticRegression" and tfidf["top1"] > 0.5 and not tfidf["cache_hit"]
    ensemble = teachers["ensemble"]
    assert abs(sum(ensemble["weights"]) - 1.0) < 1e-6 and "validation" in ensemble["weights_from"]
    best_member = max(t["top1"] for t in teachers["teachers"])
    assert ensemble["top1"] >= best_member - 1e-9  # the grid holds each member alone, so validation never gets worse
    assert stages["distill"]["metrics"]["loss"]["soft_targets"] == "ensemble of 2 teachers"


def test_out_of_fold_training_outputs_are_keyed_apart_and_not_the_in_sample_ones(tmp_path):
    from edgekd.train.distill.cache import TeacherLogitCache

    texts = {"train": [f"{w} {f}" for w in ("red apple", "blue sky") for f in "abcdefgh"] * 2, "val": ["red apple"],
             "test": ["blue sky"]}
    labels = np.array(([0] * 8 + [1] * 8) * 2)
    cache, spec = TeacherLogitCache(tmp_path), TeacherConfig(**TFIDF)
    in_sample = ft.fitted_outputs(spec, 1, (texts["train"], labels), texts, 2, 0, cache, "data-1")
    held_out = ft.fitted_outputs(spec, 1, (texts["train"], labels), texts, 2, 0, cache, "data-1", out_of_fold=4)
    assert not held_out.cached and held_out.keys["train"] != in_sample.keys["train"]
    assert held_out.keys["val"] == in_sample.keys["val"]  # validation and test: the fit on every training text
    # each training text scored by a fit that did not see it is less sure of its label than the fit that did
    sure = lambda logits: np.exp(logits)[np.arange(len(labels)), labels].mean()  # noqa: E731
    assert sure(held_out.logits["train"]) < sure(in_sample.logits["train"])
    with pytest.raises(ValueError, match="out_of_fold needs texts"):
        ft.fitted_outputs(spec, 1, (texts["train"][:-1], labels[:-1]), texts, 2, 0, cache, "data-2", out_of_fold=4)
