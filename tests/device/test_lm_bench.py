"""`edgekd bench` on language-model bundles (device/lm_bench.py): torch-free generation speed, perplexity on the
bundle's held-out blocks and the bundle's gate; bad bundles and prompt files are one-line errors naming the file."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from tests.blocking import CLI_WITHOUT_TORCH
from tests.faults.helpers import assert_one_line_error

pytest.importorskip("transformers")
pytest.importorskip("onnxruntime")
pytest.importorskip("torch")

from edgekd import api  # noqa: E402
from edgekd.cli import main  # noqa: E402
from edgekd.core.fileio import read_json, sha256_of, write_json_atomic  # noqa: E402
from edgekd.device.bundle import sealed  # noqa: E402
from edgekd.device.lm_bench import Decoding  # noqa: E402
from edgekd.lang.lm_tokenizer import LMTokenizer  # noqa: E402
from edgekd.lang.perplexity import onnx_perplexity  # noqa: E402
from edgekd.runtimes.ort import OnnxDecoder  # noqa: E402
from tests.device.tiny_lm import BENCH, build_lm_run  # noqa: E402


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory):
    return build_lm_run(tmp_path_factory.mktemp("lm-device"))


@pytest.fixture
def run_copy(lm_run, tmp_path):
    return shutil.copytree(lm_run, tmp_path / "run")


def test_a_run_folder_of_lm_bundles_is_benched_and_gated_with_torch_blocked(lm_run, tmp_path):
    out, json_out = tmp_path / "out", tmp_path / "lm.json"
    done = subprocess.run([sys.executable, "-c", CLI_WITHOUT_TORCH, "bench", str(lm_run), "--out", str(out),
                           "--json-out", str(json_out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "x86-cpu/fp32" in done.stdout and "arm64-cpu/int8" in done.stdout and "gate: PASS" in done.stdout
    report = json.loads(json_out.read_text())
    assert report == read_json(out / "report.json") and "| x86-cpu/fp32 * | x86-cpu |" in (out / "report.md").read_text()
    assert report["schema"] == "edgekd.report/1" and report["task_metric"] == "perplexity"  # one schema, edgekd gate reads it
    assert report["decoding"] == {"mode": "greedy"}
    assert report["prompts"]["count"] == BENCH["prompts"] and report["prompts"]["tokens"] == [BENCH["prompt_tokens"]] * 3
    blocks = np.load(lm_run / "bundle" / "x86-cpu" / "eval.npz", allow_pickle=False)["input_ids"]
    for row in report["rows"]:
        # every timing of a batch-1 generation, measured here
        assert row["generations"] == BENCH["prompts"] * BENCH["rounds"] and row["tokens_per_second"] > 0
        assert row["time_to_first_token_ms"] > 0 and 0 < row["per_token_p50_ms"] <= row["per_token_p99_ms"]
        # the perplexity is the bundle's model on its held-out blocks, as a second measurement here finds it
        expected = onnx_perplexity(OnnxDecoder(lm_run / "bundle" / row["target"] / "model.onnx"), blocks)
        assert row["perplexity"] == pytest.approx(expected, abs=1e-3) and row["eval_blocks"] == len(blocks)
        reference = read_json(lm_run / "bundle" / row["target"] / "manifest.json")["eval"]["reference_perplexity"]["student_fp32"]
        assert report["verdict"]["artifacts"][row["artifact"]] == ("PASS" if row["perplexity"] / reference - 1 <= 0.05 else "FAIL")
    fp32 = next(row for row in report["rows"] if row["precision"] == "fp32")
    assert fp32["perplexity"] == pytest.approx(fp32["reference"]["perplexity"], abs=1e-3)  # the reference's own model
    assert report["verdict"]["passed"] is True
    assert {"cpu", "libraries"} <= set(report["environment"]) and "flags" in report["environment"]["cpu"]


def test_top_k_sampling_is_timed_and_recorded(lm_run):
    bundle = lm_run / "bundle" / "x86-cpu"
    report = api.bench(bundle, decoding=Decoding(top_k=5, temperature=0.7, seed=3, new_tokens=6, prompts=2))
    assert report["decoding"] == {"mode": "top-k sampling", "top_k": 5, "temperature": 0.7, "seed": 3}
    (row,) = report["rows"]
    assert report["new_tokens"] == 6 and row["generations"] == 2 and row["tokens_per_second"] > 0


def test_prompts_from_a_texts_file_are_tokenized_with_the_bundle_tokenizer(lm_run, tmp_path):
    texts = tmp_path / "prompts.txt"
    texts.write_text("def function_1(x):\n\n   \nreturn alpha + x * 2\nclass Beta:\n", encoding="utf-8")
    bundle = lm_run / "bundle" / "x86-cpu"
    report = api.bench(bundle, texts=texts)
    tokenizer = LMTokenizer(bundle / "tokenizer.json")
    lines = ["def function_1(x):", "return alpha + x * 2", "class Beta:"]  # blank lines are not prompts
    assert report["prompts"] == {"count": 3, "source": str(texts), "tokens": [len(tokenizer.encode(t)) for t in lines]}
    assert report["rows"][0]["perplexity"] is not None  # still scored on the bundle's held-out blocks


def test_a_failed_gate_exits_1_after_writing_the_report(run_copy, tmp_path):
    """A reference the model cannot come within 5% of (half its own perplexity) fails; the report is still written."""
    bundle = run_copy / "bundle" / "x86-cpu"
    manifest = read_json(bundle / "manifest.json")
    manifest["eval"]["reference_perplexity"]["student_fp32"] /= 2
    write_json_atomic(bundle / "manifest.json", sealed(manifest))
    result = CliRunner().invoke(main, ["bench", str(bundle), "--json", str(tmp_path / "r.json")])
    assert result.exit_code == 1, result.output
    report = read_json(tmp_path / "r.json")
    (check,) = report["verdict"]["checks"]
    assert report["verdict"]["artifacts"] == {"x86-cpu/fp32": "FAIL"} and report["verdict"]["passed"] is False
    assert ": +100.0" in check["reason"] and "(limit +5%)" in check["reason"]  # twice the halved reference
    assert "gate: FAIL (1 failed" in result.output


def test_a_bundle_missing_its_tokenizer_is_one_line_naming_it(run_copy):
    bundle = run_copy / "bundle" / "x86-cpu"
    (bundle / "tokenizer.json").unlink()
    assert_one_line_error(CliRunner().invoke(main, ["bench", str(bundle)]), f"{bundle}: 'tokenizer.json'", "missing")


def test_a_manifest_without_a_tokenizer_entry_is_refused(run_copy):
    bundle = run_copy / "bundle" / "x86-cpu"
    manifest = read_json(bundle / "manifest.json")
    manifest["files"] = [entry for entry in manifest["files"] if entry["path"] != "tokenizer.json"]
    write_json_atomic(bundle / "manifest.json", sealed(manifest))
    assert_one_line_error(CliRunner().invoke(main, ["bench", str(bundle)]), "manifest.json", "lists no tokenizer.json")


def test_a_modified_model_is_refused_before_loading(run_copy):
    bundle = run_copy / "bundle" / "x86-cpu"
    with open(bundle / "model.onnx", "ab") as handle:
        handle.write(b"\0")
    assert_one_line_error(CliRunner().invoke(main, ["bench", str(bundle)]), f"{bundle}: 'model.onnx'", "sha256")


def test_an_empty_prompts_file_is_one_line_naming_it(lm_run, tmp_path):
    texts = tmp_path / "empty.txt"
    texts.write_text("\n  \n", encoding="utf-8")
    result = CliRunner().invoke(main, ["bench", str(lm_run / "bundle" / "x86-cpu"), "--texts", str(texts)])
    assert_one_line_error(result, str(texts), "no prompt")


def test_a_prompt_longer_than_the_context_names_its_line(lm_run, tmp_path):
    texts = tmp_path / "long.txt"
    texts.write_text("short\n" + "alpha beta gamma " * 40 + "\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["bench", str(lm_run / "bundle" / "x86-cpu"), "--texts", str(texts)])
    assert_one_line_error(result, str(texts), "line 2", "context of 32")


def test_a_bundle_without_held_out_blocks_needs_prompts_and_is_not_gated(run_copy, tmp_path):
    """A bundle that carries no held-out blocks (bench.device_blocks 0: eval.npz's input_ids hold none): prompts from
    --texts work, the gate is not evaluated."""
    bundle = run_copy / "bundle" / "x86-cpu"
    _replace_eval(bundle, np.zeros((0, 32), np.int64))
    manifest = read_json(bundle / "manifest.json")
    del manifest["eval"]
    write_json_atomic(bundle / "manifest.json", sealed(manifest))
    assert_one_line_error(CliRunner().invoke(main, ["bench", str(bundle)]), "no held-out blocks", "--texts")
    texts = tmp_path / "p.txt"
    texts.write_text("def f(x):\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["bench", str(bundle), "--texts", str(texts)])
    assert result.exit_code == 0, result.output
    assert "gate: not evaluated" in result.output and "n/a" in result.output


def _replace_eval(bundle, input_ids):
    """eval.npz's held-out blocks replaced, listed with their sha256 as the bundle lists every file."""
    np.savez_compressed(bundle / "eval.npz", input_ids=input_ids, y=np.zeros(1))
    manifest = read_json(bundle / "manifest.json")
    manifest["files"] = [entry | ({"sha256": sha256_of(bundle / "eval.npz")} if entry["path"] == "eval.npz" else {})
                         for entry in manifest["files"]]
    write_json_atomic(bundle / "manifest.json", sealed(manifest))


def test_a_pickled_eval_file_is_refused(run_copy):
    bundle = run_copy / "bundle" / "x86-cpu"
    _replace_eval(bundle, np.array([{"a": 1}], dtype=object))  # even with a matching sha256
    assert_one_line_error(CliRunner().invoke(main, ["bench", str(bundle)]), str(bundle / "eval.npz"), "not a plain .npy")


def test_a_temperature_without_top_k_is_a_usage_error(lm_run):
    result = CliRunner().invoke(main, ["bench", str(lm_run / "bundle" / "x86-cpu"), "--temperature", "0.5"])
    assert result.exit_code == 2 and "--temperature: applies to sampling; give --top-k" in result.output


@pytest.mark.parametrize("args, message", [
    (["--new-tokens", "30"], "context of 32"),
    (["--images", "."], "--texts"),
])
def test_bad_lm_options_are_one_line_errors(lm_run, args, message):
    assert_one_line_error(CliRunner().invoke(main, ["bench", str(lm_run / "bundle" / "x86-cpu"), *args]), message)


def test_lm_options_on_an_image_bundle_are_refused(tiny_bundle):
    assert_one_line_error(CliRunner().invoke(main, ["bench", str(tiny_bundle), "--top-k", "5"]), "language models")


@pytest.mark.parametrize("value", ["NaN", "Infinity"])
def test_a_non_finite_gate_limit_in_the_manifest_is_refused_naming_the_key(run_copy, value):
    """gate.max_increase NaN once gave `gate: FAIL ... (limit +nan%)`: every threshold is checked by one rule set."""
    bundle = run_copy / "bundle" / "x86-cpu"
    manifest = read_json(bundle / "manifest.json")
    manifest["gate"]["max_increase"] = float(value.lower().replace("infinity", "inf"))
    (bundle / "manifest.json").write_text(json.dumps(sealed(manifest)), encoding="utf-8")  # json writes NaN / Infinity as given
    assert value in (bundle / "manifest.json").read_text()
    assert_one_line_error(CliRunner().invoke(main, ["bench", str(bundle)]), str(bundle / "manifest.json"),
                          "gate.max_increase: must be a finite number")


def test_edgekd_gate_reads_the_lm_report_that_bench_wrote(lm_run, tmp_path):
    """`edgekd gate lm-report.json` once answered `not an edgekd report (schema None ...)` though bench wrote it."""
    out = tmp_path / "out"
    bench = CliRunner().invoke(main, ["bench", str(lm_run), "--out", str(out)])
    assert bench.exit_code == 0, bench.output
    report = read_json(out / "report.json")
    assert report["schema"] == "edgekd.report/1" and report["gate"]["max_increase"] == 0.05
    result = CliRunner().invoke(main, ["gate", str(out / "report.json"), "--junit", str(tmp_path / "junit.xml")])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("PASS")]
    assert len(lines) == len(report["rows"]) and all("max_increase" in line and "(limit +5%)" in line for line in lines)
    assert "gate: PASS (2 passed)" in result.output and "testcase" in (tmp_path / "junit.xml").read_text()
    # --max-increase overrides the recorded limit: no model comes out 100% below its reference
    failed = CliRunner().invoke(main, ["gate", str(out / "report.json"), "--max-increase", "0.0"])
    fp32 = next(row for row in report["rows"] if row["precision"] == "fp32")
    assert failed.exit_code in (0, 1) and f"{fp32['artifact']}" in failed.output
    # classifiers' thresholds are refused, not ignored
    assert_one_line_error(CliRunner().invoke(main, ["gate", str(out / "report.json"), "--max-drop", "1"]),
                          "max_drop", "language model's report", "--max-increase")
    refused = CliRunner().invoke(main, ["gate", str(out / "report.json"), "--max-increase", "nan"])
    assert refused.exit_code == 2 and "max_increase: must be a finite number" in refused.output, refused.output


