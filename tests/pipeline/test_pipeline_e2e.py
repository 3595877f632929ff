"""End to end: `edgekd run` on a tiny config through every stage; artifacts exist, load, and the
gate verdict agrees with the thresholds."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

from edgekd.device.bundle import load_bundle
from edgekd.runtimes import get_backend
from tests.conftest import run_cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    import yaml

    from tests.conftest import TINY_CONFIG

    folder = tmp_path_factory.mktemp("e2e")
    config = folder / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY_CONFIG))
    result = run_cli("run", str(config), "--out", str(folder / "run"))
    assert result.returncode == 0, result.stderr[-2000:]
    return folder, result


def test_every_stage_writes_its_artifacts(finished_run):
    folder, _ = finished_run
    run = folder / "run"
    manifest = json.loads((run / "manifest.json").read_text())
    assert list(manifest["stages"]) == ["teachers", "distill", "export", "quantize", "compile", "bench", "gate"]
    for stage in manifest["stages"].values():
        assert stage["status"] == "done"
        for output in stage["outputs"]:
            assert (run / output["path"]).is_file()
            assert len(output["sha256"]) == 64 and output["bytes"] > 0
    for name in ("report.json", "report.md", "02-distill/student.pt", "03-export/student-fp32.onnx"):
        assert (run / name).is_file(), name
    assert manifest["environment"]["libraries"]["onnxruntime"]


def test_every_bundle_loads_in_its_runtime(finished_run):
    folder, _ = finished_run
    for target in ("x86-cpu", "arm64-cpu", "intel-cpu"):
        manifest, artifact = load_bundle(folder / "run" / "bundle" / target)
        session = get_backend(artifact.backend).session(artifact)
        with np.load(folder / "run" / "bundle" / target / "eval.npz") as data:
            logits = session.run(data["x"][:8])
        assert logits.shape == (8, 10)
        assert manifest["target"] == target and manifest["preprocessing"]["layout"] == "NCHW"
    assert (folder / "run" / "bundle" / "arm64-cpu" / "model.ort").is_file()


def test_report_and_gate_agree(finished_run):
    folder, result = finished_run
    report = json.loads((folder / "run" / "report.json").read_text())
    gate = json.loads((folder / "run" / "gate.json").read_text())
    shipped = [r for r in report["rows"] if r["shipped"]]
    assert {r["target"] for r in shipped} == {"x86-cpu", "arm64-cpu", "intel-cpu"}
    reference = report["references"]["student_fp32"]["top1"]
    for row in shipped:
        drop = (reference - row["top1"]) * 100
        check = next(c for c in gate["checks"] if c["artifact"] == row["artifact"] and c["threshold"] == "max_drop")
        assert check["passed"] == (drop <= 100.0)
    assert "gate: PASS" in result.stdout
    for column in ("artifact", "precision", "size (KB)", "top-1", "drop (test)", "p50 (ms)", "gate", "why"):
        assert column in result.stdout
    assert max(len(line) for line in result.stdout.splitlines()) <= 120  # not a terminal: 120 columns
    for number, stage in enumerate(["teachers", "distill", "export", "quantize", "compile", "bench", "gate"], 1):
        assert f"[{number}/7 {stage}] running" in result.stderr
        assert re.search(rf"\[{number}/7 {stage}\] \d+\.\d s, done", result.stderr), stage
    assert "\r" not in result.stderr  # not a terminal: plain lines, no redrawn bars


def test_impossible_threshold_exits_1(finished_run):
    folder, _ = finished_run
    result = run_cli("gate", str(folder / "run" / "report.json"), "--max-drop", "-1")
    assert result.returncode in (1, 2)  # a negative limit is refused as bad input or fails the gate
    result = run_cli("gate", str(folder / "run" / "report.json"), "--min-speedup", "1000")
    assert result.returncode == 1
    assert "FAIL" in result.stdout and "min_speedup" in result.stdout


def test_gate_on_the_device_uses_the_pipelines_thresholds(finished_run, tmp_path):
    from edgekd import api

    folder, _ = finished_run
    pipeline_report = json.loads((folder / "run" / "report.json").read_text())
    pipeline_gate = json.loads((folder / "run" / "gate.json").read_text())
    bundle = folder / "run" / "bundle" / "x86-cpu"
    assert load_bundle(bundle)[0]["gate"] == pipeline_report["gate"]  # max_drop 100, not the profile's 1.0
    device = api.bench(bundle, runs=3, min_seconds=0, warmup_runs=1, warmup_seconds=0, rounds=1, batch_sizes=(1,),
                       memory=False)
    assert device["gate"] == pipeline_report["gate"]
    (tmp_path / "report.json").write_text(json.dumps(device))
    [check] = [c for c in api.gate(tmp_path / "report.json") if c.threshold == "max_drop"]
    pipeline_check = next(c for c in pipeline_gate["checks"]
                          if c["artifact"] == check.artifact and c["threshold"] == "max_drop")
    assert "(limit 100 points)" in check.reason and "(limit 100 points)" in pipeline_check["reason"]
    assert check.passed == pipeline_check["passed"]


def test_the_run_keeps_its_log_in_its_folder(finished_run):
    """Trial defect (session 12): progress, warnings and the verdict went to the terminal only; RUN/edgekd.log keeps
    them as plain timed lines (no carriage returns or colours), one header per command."""
    folder, result = finished_run
    log = (folder / "run" / "edgekd.log").read_text()
    assert log.count("\n=== ") >= 1 and f"edgekd run {folder / 'tiny.yaml'} --out {folder / 'run'}" in log
    for line in ("[1/7 teachers] running", "[7/7 gate]", "gate: PASS"):
        assert line in log
    assert all(line in log for line in result.stderr.splitlines() if line.startswith("[") and "running" in line)
    assert "\r" not in log and "\x1b" not in log


def test_a_damaged_bundle_is_rebuilt_on_resume_not_passed_as_up_to_date(finished_run, tmp_path):
    """Trial defect (session 12): with bundle/x86-cpu/model.onnx truncated, --resume skipped every stage as up to date
    and said gate: PASS (the compile stage recorded the bundle's manifest.json alone as its output)."""
    import shutil

    folder, _ = finished_run
    run = tmp_path / "run"
    shutil.copytree(folder / "run", run)
    model = run / "bundle" / "x86-cpu" / "model.onnx"
    model.write_bytes(model.read_bytes()[:100])
    result = run_cli("run", str(folder / "tiny.yaml"), "--out", str(run), "--resume", "--only", "compile")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "[1/1 compile] up to date" not in result.stderr and len(model.read_bytes()) > 100
    from edgekd.device.bundle import verify_bundle

    verify_bundle(run / "bundle" / "x86-cpu")  # whole again: every file matches its recorded sha256


def test_only_bench_does_not_report_an_earlier_gate(finished_run):
    folder, _ = finished_run
    gate_path = folder / "run" / "gate.json"
    earlier = json.loads(gate_path.read_text())
    gate_path.write_text(json.dumps({**earlier, "passed": False}))  # a failed verdict left by an earlier run
    try:
        result = run_cli("run", str(folder / "tiny.yaml"), "--out", str(folder / "run"), "--only", "bench", "--force")
    finally:
        gate_path.write_text(json.dumps(earlier))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "gate: not run (finish the run: edgekd run " in result.stdout and "gate: FAIL" not in result.stdout


def test_run_with_impossible_gate_exits_1(finished_run, tmp_path):
    import yaml

    from tests.conftest import TINY_CONFIG

    folder, _ = finished_run
    config = yaml.safe_load(yaml.safe_dump(TINY_CONFIG))
    config["gate"]["max_size_kb"] = 0.001
    path = tmp_path / "strict.yaml"
    path.write_text(yaml.safe_dump(config))
    # Reuse the finished run: only the gate stage's key changes, the rest is skipped by --resume.
    result = run_cli("run", str(path), "--out", str(folder / "run"), "--resume")
    assert result.returncode == 1, result.stderr[-2000:]
    assert "gate: FAIL" in result.stdout
    assert "up to date, skipped" in result.stderr
    # Trial defect (session 12): a FAIL said why only in gate.json; the terminal and both reports now say it too
    failures = [line for line in result.stdout.splitlines() if line.startswith("FAIL x86-cpu/")]
    assert failures and "size" in failures[0] and "limit" in failures[0]
    why = failures[0].removeprefix("FAIL ").partition(": ")[2]
    for report in ("report.md", "report.html"):
        text = (folder / "run" / report).read_text()
        assert "Why the gate failed" in text and why.split(" (")[0] in text


def test_existing_run_folder_needs_resume_or_force(finished_run):
    folder, _ = finished_run
    result = run_cli("run", str(folder / "tiny.yaml"), "--out", str(folder / "run"))
    assert result.returncode == 2
    assert "--resume" in result.stderr and "Traceback" not in result.stderr

