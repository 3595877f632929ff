"""Typed stage records: they write the manifest keys manifests always had (old run folders still resume), read
back what they wrote, and are the only way stages read one another's results."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from edgekd.pipeline.manifest import RunManifest
from edgekd.pipeline.records import CompileRecord, ExportRecord, QuantizeRecord, StudentRecord, TargetBuild, read_record
from edgekd.pipeline.stage import StageOutput

PIPELINE = Path(__file__).resolve().parents[2] / "edgekd" / "pipeline"

# Metrics as a run folder written before the records existed holds them (keys and shapes from such a manifest,
# values shortened).
_ROW = {"name": "int8", "precision": "int8", "artifact": {"backend": "ort"}, "path": "05-compile/x86-cpu/int8",
        "measured": True, "val_top1": 0.9, "verdict": "chosen: fastest passing"}
OLD = {
    "distill": {"params": 1000, "mode": "online", "student_spec": {"arch": "tiny_cnn", "width": 8}, "val_top1": 0.9},
    "export": {"parity": {"max_abs": 1e-6}, "opset": 17, "input": {"name": "input", "dtype": "float32",
                                                                     "shape": ["batch", 1, 28, 28]}},
    "quantize": {"method": "ptq", "calibration": {"sha256": "ab"},
                 "recipes": {"x86-vnni-u8s8": {"name": "x86-vnni-u8s8", "nodes_in_float": ["Conv_3"]}}},
    "compile": {"val_reference_top1": 0.9, "removed_stale": [],
                "targets": {"x86-cpu": {"backend": "ort", "chosen": "int8", "chosen_precision": "int8",
                                        "candidates": [_ROW], "bundle": "bundle/x86-cpu"}}},
}
RECORDS = {"distill": StudentRecord, "export": ExportRecord, "quantize": QuantizeRecord, "compile": CompileRecord}


def _manifest(tmp_path, stages: dict) -> RunManifest:
    return RunManifest(tmp_path, {"stages": {name: {"status": "done", "metrics": m} for name, m in stages.items()}})


@pytest.mark.parametrize("stage", sorted(RECORDS))
def test_an_old_manifest_reads_and_writes_back_the_same_keys(tmp_path, stage):
    record = read_record(_manifest(tmp_path, OLD), RECORDS[stage])
    written = record.to_metrics()
    assert {k: v for k, v in OLD[stage].items() if k in written} == {k: v for k, v in written.items() if v is not None}
    assert RECORDS[stage].from_metrics(json.loads(json.dumps(written))) == record  # through the JSON file


def test_records_say_what_later_stages_need(tmp_path):
    manifest = _manifest(tmp_path, OLD)
    assert read_record(manifest, StudentRecord).student_spec == {"arch": "tiny_cnn", "width": 8}
    assert read_record(manifest, ExportRecord).inputs is None  # manifests before `inputs` existed
    quantized = read_record(manifest, QuantizeRecord)
    assert quantized.int8_label("x86-vnni-u8s8") == "int8-fallback" and quantized.int8_label("other") == "int8"
    assert read_record(manifest, CompileRecord).targets["x86-cpu"] == TargetBuild("ort", "int8", "int8", [_ROW],
                                                                                 "bundle/x86-cpu")


def test_a_stage_not_run_reads_as_the_empty_record(tmp_path):
    manifest = _manifest(tmp_path, {})
    assert read_record(manifest, QuantizeRecord) == QuantizeRecord() and not QuantizeRecord().made_none
    assert read_record(manifest, CompileRecord).targets == {}
    assert read_record(manifest, StudentRecord).to_metrics() == {}  # a distilled student adds no keys


def test_quantize_none_keeps_its_one_key():
    assert StageOutput([], record=QuantizeRecord("none")).manifest_metrics() == {"method": "none"}
    assert QuantizeRecord.from_metrics({"method": "none"}).made_none


def test_the_manifest_gets_the_record_with_the_stage_metrics():
    output = StageOutput([], {"opset": 17}, record=ExportRecord({"name": "input"}, [{"name": "input"}]))
    assert output.manifest_metrics() == {"opset": 17, "input": {"name": "input"}, "inputs": [{"name": "input"}]}


def test_no_stage_reads_another_stages_metrics_by_key():
    readers = [*sorted((PIPELINE / "stages").glob("*.py")), PIPELINE / "run_models.py", PIPELINE / "distill_modes.py"]
    offenders = [f"{path.name}:{n}" for path in readers
                 for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
                 if re.search(r"manifest\.(metrics|stage)\(|\[\"stages\"\]", line)]
    assert not offenders, f"read an earlier stage through pipeline.records.read_record: {offenders}"
