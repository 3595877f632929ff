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


def _config(tmp_path, **changes) -> str:
    write_corpus(tmp_path / "corpus")
    path = tmp_path / "lm.yaml"
    path.write_text(yaml.safe_dump({**CONFIG, **changes}), encoding="utf-8")
    return str(path)


def test_a_language_model_runs_end_to_end(tmp_path):
    from edgekd.lm.evaluate import onnx_perplexity
    from edgekd.lm.generate import OnnxDecoder, generate
    from edgekd.lm.tokenizer import LMTokenizer

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
    x86 = compiled["x86-cpu"]["candidates"]
    if compiled["x86-cpu"]["chosen"] == "int8":  # never slower than fp32 where this machine can time the target
        assert x86["int8"]["val_tokens_per_second"] >= x86["fp32"]["val_tokens_per_second"]
    else:
        assert "slower" in compiled["x86-cpu"]["reason"] or "over the limit" in compiled["x86-cpu"]["reason"]
    assert "val_tokens_per_second" not in compiled["arm64-cpu"]["candidates"]["int8"]  # an ARM board is timed on the board

    for target in ("x86-cpu", "arm64-cpu"):
        bundle = run_dir / "bundle" / target
        manifest = read_json(bundle / "manifest.json")
        assert manifest["task"] == "language-model" and manifest["context"] == 32
        assert all(sha256_of(bundle / name) == digest for name, digest in manifest["files"].items())
        # The bundle alone generates text: its model and tokenizer, no torch needed for these two.
        tokenizer, decoder = LMTokenizer(bundle / "tokenizer.json"), OnnxDecoder(bundle / "model.onnx")
        tokens = generate(decoder, tokenizer.encode("def function_1"), 6).tokens
        assert len(tokens) == 6 and isinstance(tokenizer.decode(tokens), str)
        # Held-out test blocks for the device, with the gate and its reference measured on exactly those blocks.
        assert manifest["files"]["eval_blocks.npy"] == sha256_of(bundle / "eval_blocks.npy")
        eval_blocks = np.load(bundle / "eval_blocks.npy", allow_pickle=False)
        assert eval_blocks.dtype == np.int32 and eval_blocks.shape[1] == 32 and manifest["eval"]["blocks"] == len(eval_blocks)
        fp32_ppl = onnx_perplexity(OnnxDecoder(run_dir / "03-export" / "student-fp32.onnx"), eval_blocks)
        assert manifest["eval"]["reference_perplexity"]["student_fp32"] == pytest.approx(fp32_ppl, abs=1e-3)
        assert manifest["gate"] == {"max_increase": 0.05, "reference": "student_fp32"} and manifest["bench"]["new_tokens"] == 8

    report = read_json(run_dir / "lm-report.json")
    rows = {row["target"]: row for row in report["rows"]}
    assert rows["x86-cpu"]["tokens_per_second"] > 0 and rows["x86-cpu"]["time_to_first_token_ms"] > 0
    assert rows["arm64-cpu"]["tokens_per_second"] is None  # an ARM board's speed is not measured on this machine
    reference = report["references"]["student_fp32"]["perplexity"]
    verdict = read_json(run_dir / "gate.json")
    assert {c["artifact"] for c in verdict["checks"]} == {row["artifact"] for row in report["rows"]}
    for check in verdict["checks"]:  # each verdict follows from the measured perplexities
        row = next(r for r in report["rows"] if r["artifact"] == check["artifact"])
        assert check["passed"] == (row["perplexity"] / reference - 1 <= 0.05)
    assert verdict["passed"] == all(c["passed"] for c in verdict["checks"])
    assert "| x86-cpu/" in (run_dir / "report.md").read_text() and "max_increase: " in (run_dir / "gate-summary.md").read_text()

    again = run_from_file(str(tmp_path / "lm.yaml"), str(run_dir), resume=True)
    assert set(again.outcomes.values()) == {"up to date"}

    # On the device, torch absent: the run's bundles benched and gated from what they carry.
    done = subprocess.run([sys.executable, "-c", CLI_WITHOUT_TORCH, "bench", str(run_dir), "--json", str(tmp_path / "device.json")],
                          capture_output=True, text=True, timeout=300)
    device = read_json(tmp_path / "device.json")
    assert done.returncode == (0 if device["gate"]["passed"] else 1), done.stderr[-2000:]
    assert {row["target"] for row in device["rows"]} == {"x86-cpu", "arm64-cpu"}
    for row in device["rows"]:
        assert row["tokens_per_second"] > 0 and row["gate"] in ("PASS", "FAIL") and row["eval_blocks"] == report["test_blocks"]
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
    report = read_json(run_dir / "lm-report.json")
    assert report["rows"][0]["perplexity"] > report["references"]["teacher"]["perplexity"]
    assert verdict["passed"] is False and "FAIL" in verdict["summary"]


def test_targets_outside_onnxruntime_are_refused_before_training(tmp_path):
    with pytest.raises(TargetError, match="intel-cpu: language models run on onnxruntime"):
        run_from_file(_config(tmp_path, targets=["intel-cpu"], quantize={"method": "dynamic"}), str(tmp_path / "run"))
    assert not (tmp_path / "run" / "01-teachers").exists()


@pytest.mark.parametrize("change, message", [
    ({"student": {"layers": 3, "width": 32}}, "not smaller than the teacher"),
    ({"bench": {"prompt_tokens": 30, "new_tokens": 8}}, "exceed data.context 32"),
    ({"data": {"source": "folder"}}, "data.path"),
    ({"distill": {"temprature": 2.0}}, "temprature"),
])
def test_bad_language_model_configs_are_one_line_errors(tmp_path, change, message):
    with pytest.raises(ConfigError, match=message):
        run_from_file(_config(tmp_path, **change), str(tmp_path / "run"))


def test_the_score_is_one_over_perplexity():
    from edgekd.pipeline.task import TASKS

    logits = np.zeros((2, 5, 7))  # uniform over 7 tokens: perplexity 7
    assert TASKS["language-model"].score(logits, np.ones((2, 5), dtype=int)) == pytest.approx(1 / 7)
    assert json.dumps(TASKS["language-model"].input_spec(None))