def test_a_language_models_limit_is_refused_for_a_classifiers_report(tiny_bundle, tmp_path):
    report = api.bench(tiny_bundle, runs=3, min_seconds=0, warmup_runs=1, warmup_seconds=0, rounds=1, memory=False)
    write_json_atomic(tmp_path / "report.json", report)
    assert_one_line_error(CliRunner().invoke(main, ["gate", str(tmp_path / "report.json"), "--max-increase", "0.1"]),
                          "max_increase", "gated on top-1")


def test_prompts_from_a_swapped_tokenizer_past_the_vocabulary_are_refused_naming_it(run_copy, tmp_path):
    """The same check as the held-out blocks' (device/token_ids.py), for --texts prompts: no onnxruntime crash."""
    from tokenizers import Tokenizer

    bundle = run_copy / "bundle" / "x86-cpu"
    swapped = Tokenizer.from_file(str(bundle / "tokenizer.json"))
    swapped.add_tokens(["zebra_crossing"])  # one id past the model's vocabulary
    swapped.save(str(bundle / "tokenizer.json"))
    manifest = read_json(bundle / "manifest.json")
    manifest["files"] = [entry | ({"sha256": sha256_of(bundle / "tokenizer.json")} if entry["path"] == "tokenizer.json" else {})
                         for entry in manifest["files"]]
    write_json_atomic(bundle / "manifest.json", sealed(manifest))
    texts = tmp_path / "p.txt"
    texts.write_text("def zebra_crossing(x):\n", encoding="utf-8")
    assert_one_line_error(CliRunner().invoke(main, ["bench", str(bundle), "--texts", str(texts)]),
                          str(bundle / "tokenizer.json"), f"outside 0..{manifest['vocab_size'] - 1}", str(texts))


