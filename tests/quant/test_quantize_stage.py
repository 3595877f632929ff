"""The quantize stage in a real (tiny) pipeline run: recipe and fallback record in the manifest, QAT wiring."""
import pytest

from edgekd import api
from edgekd.core.fileio import read_json


def _quantize_metrics(run_dir):
    return read_json(run_dir / "manifest.json")["stages"]["quantize"]["metrics"]


@pytest.mark.slow
def test_ptq_and_qat_runs_record_recipes(tiny_config, write_config, tmp_path):
    tiny_config["targets"] = ["x86-cpu", "intel-cpu"]
    ptq = api.run(write_config(tiny_config), out=tmp_path / "ptq", log=lambda _: None)
    recipes = _quantize_metrics(ptq.run_dir)["recipes"]
    assert recipes["x86-vnni-u8s8"]["activation_type"] == "uint8" and "fallback" in recipes["x86-vnni-u8s8"]
    assert recipes["openvino-nncf"]["tool"] == "nncf" and "same_model_as" not in recipes["openvino-nncf"]
    assert recipes["openvino-nncf"]["calibrate_method"] == "nncf"  # NNCF calibrates by its own rules

    tiny_config["quantize"].update(method="qat", qat={"train": {"epochs": 1, "lr": 0.002, "amp": "off"}})
    qat = api.run(write_config(tiny_config, "qat.yaml"), out=tmp_path / "ptq", resume=True, log=lambda _: None)
    info = _quantize_metrics(qat.run_dir)["recipes"]["x86-vnni-u8s8"]["qat"]
    assert info["torch_onnx_top1_agreement"] >= 0.99 and info["unfolded_batch_norms"] == []
    compiled = read_json(qat.run_dir / "manifest.json")["stages"]["compile"]["metrics"]["targets"]["x86-cpu"]
    assert any(row["precision"] == "int8" for row in compiled["candidates"])


def test_qat_of_zero_epochs_is_refused():
    """Trial defect (session 11): qat.train.epochs 0 was accepted, and its untrained model was labelled int8-qat."""
    from pydantic import ValidationError

    from edgekd.quant.config import QatConfig

    with pytest.raises(ValidationError, match="qat.train.epochs: 0 fine-tunes nothing"):
        QatConfig.model_validate({"train": {"epochs": 0}})


def test_calibrate_method_for_an_nncf_target_is_warned_about(tiny_config, planted_sensitive_model, tmp_path):
    """Trial defect (session 13): quantize.calibrate_method entropy with targets [intel-cpu] was ignored without a word
    (NNCF's recipe calibrates by its own rules; the manifest recorded calibrate_method nncf) while `edgekd keys` said the
    key overrides the target recipe. Preflight warns, naming the target and its NNCF recipe; the Python API too."""
    import warnings

    from edgekd.api import Int8Config
    from edgekd.pipeline.config import validate_config
    from edgekd.pipeline.stages.quantize import QuantizeStage

    tiny_config["targets"] = ["x86-cpu", "intel-cpu"]
    tiny_config["quantize"] = {"calibration": "train-64", "calibrate_method": "entropy"}
    with pytest.warns(UserWarning, match=r"quantize.calibrate_method entropy: not used for target intel-cpu \(recipe "
                                         r"'openvino-nncf'\): its recipe is NNCF's \(tool: nncf\), which calibrates by its own"):
        QuantizeStage.check(validate_config(tiny_config), tmp_path)
    for config in ({**tiny_config, "targets": ["x86-cpu"]}, {**tiny_config, "quantize": {"calibration": "train-64"}}):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # an onnxruntime target, or no calibrate_method: nothing to say
            QuantizeStage.check(validate_config(config), tmp_path)
    model, calib, _, _ = planted_sensitive_model
    with pytest.warns(UserWarning, match=r"Int8Config.calibrate_method 'entropy': not used: recipe 'openvino-nncf' is NNCF's"):
        api.quantize(model, Int8Config(target="intel-cpu", calibrate_method="entropy", calibration=calib,
                                       output=tmp_path / "int8.onnx"))


