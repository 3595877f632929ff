"""edgekd.api.quantize with Int8Config: ptq (with fallback), and QAT as prepare + convert."""
import onnx
import pytest
import torch

from edgekd.api import Int8Config, quantize
from edgekd.core.errors import ConfigError, TargetError
from edgekd.quant.fallback import FallbackBudget
from edgekd.quant.qat import ActivationFakeQuant, QatModel
from edgekd.runtimes.ort import OrtSession
from edgekd.runtimes.ptq import quantized_nodes


def test_prepare_then_convert(trained_digits_cnn, tmp_path):
    model, data = trained_digits_cnn
    qat = quantize(model, Int8Config(target="x86-cpu", step="prepare", calibration=data.train.x[:128]))
    assert isinstance(qat, QatModel) and qat.fake_quant_modules()
    assert all(isinstance(m, ActivationFakeQuant) for m in qat.fake_quant_modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())  # the caller's model is left as it was
    qat.train()
    qat(torch.from_numpy(data.train.x[:64]))  # one training step's forward: observers follow the data
    path = quantize(qat, Int8Config(target="x86-cpu", step="convert", output=tmp_path / "qat.onnx"))
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops
    assert OrtSession(path, threads=1).run(data.test.x[:8]).shape == (8, 10)


def test_ptq_with_fallback(planted_sensitive_model, tmp_path):
    model, calib, val_x, val_y = planted_sensitive_model
    out = quantize(model, Int8Config(target="x86-cpu", calibration=calib, output=tmp_path / "int8.onnx",
                                     fallback=FallbackBudget(max_drop=2.0), validation=(val_x, val_y)))
    assert quantized_nodes(out) == ["fc1"]
    top1 = (OrtSession(out, threads=1).run(val_x).argmax(1) == val_y).mean()
    assert top1 >= 0.98


def test_ptq_auto_calibration_matches_the_pipeline_rule(planted_sensitive_model, tmp_path):
    model, calib, val_x, val_y = planted_sensitive_model
    sane_calib, sane_val = calib.copy(), val_x.copy()
    sane_calib[:, 15] = sane_val[:, 15] = 0.0  # without the planted range, every method quantizes the whole model
    out = quantize(model, Int8Config(target="x86-cpu", calibration=sane_calib, calibrate_method="auto",
                                     output=tmp_path / "int8.onnx", validation=(sane_val, val_y)))
    assert set(quantized_nodes(out)) == {"fc0", "fc1"}
    with pytest.raises(ConfigError, match=r"calibrate_method='auto' needs validation"):
        quantize(model, Int8Config(calibration=calib, calibrate_method="auto", output=tmp_path / "x.onnx"))


def test_misuse_is_a_config_error(trained_digits_cnn, tmp_path):
    model, data = trained_digits_cnn
    with pytest.raises(ConfigError, match="step='prepare'"):
        quantize(model, Int8Config(step="convert", output=tmp_path / "x.onnx"))
    with pytest.raises(ConfigError, match="fp32 ONNX file"):
        quantize(model, Int8Config(step="ptq", calibration=data.train.x[:8], output=tmp_path / "x.onnx"))
    with pytest.raises(TargetError, match="unknown target 'no-such-target'"):
        Int8Config(target="no-such-target").recipe()


def test_ptq_fallback_and_api_import_without_torch():
    import subprocess
    import sys

    code = "import sys, edgekd.api, edgekd.quant.api, edgekd.quant.fallback, edgekd.runtimes.ptq; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_ptq_refuses_to_write_over_its_input(planted_sensitive_model, tmp_path):
    """Trial defect (session 13): Int8Config(output=) naming the fp32 model itself replaced the user's only float copy
    with the int8 file (15793 -> 10642 bytes), without a word; it is refused, naming both, and the file is untouched."""
    model, calib, _, _ = planted_sensitive_model
    before = model.read_bytes()
    for output in (model, tmp_path / "." / model.name):
        with pytest.raises(ConfigError, match=r"Int8Config.output .* is the model being quantized .*another output path"):
            quantize(model, Int8Config(target="x86-cpu", calibration=calib, output=output))
    assert model.read_bytes() == before


def test_int8config_refuses_values_outside_its_choices():
    """Trial defect (session 13): Int8Config(calibrate_method="moving_average") was accepted and failed in onnxruntime's
    table as KeyError 'moving_average'; a Literal field's value outside its choices is one ConfigError naming the field,
    the closest value and all of them."""
    with pytest.raises(ConfigError, match=r"Int8Config.calibrate_method 'moving_average'.*did you mean 'moving-average'\?"
                                          r".*minmax, moving-average, entropy, percentile, auto"):
        Int8Config(calibrate_method="moving_average")
    with pytest.raises(ConfigError, match=r"Int8Config.step 'qat'.*use one of ptq, prepare, convert"):
        Int8Config(step="qat")
    config = Int8Config()
    config.calibrate_method = "kl"  # set after the config was made: quantize checks again
    with pytest.raises(ConfigError, match=r"Int8Config.calibrate_method 'kl'"):
        quantize("unused.onnx", config)
    from edgekd.runtimes.ptq import _calibration_method

    with pytest.raises(ConfigError, match=r"calibrate_method 'moving_average'.*use one of minmax, moving-average"):
        _calibration_method("moving_average")


