from __future__ import annotations

import json
import subprocess
import sys

import pytest

from edgekd.device.report.compare import compare_reports, render_markdown


def _report(cpu: str, p50: float, kb: float, top1: float, sha: str = "s" * 64, extra: bool = False) -> dict:
    rows = [{"artifact": "x86-cpu/int8", "p50_ms": p50, "bytes": int(kb * 1024), "top1": top1}]
    if extra:
        rows.append({"artifact": "intel-cpu/fp32", "p50_ms": 1.0, "bytes": 1024, "top1": 0.9})
    return {"schema": "edgekd.report/1", "run": "r", "created": "t", "environment": {"cpu": {"model": cpu}},
            "eval_set": {"sha256": sha}, "rows": rows}


def test_ratios_are_b_over_a_and_top1_delta_in_points():
    result = compare_reports(_report("laptop", 2.0, 40, 0.90), _report("jetson", 5.0, 40, 0.885, extra=True))
    row = result["rows"][0]
    assert row["latency_ratio"] == pytest.approx(2.5) and row["size_ratio"] == pytest.approx(1.0)
    assert row["top1_delta_points"] == pytest.approx(-1.5)
    assert result["unmatched"] == ["intel-cpu/fp32"]
    assert "| x86-cpu/int8 | 2.000 | 5.000 | 2.50x |" in render_markdown(result)


def test_different_eval_sets_hide_the_top1_delta():
    result = compare_reports(_report("a", 1.0, 1, 0.9), _report("b", 1.0, 1, 0.5, sha="t" * 64))
    assert result["rows"][0]["top1_delta_points"] is None
    assert "different evaluation sets" in render_markdown(result)


def test_other_thread_counts_are_said():
    """Trial defect (session 11): two runs differing only in bench.threads (2 vs 1) compared as 0.90x, no word."""
    a, b = _report("a", 1.0, 1, 0.9), _report("a", 1.1, 1, 0.9)
    a["rows"][0]["threads"], b["rows"][0]["threads"] = {"requested": 2, "runtime": 2}, {"requested": 1, "runtime": 1}
    assert "timed with other thread counts in A and B: x86-cpu/int8 (2 vs 1)" in render_markdown(compare_reports(a, b))
    b["rows"][0]["threads"] = {"requested": 2, "runtime": 2}
    assert "thread counts" not in render_markdown(compare_reports(a, b))


