"""Issue 32 item 13: int8 candidates are measured for accuracy on their target's own runtime (OpenVINO for
intel-cpu) in the quantize stage, before the fallback decision stands."""
from __future__ import annotations

import pytest

from edgekd.pipeline.target_accuracy import first_passing, within_budget


def _drops(**drops):
    return {target.replace("_", "-"): {"runtime": "openvino", "split": "validation", "val_drop": drop}
            for target, drop in drops.items()}


def test_a_runtime_drop_over_the_budget_is_caught_though_onnxruntime_saw_none():
    # efficientnet_b0: 0.0 under onnxruntime, so the search kept nothing in float; 0.83 under OpenVINO
    assert not within_budget(_drops(intel_cpu=0.83), 0.5)
    assert within_budget(_drops(intel_cpu=0.5), 0.5) and within_budget({}, 0.5)


def test_nodes_are_kept_in_float_in_sensitivity_order_until_every_runtime_passes():
    # OpenVINO's drop by the number of nodes kept in float: 0.83, then 0.7, 0.45
    drops = {0: 0.83, 1: 0.7, 2: 0.45, 3: 0.1}
    tried = []

    def measure(kept):
        tried.append(list(kept))
        return within_budget(_drops(intel_cpu=drops[len(kept)]), 0.5), drops[len(kept)]

    assert first_passing(["conv_3", "se_1", "fc", "conv_9"], 0, 6, measure) == (["conv_3", "se_1"], 0.45)
    assert tried == [["conv_3"], ["conv_3", "se_1"]]
    tried.clear()  # the onnxruntime search already kept one: the runtime search starts after it
    assert first_passing(["conv_3", "se_1", "fc"], 1, 6, measure)[0] == ["conv_3", "se_1"] and tried == [["conv_3", "se_1"]]
    assert first_passing(["conv_3", "se_1", "fc"], 0, 1, measure) is None  # quantize.max_fallback_nodes: 1


def test_the_quantize_stage_measures_int8_on_openvino_as_the_compile_stage_will(tmp_path, tiny_config, write_config):
    pytest.importorskip("torch")
    pytest.importorskip("openvino")
    from edgekd.pipeline.records import CompileRecord, QuantizeRecord, read_record
    from edgekd.pipeline.runner import run_from_file

    # The whole validation split for the search too: its first model passes, so the compile stage judges on all of it.
    tiny_config.update(targets=["x86-cpu", "intel-cpu"], quantize={**tiny_config.get("quantize", {}), "confirm_fraction": 0})
    ctx = run_from_file(str(write_config(tiny_config)), str(tmp_path / "run"),
                        only=["teachers", "distill", "export", "quantize", "compile"])
    recipes = read_record(ctx.manifest, QuantizeRecord).recipes
    assert "target_runtimes" not in recipes["x86-vnni-u8s8"]  # the search's own runtime: measured there already
    measured = recipes["openvino-nncf"]["target_runtimes"]["measured"]["intel-cpu"]
    assert measured["runtime"] == "openvino" and measured["split"] == "validation"
    rows = read_record(ctx.manifest, CompileRecord).targets["intel-cpu"].candidates
    int8 = next(r for r in rows if r["precision"] == "int8")
    assert measured["val_top1"] == pytest.approx(int8["val_top1"])  # the same model, runtime and split as selection


def test_a_target_runtime_over_the_budget_keeps_nodes_in_float_before_compile(tmp_path, tiny_config, write_config,
                                                                              monkeypatch):
    """The runtime's scores are faked (a tiny model's OpenVINO int8 does not lose more than onnxruntime's on demand):
    the first model breaks the budget on intel-cpu's runtime, one more node in float fixes it."""
    pytest.importorskip("torch")
    pytest.importorskip("openvino")
    import edgekd.pipeline.target_accuracy as target_accuracy
    from edgekd.pipeline.records import QuantizeRecord, read_record
    from edgekd.pipeline.runner import run_from_file

    calls = []

    def fake_drops(ctx, profiles, int8_onnx, fp32_val_top1, input_spec, val):
        calls.append(int8_onnx)
        return {"intel-cpu": {"runtime": "openvino", "split": "validation", "val_top1": 0.5,
                              "val_drop": 5.0 if len(calls) == 1 else 0.0}}

    monkeypatch.setattr(target_accuracy, "runtime_drops", fake_drops)
    tiny_config.update(targets=["intel-cpu"], gate={"reference": "student_fp32", "max_drop": 2.0})
    ctx = run_from_file(str(write_config(tiny_config)), str(tmp_path / "run"), only=["teachers", "distill", "export", "quantize"])
    quantized = read_record(ctx.manifest, QuantizeRecord)
    recipe = quantized.recipes["openvino-nncf"]
    searched = len(recipe["fallback"]["tried"])  # nodes the onnxruntime search itself kept, if any
    assert recipe["target_runtimes"]["first_model"]["intel-cpu"]["val_drop"] == 5.0
    assert recipe["target_runtimes"]["measured"]["intel-cpu"]["val_drop"] == 0.0
    assert len(recipe["nodes_in_float"]) == searched + 1 and recipe["target_runtimes"]["nodes_in_float_for_runtimes"] == \
        recipe["nodes_in_float"]
    assert quantized.int8_label("openvino-nncf") == "int8-fallback" and len(calls) == 2