def test_ptq_refuses_calibration_of_another_shape(planted_sensitive_model, tmp_path):
    """Trial defect (session 13): calibration arrays the model cannot take (a rank too few, 3 channels for a 1-channel
    model) reached onnxruntime, whose "InvalidArgument ... Invalid rank for input: x Got: 3 Expected: 4" named neither
    `calibration` nor the layout wanted; they are refused first, naming both shapes."""
    model, calib, val_x, val_y = planted_sensitive_model
    for bad in (calib[:, :8], calib[:, :, None]):
        with pytest.raises(ConfigError, match=r"Int8Config.calibration: the array has shape \(256, .*\) but the model's "
                                              r"input 'input' is \[\?, 16\]; give samples first, each of shape \[16\]"):
            quantize(model, Int8Config(calibration=bad, output=tmp_path / "int8.onnx"))
    with pytest.raises(ConfigError, match=r"Int8Config.validation: the array has shape \(1000, 8\)"):
        quantize(model, Int8Config(calibration=calib, output=tmp_path / "int8.onnx", fallback=FallbackBudget(max_drop=2.0),
                                   validation=(val_x[:, :8], val_y)))
    assert not (tmp_path / "int8.onnx").exists()


def test_ptq_refuses_an_already_quantized_model(planted_sensitive_model, tmp_path):
    """Trial defect (session 13): quantizing an int8 (QDQ) file again gave "QuantizerFailed: ... an int8 model that is
    not valid ONNX (SSA form) ... report this", blaming the quantizer; the model's Q/DQ nodes are found first, as the
    pipeline's student.onnx intake does, and it is refused in one line."""
    model, calib, _, _ = planted_sensitive_model
    int8 = quantize(model, Int8Config(calibration=calib, output=tmp_path / "int8.onnx"))
    with pytest.raises(ConfigError, match=r"int8.onnx': the model is already quantized \(\d+ DequantizeLinear, "
                                          r"\d+ QuantizeLinear nodes\); use it as it is, or quantize the fp32 model"):
        quantize(int8, Int8Config(calibration=calib, output=tmp_path / "again.onnx"))
    assert not (tmp_path / "again.onnx").exists()


def test_ptq_names_the_field_for_empty_calibration_unequal_validation_and_a_missing_model(planted_sensitive_model, tmp_path):
    """Trial defect (session 14): an empty calibration array (x[:0]) reached onnxruntime's calibrator as a raw
    TypeError ("Unexpected type <class 'NoneType'> for tensors_range"); validation=(x of 1000, y of 10) with
    calibrate_method="auto" gave numpy's "operands could not be broadcast together"; a typo in the model path said
    "quantizes an fp32 ONNX file: pass its path", never that the file does not exist. Each is one ConfigError naming
    the field, and nothing is written."""
    model, calib, val_x, val_y = planted_sensitive_model
    out = tmp_path / "int8.onnx"
    with pytest.raises(ConfigError, match=r"Int8Config.calibration: no samples \(the array is empty\)"):
        quantize(model, Int8Config(calibration=calib[:0], output=out))
    with pytest.raises(ConfigError, match=r"Int8Config.validation: x has 1000 samples but y has 10 labels"):
        quantize(model, Int8Config(calibration=calib, calibrate_method="auto", validation=(val_x, val_y[:10]), output=out))
    with pytest.raises(ConfigError, match=r"quantize\(model='.*plantde.onnx'\): no such file; check the path"):
        quantize(model.with_name("plantde.onnx"), Int8Config(calibration=calib, output=out))
    assert not out.exists()


def test_the_api_records_its_choices_in_the_model_and_advises_in_its_own_names(planted_sensitive_model, tmp_path):
    """Trial defect (session 14): calibrate_method "auto" returned only a path, the chosen method and KL a logging.info
    line; the docstring promised "a FallbackReport's model"; and a failure's advice named pipeline keys
    (quantize.fallback, max_fallback_nodes, quantize.method: qat) that the API does not have."""
    import onnx

    from edgekd.api import Int8Config, quantize
    from edgekd.core.errors import StageError
    from edgekd.quant.fallback import FallbackBudget

    model, calib, val_x, val_y = planted_sensitive_model
    out = quantize(model, Int8Config(target="x86-cpu", calibration=calib, calibrate_method="auto",
                                     validation=(val_x, val_y), output=tmp_path / "auto.onnx"))
    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert props["edgekd.calibrate_method"] in ("minmax", "moving-average", "percentile", "entropy")
    assert float(props["edgekd.val_kl"]) >= 0 and "edgekd.val_drop" in props
    kept = quantize(model, Int8Config(target="x86-cpu", calibration=calib, fallback=FallbackBudget(max_drop=2.0),
                                      validation=(val_x, val_y), output=tmp_path / "kept.onnx"))
    props = {p.key: p.value for p in onnx.load(str(kept)).metadata_props}
    assert props["edgekd.float_nodes"] == "fc0" and props["edgekd.calibrate_method"] in ("minmax", "moving-average")
    with pytest.raises(StageError) as failed:
        quantize(model, Int8Config(target="x86-cpu", calibration=calib, fallback=FallbackBudget(max_drop=2.0, max_nodes=0),
                                   validation=(val_x, val_y), output=tmp_path / "none.onnx"))
    said = str(failed.value)
    assert "FallbackBudget.max_nodes" in said and "step='prepare'" in said
    assert "quantize.fallback" not in said and "max_fallback_nodes" not in said and "quantize.method" not in said