def test_compare_cli(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(_report("laptop", 2.0, 40, 0.90)))
    b.write_text(json.dumps(_report("jetson", 1.0, 20, 0.91)))
    done = subprocess.run([sys.executable, "-m", "edgekd", "compare", str(a), str(b), "--markdown", str(tmp_path / "c.md")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "0.50x" in done.stdout and "+1.00" in done.stdout and "on jetson" in done.stdout
    assert (tmp_path / "c.md").read_text().startswith("# edgekd compare")


def _timed(p50: float, rounds: list[float], cv: float = 6.0) -> dict:
    return {"p50_ms": p50, "p10_ms": p50 * 0.5, "p90_ms": p50 * 3, "cv": cv, "round_p50_ms": rounds}


def _with_latency(report: dict, stats: dict) -> dict:
    report["rows"][0]["latency"] = {"batch1": stats}
    return report


def test_a_ratio_inside_the_measured_noise_is_within_noise_not_a_speedup():
    a = _with_latency(_report("a", 0.030, 40, 0.9), _timed(0.030, [0.028, 0.031, 0.045, 0.029, 0.030]))
    b = _with_latency(_report("b", 0.039, 40, 0.9), _timed(0.039, [0.036, 0.040, 0.033, 0.041, 0.039]))
    result = compare_reports(a, b)
    assert result["rows"][0]["latency_separated"] is False
    assert "| within noise (1.30x) |" in render_markdown(result) and "not a measured speed-up" in render_markdown(result)


def test_separated_rounds_keep_the_ratio():
    a = _with_latency(_report("a", 1.0, 40, 0.9), _timed(1.0, [0.98, 1.0, 1.01, 0.99, 1.02], cv=0.02))
    b = _with_latency(_report("b", 2.0, 40, 0.9), _timed(2.0, [1.98, 2.0, 2.01, 2.03, 1.99], cv=0.02))
    result = compare_reports(a, b)
    assert result["rows"][0]["latency_separated"] is True and "| 2.00x |" in render_markdown(result)


def test_without_rounds_the_spread_or_cv_decides():
    from edgekd.device.noise import separated

    assert separated({"p50_ms": 1.0, "p10_ms": 0.9, "p90_ms": 1.1}, {"p50_ms": 1.3, "p10_ms": 1.2, "p90_ms": 1.4}) is True
    assert separated({"p50_ms": 1.0, "p10_ms": 0.5, "p90_ms": 3.0}, {"p50_ms": 1.3, "p10_ms": 0.6, "p90_ms": 4.0}) is False
    assert separated({"p50_ms": 1.0, "cv": 6.0}, {"p50_ms": 1.3, "cv": 5.0}) is False
    assert separated({"p50_ms": 1.0}, {"p50_ms": 1.3}) is None


def test_two_different_runs_on_different_evaluation_sets_are_called_two_models():
    """compare printed ratios for two unrelated models with only "different evaluation sets" as a note."""
    other = {**_report("b", 1.0, 1, 0.5, sha="t" * 64), "run": "another-model"}
    assert "most likely two different models" in render_markdown(compare_reports(_report("a", 1.0, 1, 0.9), other))


def test_reports_of_two_kinds_of_model_are_refused(tmp_path):
    from edgekd import api
    from edgekd.core.errors import ConfigError

    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(_report("laptop", 2.0, 40, 0.90)))
    b.write_text(json.dumps({**_report("laptop", 2.0, 40, 0.90), "task_metric": "mask_iou"}))
    with pytest.raises(ConfigError, match="judged by top1 .* by mask_iou: reports of two kinds of model"):
        api.compare(a, b)


def test_compare_never_replaces_a_users_file_but_replaces_its_own(tmp_path):
    """Trial defect (session 12): --json and --markdown overwrote any file (a bundle's manifest.json, notes, a pipeline
    file); a non-UTF-8 file given as a report was an internal error (exit 3)."""
    from tests.faults.helpers import assert_one_line_error, invoke

    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(_report("laptop", 2.0, 40, 0.90)))
    b.write_text(json.dumps(_report("jetson", 1.0, 20, 0.91)))
    notes, manifest = tmp_path / "notes.txt", tmp_path / "manifest.json"
    notes.write_text("my notes\n")
    manifest.write_text('{"schema": "edgekd.bundle/1"}')
    assert_one_line_error(invoke("compare", a, b, "--markdown", notes), f"--markdown {notes}: exists and is not an "
                          "earlier edgekd compare's")
    assert_one_line_error(invoke("compare", a, b, "--json", manifest), f"--json {manifest}: exists and is not")
    assert notes.read_text() == "my notes\n" and manifest.read_text() == '{"schema": "edgekd.bundle/1"}'
    for _ in range(2):  # its own outputs are replaced on a rerun
        done = invoke("compare", a, b, "--markdown", tmp_path / "c.md", "--json", tmp_path / "c.json")
        assert done.exit_code == 0, done.output
    assert json.loads((tmp_path / "c.json").read_text())["schema"] == "edgekd.compare/1"
    (tmp_path / "pic.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    assert_one_line_error(invoke("compare", a, tmp_path / "pic.png"), "pic.png: not a UTF-8 text file")
    assert_one_line_error(invoke("gate", tmp_path / "pic.png"), "pic.png: not a UTF-8 text file")


def _lm_report(perplexity: float, tokens_per_second: float, p50: float, sha: str = "s" * 64) -> dict:
    row = {"artifact": "x86-cpu/fp32", "bytes": 300 * 1024, "perplexity": perplexity, "tokens_per_second": tokens_per_second,
           "per_token_p50_ms": p50}
    return {"schema": "edgekd.report/1", "run": "lm", "created": "t", "environment": {"cpu": {"model": "c"}},
            "task_metric": "perplexity", "eval_set": {"sha256": sha}, "rows": [row]}


def test_language_model_reports_are_compared_on_perplexity_and_generation_speed():
    """Trial defect (session 13): `edgekd compare` of two language models' reports showed only n/a (their rows hold no
    batch latency nor top-1) instead of perplexity and tokens/s side by side."""
    from edgekd.device.report.compare import render_text

    result = compare_reports(_lm_report(350.0, 20000.0, 0.045), _lm_report(344.0, 22000.0, 0.044))
    row = result["rows"][0]
    assert row["perplexity_delta"] == pytest.approx(-6.0) and row["tokens_per_second_ratio"] == pytest.approx(1.1)
    markdown = render_markdown(result)
    assert "| artifact | perplexity A | perplexity B | delta | tok/s A | tok/s B | B/A | token p50 A (ms) |" in markdown
    assert "| x86-cpu/fp32 | 350.000 | 344.000 | -6.000 | 20000.0 | 22000.0 | 1.10x | 0.045 | 0.044 | 300.0 | 300.0 | 1.00x |" in markdown
    assert "perplexity: lower is better" in render_text(result)
    other = compare_reports(_lm_report(350.0, 20000.0, 0.045), _lm_report(344.0, 22000.0, 0.044, sha="t" * 64))
    assert other["rows"][0]["perplexity_delta"] is None
    assert "perplexity deltas are not shown" in render_text(other)