def test_a_top_k_above_the_vocabulary_is_one_line_naming_the_vocabulary_size(lm_run):
    """Trial defect (session 13): `bench --top-k 513` on a 512-token model stopped with numpy's "kth(=-1) out of
    bounds (512)" as an internal error, from the CLI and from api.bench alike."""
    from edgekd.core.errors import ConfigError
    from edgekd.lang.generate import _choose

    bundle = lm_run / "bundle" / "x86-cpu"
    vocab = read_json(bundle / "manifest.json")["vocab_size"]
    assert_one_line_error(CliRunner().invoke(main, ["bench", str(bundle), "--top-k", str(vocab + 1)]),
                          f"--top-k {vocab + 1}: the model has {vocab} tokens")
    with pytest.raises(ConfigError, match=f"^decoding.top_k=100000: the model has {vocab} tokens .*; give at most {vocab}$"):
        api.bench(bundle, decoding=Decoding(top_k=100000))
    # a decoder whose bundle records no vocabulary size: generate's own check, before numpy's
    with pytest.raises(ConfigError, match="^top_k 9: the model has 8 tokens; give at most 8$"):
        _choose(np.zeros(8, dtype=np.float32), 9, 1.0, np.random.default_rng(0))
    assert _choose(np.arange(8, dtype=np.float32), 8, 1.0, np.random.default_rng(0)) in range(8)


