"""A user's own save_pretrained BERT classifier on the text path (issue 15): as the teacher (not trained, a bert-half
student distilled from it) and as the model to ship (distill.mode none: export, int8, compile, bench, gate), with
its own tokenizer.json and label order; and the one-line refusals of a folder that cannot be used."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

from edgekd.core.fileio import read_json  # noqa: E402
from edgekd.lang import corpus  # noqa: E402
from tests.faults.helpers import assert_one_line_error, invoke  # noqa: E402
from tests.pipeline.test_text_e2e import FAST_BENCH, TINY  # noqa: E402
from tests.text import tiny_corpus  # noqa: E402

pytestmark = pytest.mark.slow  # a tiny model trained for seconds, then two runs: about a minute on 2 cores
MAX_LENGTH = 32
# Not the corpus' sorted order (doc, games, libs, python): the run must follow the model's config.id2label.
MODEL_LABELS = ["python", "libs", "games", "doc"]


def _train_tiny_classifier(folder: Path) -> Path:
    """A tiny BertForSequenceClassification trained briefly (8 epochs of 240 texts) on the training split, saved as
    a user would: save_pretrained (safetensors) and the tokenizers file beside it."""
    import torch

    from edgekd.lang import text_tokenizer as tokenizer
    from edgekd.text import models, training

    train = [e for e in tiny_corpus.examples() if e.split == "train"]
    tok = tokenizer.train([e.text for e in train], vocab_size=200, max_length=MAX_LENGTH)
    torch.manual_seed(0)
    model = models.classifier(models.config(tok.get_vocab_size(), len(MODEL_LABELS), models.Size(**TINY), max_length=MAX_LENGTH))
    encoded = tokenizer.encode(tok, [e.text for e in train])
    data = training.Encoded(encoded["input_ids"], encoded["attention_mask"], corpus.label_ids(train, MODEL_LABELS))
    training.fit(model, data, data, training.Recipe(epochs=8, batch_size=16, lr=0.005), log=lambda m: None)
    model.config.id2label = dict(enumerate(MODEL_LABELS))
    model.config.label2id = {name: i for i, name in enumerate(MODEL_LABELS)}
    model.save_pretrained(folder)
    tokenizer.save(tok, folder / "tokenizer.json")
    return folder


@pytest.fixture(scope="module")
def given(tmp_path_factory) -> Path:
    """The folder holding the corpus and `my-bert/`, the user's saved classifier."""
    folder = tmp_path_factory.mktemp("text-pretrained")
    tiny_corpus.write(folder / "corpus.jsonl")
    _train_tiny_classifier(folder / "my-bert")
    return folder


def _config(folder: Path, **sections) -> Path:
    config = {"name": "text-given", "seed": 0, "data": {"source": "text", "path": "corpus.jsonl", "max_length": MAX_LENGTH},
              "quantize": {"method": "ptq"}, "targets": ["x86-cpu"], "bench": FAST_BENCH, "gate": {"max_drop": 5.0}, **sections}
    path = folder / "text.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def _as_teacher(folder: Path) -> Path:
    return _config(folder, teachers=[{"arch": "bert", "checkpoint": "my-bert"}], student={"arch": "bert-half"},
                   distill={"temperature": 2.0, "alpha": 0.5, "train": {"epochs": 2, "lr": 0.003, "batch_size": 16}},
                   quantize={"method": "none"})


def _shipped_as_given(folder: Path) -> Path:
    return _config(folder, student={"arch": "bert", "checkpoint": "my-bert"})


def _folder_scores(folder: Path, split: str) -> float:
    """What the saved model scores on a split, computed here with transformers and tokenizers alone."""
    import torch
    from tokenizers import Tokenizer
    from transformers import BertForSequenceClassification

    examples = [e for e in tiny_corpus.examples() if e.split == split]
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    encodings = tok.encode_batch([e.text for e in examples])
    model = BertForSequenceClassification.from_pretrained(str(folder), attn_implementation="eager").eval()
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([e.ids for e in encodings]),
                       attention_mask=torch.tensor([e.attention_mask for e in encodings])).logits
    labels = [model.config.id2label[int(i)] for i in logits.argmax(1)]
    return float(np.mean([label == e.label for label, e in zip(labels, examples)]))


