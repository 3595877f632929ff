"""Models a user brings that onnxruntime runs but that are unusual or subtly broken, found by trying `edgekd ship`
as a new user would (issue 34: any ONNX file in, never a quietly wrong PASS). Each model is a tiny onnx.helper graph
around a logistic regression on scikit-learn's digits."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.faults.helpers import assert_one_line_error, invoke
from tests.pipeline.stages.test_third_party_onnx import classifier, digits_weights  # noqa: F401 (a fixture)


def _digits_npz(path, labels: bool = True):
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None]
    np.savez(path, **({"x": x, "y": digits.target} if labels else {"x": x}))
    return path


def _first_row_only(weights) -> onnx.ModelProto:
    """The classifier with its logits cut to the batch's first row, [batch, 10] as declared: a bug a user may bring."""
    model = classifier(weights, "batch", opset=13)
    graph = model.graph
    graph.node[-1].output[0] = "all_logits"
    graph.initializer.extend([numpy_helper.from_array(np.array([0], np.int64), name) for name in ("zero", "axis")]
                             + [numpy_helper.from_array(np.array([1], np.int64), "one")])
    graph.node.append(helper.make_node("Slice", ["all_logits", "zero", "one", "axis"], ["logits"], name="first_row"))
    return model


@pytest.mark.parametrize("extra", [[], ["--metric", "top1"], ["--no-labels"]], ids=["classifier", "metric", "no-labels"])
def test_a_model_returning_one_row_whatever_the_batch_is_refused_not_scored_by_broadcasting(digits_weights, tmp_path, extra):
    """Before: an internal IndexError as a classifier, and a PASS with --metric top1 (one prediction broadcast against
    every label) or --no-labels (100% agreement), with eval.npz's reference of one row."""
    model = tmp_path / "first.onnx"
    onnx.save(_first_row_only(digits_weights), str(model))
    data = _digits_npz(tmp_path / "digits.npz", labels="--no-labels" not in extra)
    extra = [e for e in extra if e != "--no-labels"]
    result = invoke("ship", model, "--data", data, "--normalize", "none", "--targets", "x86-cpu", *extra,
                    "--out", tmp_path / "run")
    assert_one_line_error(result, "first.onnx", "first output has shape (1, 10)", "one row per sample")
