"""`edgekd bench` on the device writes the gate thresholds the pipeline applied, so `edgekd gate` on
its report judges by the same limits as the pipeline's gate stage."""
from __future__ import annotations

import json

from edgekd import api
from edgekd.device.bench import _gate_section


def _with_recorded_gate(bundle, gate: dict):
    """The bundle as the compile stage now writes it: the pipeline's gate section in manifest.json."""
    manifest_path = bundle / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["gate"] = gate
    manifest_path.write_text(json.dumps(manifest))
    return bundle


def test_device_report_uses_the_pipelines_thresholds_not_the_profiles(tiny_bundle, tmp_path):
    pipeline_gate = {"reference": "student_fp32", "max_drop": 2.0, "drop_type": "absolute", "min_speedup": None,
                     "max_size_kb": None, "allow_empty": False}
    bundle = _with_recorded_gate(tiny_bundle, pipeline_gate)  # the profile in the bundle says max_drop 1.0
    report = api.bench(bundle, runs=3, min_seconds=0, warmup_runs=1, warmup_seconds=0, rounds=1, batch_sizes=(1,),
                       memory=False)
    assert report["gate"] == pipeline_gate
    (tmp_path / "report.json").write_text(json.dumps(report))
    [check] = api.gate(tmp_path / "report.json")
    assert "(limit 2 points)" in check.reason


def test_bundles_without_a_recorded_gate_keep_the_profiles_thresholds():
    assert _gate_section({"profile": {"gate": {"max_drop": 0.5}}})["max_drop"] == 0.5
    assert _gate_section({"gate": {"max_drop": 2.0}, "profile": {"gate": {"max_drop": 0.5}}})["max_drop"] == 2.0


def test_a_bundle_shipping_int8_with_nodes_in_float_is_named_so_in_the_report(tiny_bundle):
    """The compile stage records which candidate shipped; the device report names the row after it, as the build
    machine's report does, so `edgekd compare` matches them and the user sees nodes were kept in float."""
    manifest_path = tiny_bundle / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["quantization"] = {"recipe": {"name": "x86-vnni-u8s8", "nodes_in_float": ["fc0"]}, "variant": "int8-fallback"}
    manifest_path.write_text(json.dumps(manifest))
    report = api.bench(tiny_bundle, runs=3, min_seconds=0, warmup_runs=1, warmup_seconds=0, rounds=1, batch_sizes=(1,),
                       memory=False)
    assert [row["artifact"] for row in report["rows"]] == ["x86-cpu/int8-fallback"]
