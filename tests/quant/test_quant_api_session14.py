"""Trial defects of quantize(model, Int8Config(...)) from Python (session 14)."""
import numpy as np
import pytest

from edgekd.api import Int8Config, quantize
from edgekd.core.errors import ConfigError
from edgekd.quant.fallback import FallbackBudget


def test_validation_labels_are_class_indices_checked_before_any_work(planted_sensitive_model, tmp_path, monkeypatch):
    """Trial defect (session 14): validation=(x, list(y)) failed after calibration with AttributeError "'list' object
    has no attribute 'ndim'", and one-hot labels with a broadcast ValueError in the top-1 count. A list is now taken
    as an array; one-hot, 2-D or fractional labels are one ConfigError before anything is calibrated."""
    model, calib, val_x, val_y = planted_sensitive_model
    seen = {}
    monkeypatch.setattr("edgekd.quant.fallback.quantize_with_fallback", lambda *args: seen.update(y=args[5]))
    config = dict(calibration=calib, fallback=FallbackBudget(max_drop=2.0), output=tmp_path / "int8.onnx")
    quantize(model, Int8Config(validation=(val_x, [int(v) for v in val_y]), **config))
    assert isinstance(seen["y"], np.ndarray) and seen["y"].ndim == 1 and np.array_equal(seen["y"], val_y)
    monkeypatch.setattr("edgekd.quant.fallback.quantize_with_fallback", lambda *args: pytest.fail("calibrated"))
    one_hot = np.eye(int(val_y.max()) + 1)[val_y]
    with pytest.raises(ConfigError, match=r"^Int8Config.validation: y has shape \(1000, \d+\); give one integer class "
                                          r"index per sample, shape \(N,\) \(one-hot rows: give y.argmax\(1\)\)$"):
        quantize(model, Int8Config(validation=(val_x, one_hot), **config))
    with pytest.raises(ConfigError, match=r"^Int8Config.validation: y holds float64 values, not class indices"):
        quantize(model, Int8Config(validation=(val_x, val_y + 0.5), **config))