def test_a_collapsed_qat_fine_tuning_is_reported_as_a_drop_not_as_an_export_disagreement(monkeypatch, tmp_path):
    """Trial defect (session 14): QAT of the outlier model collapsed (loss 9544, then ln 10) and the stage stopped with
    "the QAT QDQ model agrees with the fake-quantized student on 0.000 ... < export.min_top1_agreement", an export
    fault with no useful advice; the fake-quantized student's own drop is checked first, with the drop's advice."""
    from types import SimpleNamespace

    import numpy as np

    from edgekd.core.errors import StageError
    from edgekd.core.metrics import topk
    from edgekd.pipeline.stages import quantize as stage
    from edgekd.train import trainer

    labels = np.arange(100) % 10
    right = np.eye(10)[labels]
    collapsed = np.eye(10)[(labels + 1) % 10]  # near chance, and disagreeing with the exported model too
    exported = np.eye(10)[(labels + 2) % 10]
    monkeypatch.setattr(trainer, "predict_logits", lambda model, x: collapsed)
    monkeypatch.setattr(stage, "logits_of", lambda path, x: right if path == "fp32.onnx" else exported)
    monkeypatch.setattr(stage, "int8_budget", lambda ctx, name: 1.0)
    ctx = SimpleNamespace(cfg=SimpleNamespace(export=SimpleNamespace(min_top1_agreement=0.99),
                                              gate=SimpleNamespace(drop_type="absolute")),
                          dataset=SimpleNamespace(val=SimpleNamespace(x=np.zeros((100, 1)), y=labels)),
                          task=SimpleNamespace(score=topk), layout=SimpleNamespace(fp32_onnx="fp32.onnx"))
    with pytest.raises(StageError, match=r"the fake-quantized QAT student \(mine\) drops 100\.00 .*> budget 1 .*"
                                         r"quantize\.qat\.train\.lr.*quantize\.method: ptq") as stopped:
        stage._check_qat_model(ctx, SimpleNamespace(name="mine"), object(), "int8.onnx")
    assert "min_top1_agreement" not in str(stopped.value)


def test_a_fallback_that_kept_every_node_in_float_is_not_reported_as_quantizing_nothing():
    """Trial defect (session 14): "recipe 'openvino-nncf' quantized no node of the model (nncf)" when the quantizer had
    quantized everything, int8 dropped 37-88 points and the fallback kept every node in float."""
    from types import SimpleNamespace

    from edgekd.pipeline.stages.quantize import _no_int8_left

    recipe = SimpleNamespace(tool="nncf")
    info = {"nodes_in_float": ["/f2/Gemm", "/f1/Gemm", "/f3/Gemm"],
            "fallback": {"triggered": True, "int8_val_drop": 87.96}}
    said = _no_int8_left("openvino-nncf", recipe, info)
    assert "int8 dropped 87.96 points" in said and "kept all 3 quantizable nodes in float (no int8 left)" in said
    assert "quantized no node" not in said
    assert "quantized no node" in _no_int8_left("openvino-nncf", recipe, {"nodes_in_float": []})


def test_a_quantize_budget_looser_than_the_gate_is_warned_about(tiny_config, tmp_path):
    """Trial defect (session 14): quantize.max_drop 90 with gate.max_drop 1.0 accepted the 88-point int8 model with no
    fallback, and the compile stage then rejected it, without a word at preflight."""
    import warnings

    from edgekd.pipeline.config import validate_config
    from edgekd.pipeline.stages.quantize import QuantizeStage

    tiny_config["targets"] = ["x86-cpu"]
    tiny_config["gate"] = {**tiny_config.get("gate", {}), "max_drop": 1.0}
    tiny_config["quantize"] = {"calibration": "train-64", "max_drop": 90}
    with pytest.warns(UserWarning, match=r"quantize.max_drop 90 is looser than gate.max_drop 1: .*compile stage then "
                                         r"rejects it .*set quantize.max_drop to 1 or less"):
        QuantizeStage.check(validate_config(tiny_config), tmp_path)
    tiny_config["quantize"]["max_drop"] = 0.5
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # stricter than the gate: nothing to say
        QuantizeStage.check(validate_config(tiny_config), tmp_path)


def test_the_compile_reason_names_the_samples_it_judged_on_and_a_replaced_calibration_is_said(capsys):
    """Trial defect (session 14): an int8 model that passed on the quantize stage's search samples (drop 0.0, no
    search) missed on the whole validation split at compile, "accuracy drop 0.93 > max_drop 0.3" saying nothing of
    which samples judged it; and the manifest recorded calibrate_method moving-average beside the recipe's minmax
    (the fallback's calibration retry) without a word."""
    from types import SimpleNamespace

    from edgekd.pipeline.selection import accuracy_rule
    from edgekd.pipeline.stages.quantize import _calibration_replaced
    from edgekd.quant.fallback import FallbackReport

    row = {"val_drop": 0.93, "judged_on": "all 216 validation samples; the quantize stage measured 0.00 on its 108 "
                                          "search samples"}
    assert accuracy_rule(0.3, source="gate")(row) == ("accuracy drop 0.93 > max_drop 0.3 (gate) on all 216 validation "
                                                      "samples; the quantize stage measured 0.00 on its 108 search samples")
    assert accuracy_rule(0.3)({"val_drop": 0.93}) == "accuracy drop 0.93 > max_drop 0.3"

    report = FallbackReport(1.0, 1.0, 0.0, 0.3, triggered=False, calibrate_method="moving-average",
                            calibrations_tried={"moving-average": {"val_drop": 0.0}}, first_val_drop=2.78)
    said = _calibration_replaced(SimpleNamespace(name="x86-vnni-u8s8"), "minmax", report, 108)
    assert "calibrated with moving-average instead of the recipe's minmax: minmax dropped 2.78 on the 108" in said
    assert said in capsys.readouterr().err
    assert _calibration_replaced(SimpleNamespace(name="r"), "moving-average", report, 108) == ""
