"""The text path end to end on a tiny corpus (seconds): data.source text through teachers, distill, export, quantize,
compile, bench and gate with the CLI, then `edgekd bench BUNDLE --texts` on raw texts with torch and transformers
blocked, as on a device that has only tokenizers, numpy and onnxruntime."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

from edgekd.core.fileio import read_json  # noqa: E402
from edgekd.device.bundle import sealed  # noqa: E402
from edgekd.lang import corpus  # noqa: E402
from tests.blocking import CLI_WITHOUT_TORCH  # noqa: E402
from tests.faults.helpers import assert_one_line_error, invoke, subprocess_env  # noqa: E402
from tests.text import tiny_corpus  # noqa: E402

pytestmark = pytest.mark.slow  # two ONNX exports (fused for onnxruntime) and int8 twice: about a minute on 2 cores
TINY = {"hidden": 32, "layers": 2, "heads": 2, "intermediate": 64}
FAST_BENCH = {"eval_samples": 1000, "runs": 5, "min_seconds": 0, "warmup_runs": 1, "warmup_seconds": 0, "rounds": 1,
              "memory": False}


def text_config(corpus_path: Path, **overrides) -> dict:
    config = {"name": "text-tiny", "seed": 0,
              "data": {"source": "text", "path": str(corpus_path), "max_length": 32, "vocab_size": 200},
              "teachers": [{"arch": "bert", "kwargs": TINY, "train": {"epochs": 8, "lr": 0.005, "batch_size": 16}}],
              "student": {"arch": "bert-half"},
              "distill": {"temperature": 2.0, "alpha": 0.5, "train": {"epochs": 3, "lr": 0.003, "batch_size": 16}},
              "quantize": {"method": "ptq"}, "targets": ["x86-cpu"], "bench": FAST_BENCH, "gate": {"max_drop": 5.0}}
    config.update(overrides)
    return config


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("text-e2e")
    path = tiny_corpus.write(folder / "corpus.jsonl")
    config = folder / "text.yaml"
    config.write_text(yaml.safe_dump(text_config(path)), encoding="utf-8")
    result = invoke("run", config, "--out", folder / "run")
    return folder, result


def test_every_stage_runs_and_the_gate_passes(run):
    folder, result = run
    assert result.exit_code == 0, (result.output, result.exception)
    manifest = read_json(folder / "run" / "manifest.json")
    assert all(manifest["stages"][s]["status"] == "done" for s in
               ("teachers", "distill", "export", "quantize", "compile", "bench", "gate")), manifest["stages"].keys()
    assert read_json(folder / "run" / "gate.json")["passed"]
    teachers, distill = manifest["stages"]["teachers"]["metrics"], manifest["stages"]["distill"]["metrics"]
    assert distill["params"] < teachers["teachers"][0]["params"]
    assert distill["test_top1"] > 0.8  # four labels with their own words: far above chance (0.25) after training
    # data.vocab_size 200 on a corpus of a few dozen words: the shortfall is said before training and recorded.
    assert teachers["vocabulary"] < 200 and teachers["vocabulary_note"].startswith("data.vocab_size 200: the tokenizer learned")
    assert "data.vocab_size 200: the tokenizer learned" in result.output


def test_the_onnx_model_takes_ids_and_mask_with_dynamic_batch_and_sequence(run):
    folder, _ = run
    inputs = read_json(folder / "run" / "manifest.json")["stages"]["export"]["metrics"]["inputs"]
    assert [i["name"] for i in inputs] == ["input_ids", "attention_mask"]
    assert all(isinstance(d, str) for i in inputs for d in i["shape"]), inputs  # batch and sequence both symbolic
    # x86-cpu runs onnxruntime: the graph is fused into its BERT operators, one Attention per layer.
    fused = read_json(folder / "run" / "manifest.json")["stages"]["export"]["metrics"]["fused_operators"]
    assert fused["Attention"] == TINY["layers"] // 2 and fused["EmbedLayerNormalization"] == 1, fused


def test_int8_is_chosen_on_validation_and_shipped_when_it_passes(run):
    folder, _ = run
    manifest = read_json(folder / "run" / "manifest.json")
    recipes = manifest["stages"]["quantize"]["metrics"]["recipes"]
    (recipe,) = recipes.values()
    assert recipe["text_int8"] in ("static", "dynamic") and set(recipe["measured"]) == {"static", "dynamic"}
    candidates = manifest["stages"]["compile"]["metrics"]["targets"]["x86-cpu"]["candidates"]
    assert {c["name"] for c in candidates} == {"fp32", "int8"}


def test_the_bundle_carries_the_tokenizer_and_the_report_the_teacher(run):
    folder, _ = run
    bundle = folder / "run" / "bundle" / "x86-cpu"
    manifest = read_json(bundle / "manifest.json")
    assert "tokenizer.json" in {f["path"] for f in manifest["files"]}
    assert manifest["preprocessing"]["text"]["tokenizer"] == "tokenizer.json"
    assert (bundle / "tokenizer.json").read_text() == (folder / "run" / "01-teachers" / "tokenizer.json").read_text()
    report = read_json(folder / "run" / "report.json")
    assert {"teacher", "student_fp32"} <= set(report["references"])


def test_bench_times_text_models_at_their_median_length_too(run):
    """Besides the padded length (max_length), batch 1 at the test texts' median length, unpadded, per artifact."""
    folder, _ = run
    report = read_json(folder / "run" / "report.json")
    timed = [key for row in report["rows"] for key in row.get("latency", {}) if key.startswith("batch1_tokens")]
    assert timed and all(int(key.removeprefix("batch1_tokens")) < 32 for key in timed), timed  # max_length 32
    assert "median length" in (folder / "run" / "report.md").read_text(encoding="utf-8")