@pytest.fixture(scope="module")
def teacher_run(given):
    result = invoke("run", _as_teacher(given), "--out", given / "run-teacher")
    assert result.exit_code == 0, (result.output, result.exception)
    return given / "run-teacher"


def test_the_folder_is_the_teacher_as_given_and_the_student_distils_from_it(given, teacher_run):
    manifest = read_json(teacher_run / "manifest.json")
    assert all(manifest["stages"][s]["status"] == "done" for s in ("teachers", "distill", "export", "compile", "bench", "gate"))
    (teacher,) = manifest["stages"]["teachers"]["metrics"]["teachers"]
    assert teacher["given"] == str(given / "my-bert") and "history" not in teacher  # taken as it is, not trained
    assert teacher["top1"] == pytest.approx(_folder_scores(given / "my-bert", "val"))
    assert teacher["test_top1"] == pytest.approx(_folder_scores(given / "my-bert", "test"))
    assert teacher["top1"] > 0.5  # four labels (chance 0.25): the brief training means something
    distill = manifest["stages"]["distill"]["metrics"]
    assert distill["params"] < teacher["params"]
    report = read_json(teacher_run / "report.json")
    assert report["references"]["teacher"]["top1"] == pytest.approx(teacher["test_top1"])


def test_the_run_takes_the_folders_tokenizer_and_label_order(given, teacher_run):
    from tokenizers import Tokenizer

    ours = Tokenizer.from_file(str(teacher_run / "01-teachers" / "tokenizer.json"))
    theirs = Tokenizer.from_file(str(given / "my-bert" / "tokenizer.json"))
    assert ours.get_vocab() == theirs.get_vocab()
    bundle = read_json(teacher_run / "bundle" / "x86-cpu" / "manifest.json")
    assert bundle["labels"] == MODEL_LABELS


def test_a_narrower_student_distils_from_the_folder_too(given, tmp_path):
    config = yaml.safe_load(_as_teacher(given).read_text())
    config["student"] = {"arch": "bert", "kwargs": {"hidden": 16, "layers": 1, "heads": 2, "intermediate": 32}}
    (given / "narrow.yaml").write_text(yaml.safe_dump(config))
    result = invoke("run", given / "narrow.yaml", "--out", tmp_path / "run", "--only", "teachers", "--only", "distill")
    assert result.exit_code == 0, (result.output, result.exception)
    stages = read_json(tmp_path / "run" / "manifest.json")["stages"]
    assert stages["distill"]["metrics"]["params"] < stages["teachers"]["metrics"]["teachers"][0]["params"]


def test_the_folder_shipped_as_given_goes_to_export_int8_and_the_bundle(given):
    result = invoke("run", _shipped_as_given(given), "--out", given / "run-shipped")
    assert result.exit_code == 0, (result.output, result.exception)
    run = given / "run-shipped"
    manifest = read_json(run / "manifest.json")
    assert all(manifest["stages"][s]["status"] == "done" for s in
               ("teachers", "distill", "export", "quantize", "compile", "bench", "gate"))
    assert manifest["stages"]["teachers"]["metrics"]["teachers"] == []
    shipped = manifest["stages"]["distill"]["metrics"]
    assert shipped["mode"] == "none" and shipped["val_top1"] == pytest.approx(_folder_scores(given / "my-bert", "val"))
    assert {c["name"] for c in manifest["stages"]["compile"]["metrics"]["targets"]["x86-cpu"]["candidates"]} == {"fp32", "int8"}
    bundle = run / "bundle" / "x86-cpu"
    assert read_json(bundle / "manifest.json")["labels"] == MODEL_LABELS
    vocab = json.loads((bundle / "tokenizer.json").read_text())["model"]["vocab"]
    assert vocab == json.loads((given / "my-bert" / "tokenizer.json").read_text())["model"]["vocab"]
    report = read_json(run / "report.json")
    assert "teacher" not in report["references"] and report["references"]["student_fp32"]["top1"] > 0.5


