from __future__ import annotations

import json
import subprocess
import sys

import pytest

from edgekd.bench.compare import compare_reports, render_markdown


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


def test_compare_cli(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(_report("laptop", 2.0, 40, 0.90)))
    b.write_text(json.dumps(_report("jetson", 1.0, 20, 0.91)))
    done = subprocess.run([sys.executable, "-m", "edgekd", "compare", str(a), str(b), "--markdown", str(tmp_path / "c.md")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "0.50x" in done.stdout and "+1.00" in done.stdout and "on jetson" in done.stdout
    assert (tmp_path / "c.md").read_text().startswith("# edgekd compare")
