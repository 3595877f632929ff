"""Trial defects of session 14 in a language model's run: what its report, bundles and `edgekd compare` say about it.
One tiny run (seconds of training) is shared by the tests that only read it."""
from __future__ import annotations

import shutil

import pytest
import yaml

pytest.importorskip("transformers")
pytest.importorskip("torch")

from edgekd.core.fileio import read_json  # noqa: E402
from edgekd.pipeline.runner import run_from_file  # noqa: E402
from tests.lm.conftest import write_corpus  # noqa: E402
from tests.pipeline.lm.test_lm_pipeline import CONFIG  # noqa: E402

RUN = {**CONFIG, "data": {**CONFIG["data"], "test_blocks": 0}, "targets": ["x86-cpu", "intel-cpu"],
       "quantize": {"method": "nbits4", "per_target": {"intel-cpu": "ov_int4"}},
       "bench": {**CONFIG["bench"], "device_blocks": 4}}


def _write(folder, **changes) -> str:
    write_corpus(folder / "corpus")
    path = folder / "lm.yaml"
    path.write_text(yaml.safe_dump({**RUN, **changes}), encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lm-trial14")
    run_from_file(_write(folder), str(folder / "run"))
    return folder / "run"


def test_a_build_report_and_a_device_report_of_its_bundle_are_compared_on_the_bundles_blocks(lm_run, tmp_path):
    """Trial defect (session 14): `edgekd compare RUN/report.json DEVICE.json` of a copied LM bundle always warned
    "different runs measured on different evaluation sets: most likely two different models" and showed no perplexity
    delta: the bundle recorded no run (the device report was named after the bundle's grandparent folder), and the
    device measures the bundle's bench.device_blocks while the build report measured every test block."""
    from edgekd.device.lm_bench import bench_lm_bundles
    from edgekd.device.report.compare import compare_reports, render_text

    build = read_json(lm_run / "report.json")
    assert build["eval_set"]["samples"] > 4 and build["bundle_eval_set"]["samples"] == 4
    copied = shutil.copytree(lm_run / "bundle" / "x86-cpu", tmp_path / "device" / "models" / "x86-cpu")
    assert read_json(copied / "manifest.json")["run"] == "tiny-lm"
    device = bench_lm_bundles([copied])
    assert device["run"] == "tiny-lm"
    comparison = compare_reports(build, device)
    assert comparison["same_eval_set"] and comparison["same_run"]
    row = next(r for r in comparison["rows"] if r["artifact"] == "x86-cpu/" + device["rows"][0]["precision"])
    shipped = next(r for r in build["rows"] if r["artifact"] == row["artifact"])
    assert row["perplexity_a"] == shipped["bundle_eval"]["perplexity"] != shipped["perplexity"]
    assert row["perplexity_delta"] == pytest.approx(0, abs=1e-3)
    text = render_text(comparison)
    assert "most likely two different models" not in text and "deltas are not shown" not in text
    assert "A's values are on its bundles' evaluation set (4 of its" in text


def test_the_report_shows_how_each_int8_candidate_was_quantized(lm_run):
    """Trial defect (session 14): a 4-bit model was labelled "int8" with its method nowhere in report.md/html (only
    the manifest said ov_int4), and the group size NNCF used was not recorded (null: the default)."""
    report = read_json(lm_run / "report.json")
    rows = {row["artifact"]: row for row in report["rows"]}
    assert rows["intel-cpu/int8"]["precision"] == "int8"  # the candidate's name stays
    assert rows["intel-cpu/int8"]["quantization"] == "ov_int4"
    assert rows["intel-cpu/int8"]["quantization_settings"] == {"weight_bits": 4, "mode": "int4_sym", "group_size": 32,
                                                               "ratio": 1.0}
    assert rows["x86-cpu/int8"]["quantization"] == "nbits4" and rows["x86-cpu/int8"]["quantization_settings"]["weight_bits"] == 4
    assert rows["x86-cpu/fp32"]["quantization"] == "none"
    table = (lm_run / "report.md").read_text()
    assert "| int8 (ov_int4: 4-bit, group 32) |" in table and "| int8 (nbits4: 4-bit, block 32) |" in table
    assert read_json(lm_run / "04-quantize" / ".." / "manifest.json")["stages"]["quantize"]["metrics"]["targets"][
        "intel-cpu"]["group_size"] == 32


def _other_ids(tokenizer: dict) -> dict:
    """The tokenizer with its ids (but the special tokens') reversed: as many tokens, each read as another id."""
    special = {token["id"] for token in tokenizer["added_tokens"]}
    ids = sorted(i for i in tokenizer["model"]["vocab"].values() if i not in special)
    other = dict(zip(ids, reversed(ids)))
    vocab = {token: other.get(i, i) for token, i in tokenizer["model"]["vocab"].items()}
    return {**tokenizer, "model": {**tokenizer["model"], "vocab": vocab}}


def test_a_given_teacher_read_with_another_tokenizer_is_measured_and_a_student_beating_it_is_said(lm_run, tmp_path,
                                                                                                   capfd):
    """Trial defect (session 14): a given teacher checkpoint with a tokenizer of the same vocabulary size that is not
    its own was accepted silently (teacher perplexity 132 against 114 with its own; the student, 98, beat it;
    warnings []). Its validation perplexity is now printed before distillation, and a student ending below its
    teacher is warned of (terminal and report)."""
    import json

    (tmp_path / "wrong.json").write_text(json.dumps(_other_ids(read_json(lm_run / "01-teachers" / "tokenizer.json"))))
    shutil.copytree(lm_run / "01-teachers" / "teacher", tmp_path / "teacher")
    config = _write(tmp_path, teacher={"checkpoint": "teacher", "tokenizer": "wrong.json"}, targets=["x86-cpu"],
                    quantize={"method": "none"}, distill={**RUN["distill"], "alpha": 0.0})
    with pytest.warns(UserWarning, match="a teacher worse than its student: check teacher.tokenizer is the checkpoint's own"):
        ctx = run_from_file(config, str(tmp_path / "run"))
    printed = capfd.readouterr().err
    teacher = ctx.manifest.metrics("teachers")["teacher"]
    assert f"[teachers] teacher.checkpoint 'teacher' with teacher.tokenizer 'wrong.json': validation perplexity " \
           f"{teacher['val_perplexity']:.2f}" in printed
    report = read_json(tmp_path / "run" / "report.json")
    assert any("a teacher worse than its student" in w for w in report["warnings"])
    assert "a teacher worse than its student" in (tmp_path / "run" / "report.md").read_text()


def test_the_report_says_how_the_student_was_distilled(lm_run):
    """Trial defect (session 14): the report never said which distillation mode trained the student (mode and steps
    were in the manifest only)."""
    report = read_json(lm_run / "report.json")
    assert report["distill"] == {"mode": "token", "steps": {"token": RUN["distill"]["train"]["steps"], "sequence": 0}}
    assert f"distill.mode token ({RUN['distill']['train']['steps']} token-level steps)" in (lm_run / "report.md").read_text()


def test_a_perplexity_no_better_than_a_uniform_guess_is_warned():
    """Trial defect (session 14): a sequence-mode student at perplexity 989, worse than a uniform guess over its 512
    tokens, passed the gate (relative to its own fp32 version) with no warning."""
    from edgekd.device.report.build import generation_report

    def report(perplexity: float) -> dict:
        rows = [{"artifact": "x86-cpu/fp32", "target": "x86-cpu", "precision": "fp32", "shipped": True, "perplexity": perplexity,
                 "bytes": 1, "tokens_per_second": 10.0}]
        return generation_report("r", rows, {"student_fp32": {"perplexity": perplexity}}, {"samples": 4}, {}, [], "the test split",
                                 8, 1, {"mode": "greedy"}, None, vocab_size=512)

    warned = [w for w in report(989.4)["warnings"] if "no better than guessing" in w]
    assert len(warned) == 1 and "student_fp32 989.4, x86-cpu/fp32 989.4" in warned[0] and "vocabulary size 512" in warned[0]
    assert not any("guessing" in w for w in report(141.5)["warnings"])


def test_a_vocab_size_other_than_the_given_tokenizers_is_refused_before_anything_runs(lm_run, tmp_path):
    """Trial defect (session 14): data.vocab_size 1024 with a given teacher tokenizer of 512 tokens was ignored without
    a word (the metrics said 512)."""
    from edgekd.core.errors import ConfigError
    from edgekd.pipeline.config import load_config
    from edgekd.tasks.lm_train import LMTeachersStep

    shutil.copytree(lm_run / "01-teachers", tmp_path / "given")
    given = {"checkpoint": "given/teacher", "tokenizer": "given/tokenizer.json"}
    size = read_json(lm_run / "manifest.json")["stages"]["teachers"]["metrics"]["tokenizer"]["vocab_size"]
    config = _write(tmp_path, teacher=given, data={**RUN["data"], "vocab_size": 1024})
    with pytest.raises(ConfigError) as raised:
        run_from_file(config, str(tmp_path / "run"))
    assert str(raised.value) == (f"data.vocab_size 1024: teacher.tokenizer 'given/tokenizer.json' has {size} tokens, which "
                                 "the models take (data.vocab_size sizes a tokenizer trained here); set data.vocab_size to "
                                 f"{size} or leave it out")
    assert not (tmp_path / "run").exists()
    for data in ({**RUN["data"], "vocab_size": size}, {k: v for k, v in RUN["data"].items() if k != "vocab_size"}):
        LMTeachersStep.check(load_config(_write(tmp_path, teacher=given, data=data)), tmp_path)  # its own size, or none


def test_a_group_size_the_width_cannot_take_and_too_many_sequence_prompts_stop_before_the_teacher_trains(tmp_path,
                                                                                                        monkeypatch):
    """Trial defect (session 14): quantize.openvino.group_size 64 with a student 32 wide was refused only at stage 4, and
    distill.sequence.prompts above the train split's blocks (5000 > 1592) only at stage 2: both after the teacher had
    trained. The group size is now checked with the config, the prompts as soon as the train blocks exist."""
    import edgekd.lm.training
    from edgekd.core.errors import ConfigError

    def no_training(*args, **kwargs):
        raise AssertionError("the teacher trained before the config was checked")

    monkeypatch.setattr(edgekd.lm.training, "train_lm", no_training)
    config = _write(tmp_path, quantize={"method": "none", "per_target": {"intel-cpu": "ov_int4"}, "openvino": {"group_size": 64}})
    with pytest.raises(ConfigError, match=r"^quantize.openvino.group_size 64: the student's width 32 \(student.width\) is "
                                          r"not a multiple of it.*use a divisor of 32"):
        run_from_file(config, str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()
    sequence = {"prompts": 100000, "prompt_tokens": 8, "new_tokens": 8}
    config = _write(tmp_path, distill={"mode": "both", "sequence": sequence, "train": RUN["distill"]["train"]})
    with pytest.raises(ConfigError, match=r"^distill.sequence.prompts: 100000 prompts asked, but the train split has only "):
        run_from_file(config, str(tmp_path / "run"))
    assert read_json(tmp_path / "run" / "manifest.json")["stages"]["teachers"]["status"] == "failed"
