"""`edgekd run --force` over an earlier run: what the new run does not build must not linger beside what it
does, and nothing else is lost (issue 20, item 11)."""
from __future__ import annotations

import json
import shutil

from .helpers import invoke, write_config


def test_force_rerun_keeps_only_the_candidates_it_built(tmp_path, finished_run):
    """The earlier run built x86-cpu/{fp32,int8} and intel-cpu/{fp32,bf16,int8}; the new one only x86-cpu fp32."""
    run = shutil.copytree(finished_run, tmp_path / "run")
    earlier_int8 = sorted((run / "04-quantize").glob("student-int8-*.onnx"))
    assert (run / "05-compile" / "intel-cpu" / "int8").is_dir() and earlier_int8
    config = write_config(tmp_path, targets=["x86-cpu"], quantize={"method": "none", "calibration": None})
    result = invoke("run", config, "--out", run, "--force")
    assert result.exit_code == 0, result.output[-3000:]
    compiled = sorted(str(p.relative_to(run / "05-compile")) for p in (run / "05-compile").iterdir() if p.is_dir())
    assert compiled == ["x86-cpu"]
    assert sorted(p.name for p in (run / "05-compile" / "x86-cpu").iterdir()) == ["fp32"]
    # The earlier int8 model is not shipped again: this run did not quantize.
    report = json.loads((run / "report.json").read_text())
    assert [row["artifact"] for row in report["rows"]] == ["x86-cpu/fp32"]
    manifest = json.loads((run / "manifest.json").read_text())
    assert "05-compile/intel-cpu/int8" in manifest["stages"]["compile"]["metrics"]["removed_stale"]
    # The earlier run's int8 files, which this run's quantize stage did not make, are removed and said (session 14: a
    # --force over another model's run left its int8 beside the new run's files); nothing else is.
    assert sorted((run / "04-quantize").glob("student-int8-*.onnx")) == []
    assert all(f"{p.relative_to(run)}: removed" in result.output for p in earlier_int8)
    assert (run / "01-teachers").is_dir() and (run / "bundle" / "x86-cpu" / "manifest.json").is_file()
