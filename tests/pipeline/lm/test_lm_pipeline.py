"""A language model through the whole pipeline on a tiny corpus (seconds of training): tokenizer and teacher,
KD student from the top-k cache, ONNX decoder with a KV cache, int8 per target, bundles with tokenizer.json,
torch-free bench and the perplexity gate."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import yaml

pytest.importorskip("transformers")
pytest.importorskip("torch")

from edgekd.core.errors import ConfigError, TargetError  # noqa: E402
from edgekd.core.fileio import read_json, sha256_of  # noqa: E402
from edgekd.pipeline.runner import run_from_file  # noqa: E402
from tests.blocking import CLI_WITHOUT_TORCH  # noqa: E402
from tests.lm.conftest import write_corpus  # noqa: E402

CONFIG = {
    "name": "tiny-lm", "task": "language-model",
    "data": {"source": "folder", "path": "corpus", "vocab_size": 300, "context": 32, "val_blocks": 8, "test_blocks": 8},
    "teacher": {"layers": 2, "width": 64, "heads": 2, "train": {"steps": 30, "lr": 0.003, "batch_size": 8}},
    "student": {"layers": 1, "width": 32},
    "distill": {"top_k": 8, "train": {"steps": 20, "lr": 0.003, "batch_size": 8}},
    "quantize": {"method": "dynamic", "per_target": {"arm64-cpu": "nbits8"}},
    "targets": ["x86-cpu", "arm64-cpu"],
    "bench": {"prompts": 3, "prompt_tokens": 8, "new_tokens": 8},
    "gate": {"max_increase": 0.05},
}


def _config(tmp_path, corpus=True, **changes) -> str:
    """The config with `changes`, written beside a fresh corpus (corpus False: the one already there, unchanged)."""
    if corpus:
        write_corpus(tmp_path / "corpus")
    path = tmp_path / "lm.yaml"
    path.write_text(yaml.safe_dump({**CONFIG, **changes}), encoding="utf-8")
    return str(path)


def test_a_language_model_runs_end_to_end(tmp_path):
    from edgekd.lang.generate import generate
    from edgekd.lang.lm_tokenizer import LMTokenizer
    from edgekd.lang.perplexity import onnx_perplexity
    from edgekd.runtimes.ort import OnnxDecoder

    run_dir = tmp_path / "run"
    ctx = run_from_file(_config(tmp_path), str(run_dir))
    assert all(ctx.manifest.stage(s)["status"] == "done" for s in ctx.outcomes) and len(ctx.outcomes) == 7

    teacher = ctx.manifest.metrics("teachers")["teacher"]
    student = ctx.manifest.metrics("distill")["student"]
    assert student["params"] < teacher["params"] and student["layers"] == 1
    assert student["val_perplexity"] < 300  # learned something: a uniform guess over 300 tokens scores 300

    quantized = ctx.manifest.metrics("quantize")["targets"]
    assert quantized["x86-cpu"]["method"] == "dynamic" and quantized["arm64-cpu"]["method"] == "nbits8"

    compiled = ctx.manifest.metrics("compile")["targets"]
    # the image pipeline's selection rows (pipeline/selection.choose), int8 first
    x86 = {row["name"]: row for row in compiled["x86-cpu"]["candidates"]}
    assert [row["name"] for row in compiled["x86-cpu"]["candidates"]] == ["int8", "fp32"]
    if compiled["x86-cpu"]["chosen"] == "int8":  # faster than fp32 beyond noise where this machine can time the target
        assert "faster than fp32" in x86["int8"]["verdict"]
    else:
        assert x86["int8"]["verdict"].startswith(("within noise of fp32", "slower than fp32", "val perplexity"))
    arm = {row["name"]: row for row in compiled["arm64-cpu"]["candidates"]}
    assert "p50_ms" not in arm["int8"] and "val_tokens_per_second" not in arm["int8"]  # an ARM board is timed on the board

    for target in ("x86-cpu", "arm64-cpu"):
        bundle = run_dir / "bundle" / target
        manifest = read_json(bundle / "manifest.json")
        assert manifest["schema"] == "edgekd.bundle/1" and manifest["task"] == "language-model" and manifest["context"] == 32
        assert all(sha256_of(bundle / entry["path"]) == entry["sha256"] for entry in manifest["files"])
        # The bundle alone generates text: its model and tokenizer, no torch needed for these two.
        tokenizer, decoder = LMTokenizer(bundle / "tokenizer.json"), OnnxDecoder(bundle / "model.onnx")
        tokens = generate(decoder, tokenizer.encode("def function_1"), 6).tokens
        assert len(tokens) == 6 and isinstance(tokenizer.decode(tokens), str)
        # Held-out test blocks for the device, with the gate and its reference measured on exactly those blocks.
        eval_blocks = np.load(bundle / "eval.npz", allow_pickle=False)["input_ids"]
        assert eval_blocks.shape[1] == 32 and manifest["eval"]["blocks"] == len(eval_blocks)
        fp32_ppl = onnx_perplexity(OnnxDecoder(run_dir / "03-export" / "student-fp32.onnx"), eval_blocks)
        assert manifest["eval"]["reference_perplexity"]["student_fp32"] == pytest.approx(fp32_ppl, abs=1e-3)
        assert manifest["gate"] == {"max_increase": 0.05, "reference": "student_fp32", "min_greedy_agreement": None}
        assert manifest["bench"]["new_tokens"] == 8 and manifest["gate_on_bench"] and manifest["task_metric"] == "perplexity"

    report = read_json(run_dir / "report.json")  # edgekd.report/1, as the classifiers' (one schema)
    assert report["schema"] == "edgekd.report/1" and report["task_metric"] == "perplexity"
    rows = {row["target"]: row for row in report["rows"] if row["shipped"]}
    assert rows["x86-cpu"]["tokens_per_second"] > 0 and rows["x86-cpu"]["time_to_first_token_ms"] > 0
    assert rows["arm64-cpu"]["tokens_per_second"] is None  # an ARM board's speed is not measured on this machine
    reference = report["references"]["student_fp32"]["perplexity"]
    verdict = read_json(run_dir / "gate.json")
    assert {c["artifact"] for c in verdict["checks"]} == {row["artifact"] for row in report["rows"] if row["shipped"]}
    # every candidate has a row, the one not shipped too, each with the compile stage's verdict (a trial: missing)
    assert all(row["verdict"] for row in report["rows"]) and any(not row["shipped"] for row in report["rows"])
    # ... and its test perplexity (a trial: None, "only shipped models are measured")
    assert all(row["perplexity"] > 1 for row in report["rows"])
    for check in verdict["checks"]:  # each verdict follows from the measured perplexities
        row = next(r for r in report["rows"] if r["artifact"] == check["artifact"])
        assert check["passed"] == (row["perplexity"] / reference - 1 <= 0.05)
    assert verdict["passed"] == all(c["passed"] for c in verdict["checks"])
    assert "| x86-cpu/" in (run_dir / "report.md").read_text() and "| max_increase |" in (run_dir / "gate-summary.md").read_text()
    assert "testcase" in (run_dir / "gate-junit.xml").read_text()  # the generic gate stage: JUnit too

    again = run_from_file(str(tmp_path / "lm.yaml"), str(run_dir), resume=True)
    assert set(again.outcomes.values()) == {"up to date"}

    # On the device, torch absent: the run's bundles benched and gated from what they carry.
    done = subprocess.run([sys.executable, "-c", CLI_WITHOUT_TORCH, "bench", str(run_dir), "--json", str(tmp_path / "device.json")],
                          capture_output=True, text=True, timeout=300)
    device = read_json(tmp_path / "device.json")
    assert done.returncode == (0 if device["verdict"]["passed"] else 1), done.stderr[-2000:]
    assert {row["target"] for row in device["rows"]} == {"x86-cpu", "arm64-cpu"}
    for row in device["rows"]:
        assert row["tokens_per_second"] > 0 and row["eval_blocks"] == report["eval_set"]["samples"]
        assert device["verdict"]["artifacts"][row["artifact"]] in ("PASS", "FAIL")
        # the bundles carry every test block bench measured (at most 8 here): the device finds the pipeline's perplexity
        assert row["perplexity"] == pytest.approx(rows[row["target"]]["perplexity"], abs=1e-3)
        if row["precision"] == "fp32":  # the shipped fp32 model is the reference's own: no increase
            assert row["perplexity"] == pytest.approx(row["reference"]["perplexity"], abs=1e-3)


def test_a_gate_that_cannot_pass_fails_on_perplexity(tmp_path):
    """The teacher as reference with no increase allowed: a smaller student trained for seconds cannot match it."""
    run_dir = tmp_path / "run"
    config = _config(tmp_path, targets=["x86-cpu"], quantize={"method": "none"}, gate={"max_increase": 0.0, "reference": "teacher"})
    ctx = run_from_file(config, str(run_dir))
    verdict = ctx.gate_verdict()
    report = read_json(run_dir / "report.json")
    assert report["rows"][0]["perplexity"] > report["references"]["teacher"]["perplexity"]
    assert verdict["passed"] is False and "FAIL" in verdict["summary"]


def test_an_openvino_target_ships_ir_chosen_on_validation_perplexity(tmp_path):
    from edgekd.lang.generate import generate
    from edgekd.lang.lm_tokenizer import LMTokenizer
    from edgekd.runtimes.openvino import OpenVinoDecoder
    from edgekd.runtimes.registry import load_decoder

    run_dir = tmp_path / "run"
    quantize = {"method": "dynamic", "per_target": {"intel-cpu": "ov_int4"}, "openvino": {"group_size": 16}}
    ctx = run_from_file(_config(tmp_path, targets=["x86-cpu", "intel-cpu"], quantize=quantize), str(run_dir))
    assert all(ctx.manifest.stage(s)["status"] == "done" for s in ctx.outcomes)

    quantized = ctx.manifest.metrics("quantize")["targets"]["intel-cpu"]
    assert quantized["method"] == "ov_int4" and quantized["runtime"] == "openvino" and quantized["mode"] == "int4_sym"
    assert (quantized["fp32_file"], quantized["file"]) == ("student-fp32-ov.xml", "student-ov_int4.xml")
    assert ctx.manifest.metrics("quantize")["targets"]["x86-cpu"]["method"] == "dynamic"

    compiled = ctx.manifest.metrics("compile")["targets"]["intel-cpu"]
    int8, fp32 = compiled["candidates"]
    assert compiled["backend"] == "openvino" and fp32["path"].endswith("student-fp32-ov.xml") and int8["path"].endswith(".xml")
    within = int8["val_perplexity"] <= fp32["val_perplexity"] * 1.05
    faster = "faster than fp32" in int8["verdict"]  # intel-cpu is timed here (OpenVINO's CPU plugin)
    assert "p50_ms" in int8 and compiled["chosen"] == ("int8" if within and faster else "fp32"), int8["verdict"]

    bundle = run_dir / "bundle" / "intel-cpu"
    manifest = read_json(bundle / "manifest.json")
    assert manifest["runtime"] == "openvino" and manifest["artifact"]["main"] == "model.xml"
    assert {e["path"] for e in manifest["files"]} == {"model.xml", "model.bin", "tokenizer.json", "eval.npz", "README.md"}
    assert all(sha256_of(bundle / entry["path"]) == entry["sha256"] for entry in manifest["files"])
    decoder = load_decoder(bundle / "model.xml")
    assert isinstance(decoder, OpenVinoDecoder) and decoder.context == 32
    tokenizer = LMTokenizer(bundle / "tokenizer.json")
    assert len(generate(decoder, tokenizer.encode("def function_1"), 6).tokens) == 6
    # the device's `edgekd bench` runs the IR too, and scores it as the build machine did on the same blocks
    from edgekd.device.lm_bench import bench_lm_bundles
    from edgekd.lang.perplexity import onnx_perplexity

    device_row = bench_lm_bundles([bundle])["rows"][0]
    eval_blocks = np.load(bundle / "eval.npz", allow_pickle=False)["input_ids"]
    assert device_row["perplexity"] == pytest.approx(onnx_perplexity(decoder, eval_blocks), rel=1e-4)
    assert device_row["tokens_per_second"] > 0 and device_row["reference"]["perplexity"] > 1
    assert device_row["bytes"] == (bundle / "model.xml").stat().st_size + (bundle / "model.bin").stat().st_size

    rows = {row["target"]: row for row in read_json(run_dir / "report.json")["rows"] if row["shipped"]}
    assert rows["intel-cpu"]["runtime"] == "openvino" and rows["x86-cpu"]["runtime"] == "onnxruntime"
    assert rows["intel-cpu"]["tokens_per_second"] > 0 and rows["intel-cpu"]["perplexity"] > 1
    assert rows["intel-cpu"]["model"] == ("student-ov_int4" if compiled["chosen"] == "int8" else "student-fp32-ov")
    assert "greedy_agreement_with_fp32" in rows["intel-cpu"]
    again = run_from_file(str(tmp_path / "lm.yaml"), str(run_dir), resume=True)
    assert set(again.outcomes.values()) == {"up to date"}


def test_targets_outside_onnxruntime_and_openvino_are_refused_before_training(tmp_path):
    with pytest.raises(TargetError, match="nvidia-gpu: language models run on onnxruntime or OpenVINO"):
        run_from_file(_config(tmp_path, targets=["nvidia-gpu"], quantize={"method": "dynamic"}), str(tmp_path / "run"))
    assert not (tmp_path / "run" / "01-teachers").exists()


SEQUENCE = {"prompts": 6, "prompt_tokens": 8, "new_tokens": 16, "batch_size": 4}


def test_the_distill_stage_trains_on_teacher_sequences_alone_then_mixed_with_token_kd(tmp_path):
    """mode sequence: every step on the teacher's greedy continuations; then mode both on the same run folder:
    the teacher is up to date, its continuations are read back from the cache, and half the steps are token KD."""
    from edgekd.lm.models import load_pretrained, torch_greedy
    from edgekd.tasks.lm import teacher_dir

    run_dir, only = tmp_path / "run", ["teachers", "distill"]
    ctx = run_from_file(_config(tmp_path, distill={"mode": "sequence", "sequence": SEQUENCE,
                                                   "train": {"steps": 12, "lr": 0.003, "batch_size": 4}}), str(run_dir), only=only)
    metrics = ctx.manifest.metrics("distill")
    assert metrics["mode"] == "sequence" and metrics["steps"] == {"token": 0, "sequence": 12} and "topk_cache" not in metrics
    cached = metrics["sequence_cache"]
    assert cached["decoding"] == "greedy" and cached["prompts"] == 6 and cached["new_tokens"] == 16
    assert metrics["student"]["val_perplexity"] < 300 and not (run_dir / "02-distill" / "topk").exists()
    entry = run_dir / "02-distill" / "sequences" / cached["key"]
    tokens = np.load(entry / "tokens.npy", allow_pickle=False)
    teacher = load_pretrained(teacher_dir(ctx))
    assert tokens.shape == (6, 24) and tokens[1, 8:].tolist() == torch_greedy(teacher, tokens[1, :8], 16)
    written = (entry / "tokens.npy").stat().st_mtime_ns

    ctx = run_from_file(_config(tmp_path, corpus=False, distill={"mode": "both", "top_k": 8, "sequence": {**SEQUENCE, "share": 0.25},
                                                   "train": {"steps": 12, "lr": 0.003, "batch_size": 4}}),
                        str(run_dir), resume=True, only=only)
    assert ctx.outcomes["teachers"] == "up to date" and ctx.outcomes["distill"] != "up to date"
    metrics = ctx.manifest.metrics("distill")
    assert metrics["mode"] == "both" and metrics["steps"] == {"token": 9, "sequence": 3}
    assert metrics["sequence_cache"]["key"] == cached["key"] and (entry / "tokens.npy").stat().st_mtime_ns == written  # reused
    assert metrics["topk_cache"]["blocks"] == 9 * 4 and metrics["student"]["val_perplexity"] < 300


def test_sampled_teacher_sequences_are_recorded_as_such(tmp_path):
    run_dir = tmp_path / "run"
    ctx = run_from_file(_config(tmp_path, distill={"mode": "sequence", "sequence": {**SEQUENCE, "top_k": 4, "temperature": 0.8},
                                                   "train": {"steps": 4, "lr": 0.003, "batch_size": 4}}),
                        str(run_dir), only=["teachers", "distill"])
    cached = ctx.manifest.metrics("distill")["sequence_cache"]
    assert cached["decoding"] == "top-k sampling" and cached["top_k"] == 4 and cached["temperature"] == 0.8


@pytest.mark.parametrize("targets, quantize, message", [
    (["intel-cpu"], {"method": "none", "per_target": {"intel-cpu": "dynamic"}}, r"quantize.per_target.intel-cpu: dynamic is not for"),
    (["x86-cpu"], {"method": "none", "per_target": {"x86-cpu": "ov_int8"}}, r"quantize.per_target.x86-cpu: ov_int8 is not for"),
    (["x86-cpu", "arm64-cpu"], {"method": "ov_int4"}, "quantize.method ov_int4: not a method for any"),
])
def test_a_method_for_another_runtime_is_refused_before_training(tmp_path, targets, quantize, message):
    with pytest.raises(ConfigError, match=message):
        run_from_file(_config(tmp_path, targets=targets, quantize=quantize), str(tmp_path / "run"))
    assert not (tmp_path / "run" / "01-teachers").exists()


def test_compression_without_nncf_is_refused_before_training(tmp_path, monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "nncf" else find_spec(name, *a))
    with pytest.raises(TargetError, match="NNCF, which is not installed"):
        run_from_file(_config(tmp_path, targets=["intel-cpu"], quantize={"method": "ov_int8"}), str(tmp_path / "run"))
    assert not (tmp_path / "run" / "01-teachers").exists()


def test_each_target_gets_a_method_for_its_runtime():
    from edgekd.quant.config import DecoderQuantizeConfig as LMQuantizeConfig

    mixed = LMQuantizeConfig(method="nbits4", per_target={"intel-cpu": "ov_int4"})
    assert mixed.method_for("x86-cpu", "ort") == "nbits4" and mixed.method_for("intel-cpu", "openvino") == "ov_int4"
    assert LMQuantizeConfig(method="nbits4").method_for("intel-cpu", "openvino") == "ov_int8"  # the runtime's default
    assert LMQuantizeConfig(method="ov_int4").method_for("arm64-cpu", "ort-arm64") == "dynamic"
    assert LMQuantizeConfig(method="none").method_for("intel-cpu", "openvino") == "none"


@pytest.mark.parametrize("change, message", [
    ({"student": {"layers": 3, "width": 32}}, "not smaller than the teacher"),
    ({"bench": {"prompt_tokens": 30, "new_tokens": 8}}, "exceed data.context 32"),
    ({"data": {"source": "folder"}}, "data.path"),
    ({"distill": {"temprature": 2.0}}, "temprature"),
    ({"distill": {"mode": "sequential"}}, r"invalid value for 'distill.mode'.*'token', 'sequence' or 'both'"),
    ({"distill": {"mode": "sequence", "sequence": {"prompt_tokens": 16, "new_tokens": 24}}},
     "distill.sequence: prompt_tokens 16 \\+ new_tokens 24 exceed data.context 32"),
    ({"distill": {"mode": "sequence", "sequence": {"new_tokens": 0}}}, "invalid value for 'distill.sequence.new_tokens'"),
    ({"distill": {"mode": "sequence", "sequence": {"top_k": 0}}}, "invalid value for 'distill.sequence.top_k'"),
    ({"distill": {"mode": "both", "sequence": {"share": 1.0}}}, "invalid value for 'distill.sequence.share'"),
    ({"distill": {"mode": "sequence", "sequence": {"prompt_tokens": 8, "new_tokens": 8, "temprature": 1.0}}},
     "unknown key 'distill.sequence.temprature'; did you mean 'temperature'"),
    ({"distill": {"sequence": {"prompts": 8}}}, "distill.sequence: set only with distill.mode sequence or both"),
    ({"distill": {"mode": "sequence", "alpha": 0.9, "sequence": {"prompt_tokens": 8, "new_tokens": 8}}},
     "distill.alpha: a token-level KD setting, unused with distill.mode sequence"),
    ({"distill": {"mode": "sequence", "sequence": {"share": 0.5, "prompt_tokens": 8, "new_tokens": 8}}},
     "distill.sequence.share: mode sequence trains every step"),
    ({"distill": {"mode": "both", "sequence": {"temperature": 0.7, "prompt_tokens": 8, "new_tokens": 8}}},
     "distill.sequence.temperature: only with distill.sequence.top_k"),
])
def test_bad_language_model_configs_are_one_line_errors(tmp_path, change, message):
    with pytest.raises(ConfigError, match=message) as raised:
        run_from_file(_config(tmp_path, **change), str(tmp_path / "run"))
    assert "\n" not in str(raised.value) and not (tmp_path / "run").exists()


def test_too_many_sequence_prompts_stop_the_distill_stage_with_the_key(tmp_path):
    """The number of training blocks is known only once the tokenizer exists: a one-line error from the stage."""
    config = _config(tmp_path, distill={"mode": "sequence", "sequence": {**SEQUENCE, "prompts": 100000}})
    with pytest.raises(ConfigError, match=r"distill.sequence.prompts: 100000 prompts asked, but the train split has only \d+ blocks"):
        run_from_file(config, str(tmp_path / "run"), only=["teachers", "distill"])


def test_the_score_is_one_over_perplexity():
    from edgekd.pipeline.task import task_named

    logits = np.zeros((2, 5, 7))  # uniform over 7 tokens: perplexity 7
    assert task_named("language-model").score(logits, np.ones((2, 5), dtype=int)) == pytest.approx(1 / 7)
    assert json.dumps(task_named("language-model").input_spec(None))


def test_a_split_too_small_for_one_block_is_refused_before_the_teacher_trains(tmp_path, monkeypatch):
    """It once said `25 tokens make no block of 32; ... a shorter block_length` (no file, no split, no such key), and
    only after the teacher had trained on the other splits."""
    import edgekd.lm.training
    from edgekd.core.errors import DataError
    from edgekd.lm.corpus import split_of

    config = _config(tmp_path)
    test_files = sorted(p for p in (tmp_path / "corpus").rglob("*.py")
                        if split_of(p.relative_to(tmp_path / "corpus").as_posix()) == "test")
    assert test_files
    for path in test_files:
        path.write_text("x = 1\n", encoding="utf-8")

    def no_training(*args, **kwargs):
        raise AssertionError("the teacher trained before the corpus was checked")

    monkeypatch.setattr(edgekd.lm.training, "train_lm", no_training)
    with pytest.raises(DataError) as raised:
        run_from_file(config, str(tmp_path / "run"))
    message = str(raised.value)
    assert str(tmp_path / "corpus") in message and "(test split:" in message and test_files[0].name in message
    assert "make no block of data.context 32" in message and "lower data.context" in message
    assert "block_length" not in message and "\n" not in message
