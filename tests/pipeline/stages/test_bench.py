"""The pipeline's bench stage names each row after the compile stage's candidate (issue 20, item 11): an int8 model
with nodes kept in float is `<target>/int8-fallback`, not `<target>/int8`, and two int8 variants never share a row."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

pytest.importorskip("torch")

from edgekd.pipeline.records import CompileRecord, TargetBuild  # noqa: E402
from edgekd.pipeline.stages.bench import candidates  # noqa: E402
from edgekd.runtimes.base import Artifact  # noqa: E402


def _ctx(tmp_path: Path, names: list[str], chosen: str):
    rows = []
    for name in names:
        precision = name.split("-")[0]
        artifact = Artifact("ort", precision, tmp_path / name, "model.onnx", ["model.onnx"])
        rows.append({"name": name, "precision": precision, "artifact": artifact.to_json(), "path": f"05-compile/x86-cpu/{name}",
                     "verdict": "chosen (fastest passing)" if name == chosen else f"slower than the chosen {chosen}"})
    built = TargetBuild("ort", chosen, chosen.split("-")[0], rows, "bundle/x86-cpu")
    metrics = CompileRecord({"x86-cpu": built}).to_metrics()  # as the compile stage records it
    manifest = SimpleNamespace(metrics=lambda stage: metrics if stage == "compile" else {})
    return SimpleNamespace(manifest=manifest, run_dir=tmp_path, base_dir=tmp_path,
                           cfg=SimpleNamespace(bench=SimpleNamespace(threads=None), targets=["x86-cpu"]))


def test_rows_are_named_after_the_candidate_that_was_built(tmp_path):
    found = candidates(_ctx(tmp_path, ["fp32", "int8-qat", "int8-fallback"], chosen="int8-fallback"))
    assert [(c.name, c.artifact.precision, c.shipped) for c in found] == [
        ("x86-cpu/fp32", "fp32", False), ("x86-cpu/int8-qat", "int8", False), ("x86-cpu/int8-fallback", "int8", True)]


def test_a_fallback_search_cut_short_by_its_time_budget_is_a_report_note(tmp_path):
    """issue 32 item 16: quantize.fallback.max_seconds stopping the search is said in the report, not only the log."""
    from edgekd.pipeline.records import QuantizeRecord
    from edgekd.pipeline.stages.bench import host_notes

    stopped = "quantize.fallback.max_seconds 600 reached after 3 evaluation(s) in 590 s; kept the best passing candidate so far"
    quantized = QuantizeRecord("ptq", {"x86-vnni-u8s8": {"fallback": {"stopped": stopped}}, "other": {"fallback": {}}})
    metrics = {"compile": CompileRecord({}).to_metrics(), "quantize": quantized.to_metrics()}
    ctx = SimpleNamespace(manifest=SimpleNamespace(metrics=lambda stage: metrics.get(stage, {})), base_dir=tmp_path)
    assert host_notes(ctx) == [f"x86-vnni-u8s8: the int8 fallback search stopped early: {stopped}"]