def test_device_bench_tokenizes_raw_texts_without_torch(run):
    """On the test split's raw texts, the device's tokenization must reproduce the pipeline's: same top-1 as the
    run's own bench of the same bundle on its eval set (the whole test split)."""
    folder, _ = run
    texts = folder / "test-texts.jsonl"
    corpus.write_snapshot([e for e in tiny_corpus.examples() if e.split == "test"], texts)
    bundle = folder / "run" / "bundle" / "x86-cpu"
    done = subprocess.run([sys.executable, "-c", CLI_WITHOUT_TORCH, "bench", str(bundle), "--texts", str(texts), "--runs", "3",
                           "--min-seconds", "0", "--warmup-runs", "1", "--warmup-seconds", "0", "--rounds", "1",
                           "--no-memory", "--batch", "1", "--json", str(folder / "device.json")],
                          capture_output=True, text=True, env=subprocess_env(), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    device = json.loads((folder / "device.json").read_text())
    built = read_json(folder / "run" / "report.json")
    shipped = next(r for r in built["rows"] if r["target"] == "x86-cpu" and r.get("shipped"))
    assert device["eval_set"]["samples"] == built["eval_set"]["samples"] == 80
    assert device["rows"][0]["top1"] == pytest.approx(shipped["top1"])
    # and on the bundle's own eval.npz (token ids already), the same top-1 again
    done = subprocess.run([sys.executable, "-c", CLI_WITHOUT_TORCH, "bench", str(bundle), "--runs", "3", "--min-seconds", "0",
                           "--warmup-runs", "1", "--warmup-seconds", "0", "--rounds", "1", "--no-memory", "--batch", "1",
                           "--json", str(folder / "device-npz.json")], capture_output=True, text=True, env=subprocess_env(),
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((folder / "device-npz.json").read_text())["rows"][0]["top1"] == pytest.approx(shipped["top1"])


def test_device_bench_texts_refuses_an_unknown_label(run, tmp_path):
    folder, _ = run
    texts = tiny_corpus.write(tmp_path / "odd.jsonl", [corpus.Example("a game of python", "nonsense", "test")])
    result = invoke("bench", folder / "run" / "bundle" / "x86-cpu", "--texts", texts, "--no-memory", "--runs", "1")
    assert result.exit_code == 2 and "'nonsense'" in result.output and "labels" in result.output, result.output


def test_device_bench_texts_gives_advice_that_applies_on_the_device(run, tmp_path):
    """The pipeline's advice (add training examples) means nothing for a bundle: name the file and what can be done."""
    folder, _ = run
    texts = tiny_corpus.write(tmp_path / "odd.jsonl", [corpus.Example("a game of python", "nonsense", "test")])
    result = invoke("bench", folder / "run" / "bundle" / "x86-cpu", "--texts", texts, "--no-memory", "--runs", "1")
    assert_one_line_error(result, f"--texts {texts}", "'nonsense'", "labels of the bundle", "drop those examples")
    assert "training" not in result.output


def test_a_tokenizer_making_ids_past_the_models_vocabulary_is_refused_naming_it(run, tmp_path):
    """A bundle whose tokenizer.json was swapped (manifest re-hashed) once crashed onnxruntime's embedding lookup with
    exit 3 (`InvalidArgument ... input index out of range`); the ids are checked against the recorded vocabulary."""
    from edgekd.core.fileio import file_record, sha256_of, write_json_atomic

    folder, _ = run
    bundle = Path(shutil.copytree(folder / "run" / "bundle" / "x86-cpu", tmp_path / "bundle"))
    swapped = json.loads((bundle / "tokenizer.json").read_text(encoding="utf-8"))
    vocabulary = swapped["model"]["vocab"]
    vocabulary["game"] = len(vocabulary) + 100  # a word of the games texts, now an id past the model's embedding table
    (bundle / "tokenizer.json").write_text(json.dumps(swapped), encoding="utf-8")
    manifest = read_json(bundle / "manifest.json")
    manifest["files"] = [file_record(bundle / e["path"], bundle) if e["path"] == "tokenizer.json" else e for e in manifest["files"]]
    write_json_atomic(bundle / "manifest.json", sealed(manifest))
    assert next(e for e in manifest["files"] if e["path"] == "tokenizer.json")["sha256"] == sha256_of(bundle / "tokenizer.json")
    texts = folder / "test-texts-vocab.jsonl"
    corpus.write_snapshot([e for e in tiny_corpus.examples() if e.split == "test"], texts)
    result = invoke("bench", bundle, "--texts", texts, "--no-memory", "--runs", "1")
    assert_one_line_error(result, str(bundle / "tokenizer.json"), "token ids outside 0..", "not the tokenizer the model was built with")


def test_a_label_only_in_the_test_split_names_the_file_and_split(tmp_path):
    rows = [*tiny_corpus.examples(), corpus.Example("a man page of man pages", "man4", "test", "g-man")]
    path = tiny_corpus.write(tmp_path / "corpus.jsonl", rows)
    config = tmp_path / "text.yaml"
    config.write_text(yaml.safe_dump(text_config(path)), encoding="utf-8")
    result = invoke("run", config, "--out", tmp_path / "run")
    assert_one_line_error(result, f"{path} (test split)", "'man4'", "training labels", "add some to the train split")


def test_openvino_targets_get_nncf_int8_of_the_unfused_graph(tmp_path):
    """intel-cpu runs OpenVINO: the export is left unfused (onnxruntime's BERT operators are its own), int8 is NNCF's
    transformer scheme, and compile builds fp32 and int8 OpenVINO models from them."""
    import onnx

    path = tiny_corpus.write(tmp_path / "corpus.jsonl")
    config = tmp_path / "text.yaml"
    config.write_text(yaml.safe_dump(text_config(path, targets=["intel-cpu"])), encoding="utf-8")
    result = invoke("run", config, "--out", tmp_path / "run")
    assert result.exit_code == 0, (result.output, result.exception)
    manifest = read_json(tmp_path / "run" / "manifest.json")
    assert manifest["stages"]["export"]["metrics"]["fused_operators"].get("Attention", 0) == 0
    (recipe,) = manifest["stages"]["quantize"]["metrics"]["recipes"].values()
    assert recipe["tool"] == "nncf" and set(recipe["measured"]) == {"static"}
    int8 = onnx.load(str(next((tmp_path / "run").glob("04-quantize/*.onnx"))))
    quantized = {n.op_type for n in int8.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "MatMul"} <= quantized, quantized
    candidates = manifest["stages"]["compile"]["metrics"]["targets"]["intel-cpu"]["candidates"]
    assert {"fp32", "int8"} <= {c["name"] for c in candidates}
    assert read_json(tmp_path / "run" / "gate.json")["passed"]


@pytest.mark.parametrize("change, message", [
    ({"student": {"arch": "convnet", "width": 8}}, "student.arch"),
    ({"teachers": [{"arch": "resnet"}]}, "teachers"),
    ({"quantize": {"method": "qat"}}, "quantize.method"),
    ({"data": {"source": "digits", "max_length": 32}}, "data.max_length"),
    ({"data": {"source": "text"}}, "data.path"),
])
def test_unsupported_text_configs_are_one_line(tmp_path, change, message):
    path = tiny_corpus.write(tmp_path / "corpus.jsonl")
    config = tmp_path / "text.yaml"
    config.write_text(yaml.safe_dump(text_config(path, **change)), encoding="utf-8")
    result = invoke("run", config, "--out", tmp_path / "run")
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "run" / "manifest.json").exists()  # refused before the run folder was touched


def test_the_example_config_loads_and_runs_the_text_stages():
    from edgekd.pipeline.config import load_config
    from edgekd.pipeline.registry import stage_class
    from edgekd.pipeline.task import task_for

    config = load_config(Path(__file__).resolve().parents[2] / "configs" / "text.yaml")
    assert task_for(config).name == "text-classification"
    stages = [stage_class(config, s) for s in ("teachers", "distill", "export", "quantize", "compile")]
    assert [cls.__name__ for cls in stages] == ["TeachersStage", "DistillStage", "ExportStage", "QuantizeStage", "CompileStage"]
    assert [cls.doer(config).__name__ for cls in stages] == [  # the text task's own steps, edgekd/tasks/text.py
        "TextTeachersStep", "TextDistillStep", "TextExportStep", "TextQuantizeStep", "CompileStage"]


def test_the_report_has_a_tfidf_logistic_regression_baseline_row(run):
    """Issue 32 item 4: a text run's teacher was 25 points under a TF-IDF baseline and nothing said so. The report
    carries the baseline as a reference row, scored on the same test samples, and it can be the gate's reference."""
    folder, result = run
    report = read_json(folder / "run" / "report.json")
    baseline = report["references"]["tfidf_logreg"]
    assert 0.5 < baseline["top1"] <= 1.0  # four labels with their own words: word counts alone get most of them
    assert "tfidf_logreg (reference)" in (folder / "run" / "report.md").read_text()