@pytest.mark.parametrize("kwargs, message", [
    ({"new_tokens": 0}, r"Decoding\(new_tokens=0\): give a whole number of 1 or more, or None for the bundle's bench setting"),
    ({"prompts": 0}, r"Decoding\(prompts=0\): give a whole number of 1 or more"),
    ({"top_k": 0}, r"Decoding\(top_k=0\): give a whole number of 1 or more, or None for greedy decoding"),
    ({"top_k": 5, "seed": -1}, r"Decoding\(seed=-1\): give a whole number of 0 or more"),
    ({"top_k": 5, "temperature": 0.0}, r"Decoding\(temperature=0.0\): give a finite number above 0"),
    ({"seed": 3}, r"Decoding\(seed=3\): the seed applies to sampling; give top_k too"),
])
def test_decoding_refuses_what_the_cli_refuses(kwargs, message):
    """Trial defect (session 13): the API took Decoding(new_tokens=0) and Decoding(prompts=0) for the bundle's
    defaults (the CLI refuses 0), and Decoding(top_k=5, seed=-1) stopped with numpy's bare ValueError; a seed
    without top_k was taken and ignored."""
    from edgekd.core.errors import ConfigError

    with pytest.raises(ConfigError, match=f"^{message}"):
        Decoding(**kwargs)