def _no_safetensors(folder: Path) -> None:
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(b"a pickle: never loaded")


def _wrong_model_type(folder: Path) -> None:
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "gpt2"}))


def _labels(names: list[str]):
    def change(folder: Path) -> None:
        config = json.loads((folder / "config.json").read_text())
        config["id2label"] = {str(i): name for i, name in enumerate(names)}
        config["label2id"] = {name: i for i, name in enumerate(names)}
        (folder / "config.json").write_text(json.dumps(config))
    return change


def _small_vocabulary(folder: Path) -> None:
    """The tokenizer makes ids past the model's embedding table (config vocab_size 20; the tokenizer has more)."""
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "vocab_size": 20}))


def _no_tokenizer(folder: Path) -> None:
    (folder / "tokenizer.json").unlink()


@pytest.mark.parametrize("as_teacher", [True, False], ids=["teacher", "shipped"])
@pytest.mark.parametrize("spoil, message", [
    (_no_safetensors, ".safetensors"),
    (_wrong_model_type, "model_type 'gpt2'"),
    (_labels(["LABEL_0", "LABEL_1", "LABEL_2", "LABEL_3"]), "default names"),
    (_labels(["python", "libs", "games", "sports"]), "'sports'"),
    (_no_tokenizer, "no tokenizer.json"),
    (_small_vocabulary, "vocab_size is 20"),
], ids=["pickle-only", "model-type", "default-labels", "other-labels", "no-tokenizer", "vocabulary"])
def test_a_folder_that_cannot_be_used_is_refused_in_one_line(given, tmp_path, as_teacher, spoil, message):
    tiny_corpus.write(tmp_path / "corpus.jsonl")
    shutil.copytree(given / "my-bert", tmp_path / "my-bert")
    spoil(tmp_path / "my-bert")
    config = _as_teacher(tmp_path) if as_teacher else _shipped_as_given(tmp_path)
    result = invoke("run", config, "--out", tmp_path / "run")
    assert_one_line_error(result, "teachers[0].checkpoint" if as_teacher else "student.checkpoint", message)
    assert not (tmp_path / "run" / "manifest.json").exists()  # refused before the run folder was touched


@pytest.mark.parametrize("change, message", [
    ({"teachers": [{"arch": "bert", "checkpoint": "my-bert", "kwargs": TINY}]}, "teachers[0].kwargs"),
    ({"data": {"source": "text", "path": "corpus.jsonl", "vocab_size": 300}}, "data.vocab_size"),
    ({"data": {"source": "text", "path": "corpus.jsonl", "max_length": 64}}, "data.max_length 64"),
])
def test_keys_the_folder_decides_are_refused(given, tmp_path, change, message):
    tiny_corpus.write(tmp_path / "corpus.jsonl")
    shutil.copytree(given / "my-bert", tmp_path / "my-bert")
    config = yaml.safe_load(_as_teacher(tmp_path).read_text())
    config.update(change)
    (tmp_path / "text.yaml").write_text(yaml.safe_dump(config))
    result = invoke("run", tmp_path / "text.yaml", "--out", tmp_path / "run")
    assert_one_line_error(result, message)
    assert not (tmp_path / "run" / "manifest.json").exists()


def test_shipped_as_given_runs_the_text_stages_and_stage_1_depends_on_the_folder(given):
    from edgekd.pipeline.config import load_config
    from edgekd.pipeline.registry import stage_class

    config = load_config(_shipped_as_given(given))
    assert config.distill.mode == "none"
    stages = [stage_class(config, s) for s in ("teachers", "distill", "export", "quantize")]
    assert [cls.__name__ for cls in stages] == ["TeachersStage", "AsGivenStage", "ExportStage", "QuantizeStage"]
    assert [cls.doer(config).__name__ for cls in stages] == [
        "TextGivenTokenizerStep", "TextAsGivenStep", "TextExportStep", "TextQuantizeStep"]
    # the folder brings the tokenizer: --resume sees it
    assert "student" in stage_class(config, "teachers").sections_for(config)
