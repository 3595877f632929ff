"""Issue 32 item 13: int8 candidates are measured for accuracy on their target's own runtime (OpenVINO for
intel-cpu) in the quantize stage, before the fallback decision stands."""
from __future__ import annotations

import pytest

from edgekd.pipeline.target_accuracy import tightened_budget


def _drops(**drops):
    return {target.replace("_", "-"): {"runtime": "openvino", "split": "validation", "val_drop": drop}
            for target, drop in drops.items()}


def test_a_runtime_that_loses_more_than_the_search_saw_tightens_the_search_budget():
    assert tightened_budget(2.0, 0.5, _drops(intel_cpu=2.3)) == pytest.approx(0.2)  # OpenVINO loses 1.8 more
    assert tightened_budget(2.0, 0.5, _drops(intel_cpu=2.5)) == pytest.approx(0.0)


def test_no_onnxruntime_budget_can_make_up_a_larger_gap():
    # efficientnet_b0: 0.0 under onnxruntime, 0.83 under OpenVINO against a 0.5 budget: selection refuses int8
    assert tightened_budget(0.5, 0.0, _drops(intel_cpu=0.83)) is None


def test_runtimes_within_the_budget_change_nothing():
    assert tightened_budget(1.0, 0.3, _drops(intel_cpu=0.9)) is None
    assert tightened_budget(1.0, 0.3, {}) is None


def test_the_quantize_stage_measures_int8_on_openvino_as_the_compile_stage_will(tmp_path, tiny_config, write_config):
    pytest.importorskip("torch")
    pytest.importorskip("openvino")
    from edgekd.pipeline.records import CompileRecord, QuantizeRecord, read_record
    from edgekd.pipeline.runner import run_from_file

    tiny_config.update(targets=["x86-cpu", "intel-cpu"])
    ctx = run_from_file(str(write_config(tiny_config)), str(tmp_path / "run"),
                        only=["teachers", "distill", "export", "quantize", "compile"])
    recipes = read_record(ctx.manifest, QuantizeRecord).recipes
    assert "target_runtimes" not in recipes["x86-vnni-u8s8"]  # the search's own runtime: measured there already
    measured = recipes["openvino-nncf"]["target_runtimes"]["measured"]["intel-cpu"]
    assert measured["runtime"] == "openvino" and measured["split"] == "validation"
    rows = read_record(ctx.manifest, CompileRecord).targets["intel-cpu"].candidates
    int8 = next(r for r in rows if r["precision"] == "int8")
    assert measured["val_top1"] == pytest.approx(int8["val_top1"])  # the same model, runtime and split as selection