def test_a_seed_without_top_k_is_a_usage_error_and_more_prompts_than_blocks_are_said(lm_run):
    """Trial defect (session 13): `bench --seed 3` without --top-k was taken and ignored (--temperature without
    --top-k is refused), and --prompts 100 on a bundle of fewer held-out blocks silently used fewer."""
    bundle = lm_run / "bundle" / "x86-cpu"
    result = CliRunner().invoke(main, ["bench", str(bundle), "--seed", "3"])
    assert result.exit_code == 2 and "--seed: applies to sampling; give --top-k" in result.output
    report = api.bench(bundle, decoding=Decoding(prompts=100, new_tokens=2))
    used = report["rows"][0]["generations"]
    assert used < 100 and any(w.startswith(f"decoding.prompts=100: {bundle / 'eval.npz'} (held-out test blocks) gives {used} "
                                           f"prompts, so {used} are used; give decoding.prompts={used} or less")
                              for w in report["warnings"]), report["warnings"]
    # Said once in the terminal: the table's notes and then stderr printed every report warning twice.
    shown = CliRunner().invoke(main, ["bench", str(bundle), "--prompts", "100", "--new-tokens", "2"])
    assert shown.exit_code == 0, shown.output
    assert shown.output.count("warning: --prompts 100:") == 1, shown.output


def test_edgekd_gate_takes_min_greedy_agreement_as_the_api_does(lm_run, tmp_path):
    """Trial defect (session 13): api.gate took min_greedy_agreement but `edgekd gate` had no flag for it, and a
    report without the agreement passed without a word of the check."""
    report = api.bench(lm_run / "bundle" / "x86-cpu", decoding=Decoding(new_tokens=2))
    write_json_atomic(tmp_path / "report.json", report)
    result = CliRunner().invoke(main, ["gate", str(tmp_path / "report.json"), "--min-greedy-agreement", "0.9"])
    assert result.exit_code == 0, result.output
    assert "SKIP  x86-cpu/fp32             min_greedy_agreement skipped: the fp32 model's greedy tokens" in result.output
    assert "gate: PASS (1 passed, 1 skipped)" in result.output
    refused = CliRunner().invoke(main, ["gate", str(tmp_path / "report.json"), "--min-greedy-agreement", "2"])
    assert refused.exit_code == 2 and "min_greedy_agreement" in refused.output


def test_edgekd_gate_takes_reference_for_a_language_models_report(lm_run, tmp_path):
    """Trial defect (session 13): `edgekd gate report.json --reference teacher` was refused as "reference: a
    classifier's gate setting", though gate.reference (student_fp32 or teacher) is a language model's config key."""
    report = api.bench(lm_run / "bundle" / "x86-cpu", decoding=Decoding(new_tokens=2))
    write_json_atomic(tmp_path / "report.json", report)
    assert api.gate(tmp_path / "report.json", reference="student_fp32").evaluated == 1
    # this bundle records the student's perplexity only: what is missing is said
    assert_one_line_error(CliRunner().invoke(main, ["gate", str(tmp_path / "report.json"), "--reference", "teacher"]),
                          "x86-cpu/fp32: its bundle records the perplexity of student_fp32 only, not of teacher; "
                          "give --reference one of them")
    report["rows"][0]["reference_perplexities"]["teacher"] = report["rows"][0]["perplexity"] / 2
    write_json_atomic(tmp_path / "with-teacher.json", report)
    checks = api.gate(tmp_path / "with-teacher.json", reference="teacher")
    assert not checks.passed and "vs teacher" in checks[0].reason and "+100.00%" in checks[0].reason


def test_api_bench_errors_name_its_arguments_and_the_cli_its_flags(lm_run, tmp_path):
    """Trial defect (session 14): api.bench's errors named the CLI's flags (--new-tokens, --texts) that api.bench does not
    take (its LM settings are decoding=api.Decoding(...)); they now name decoding.new_tokens and texts=, and the CLI's
    keep naming its flags."""
    from edgekd.core.errors import ConfigError, DataError

    bundle = lm_run / "bundle" / "x86-cpu"
    with pytest.raises(ConfigError, match=r"^decoding.new_tokens=30: with the bundle's prompts of 8 tokens .*context of 32"):
        api.bench(bundle, decoding=Decoding(new_tokens=30))
    assert_one_line_error(CliRunner().invoke(main, ["bench", str(bundle), "--new-tokens", "30"]), "--new-tokens 30: with")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    with pytest.raises(DataError, match=f"^texts={empty}: no prompt in it"):
        api.bench(bundle, texts=empty)
    assert_one_line_error(CliRunner().invoke(main, ["bench", str(bundle), "--texts", str(empty)]), f"--texts {empty}: no prompt")
    with pytest.raises(ConfigError, match=r"^images: .* language model's bundle; give prompts with texts=FILE"):
        api.bench(bundle, images=tmp_path)


def test_the_prompts_of_a_run_folder_are_each_bundles_held_out_blocks(lm_run):
    """Trial defect (session 14): benching a run folder, the header named one bundle's file for all of them ("prompts
    (runs/a/bundle/arm64-cpu/eval.npz ...)")."""
    report = api.bench(lm_run)
    assert len(report["rows"]) > 1 and report["prompts"]["source"] == "each bundle's eval.npz, the same held-out test blocks"
    bundle = lm_run / "bundle" / "x86-cpu"
    assert api.bench(bundle)["prompts"]["source"] == f"{bundle / 'eval.npz'} (held-out test blocks)"  # one: its file
