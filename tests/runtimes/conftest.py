"""A small, accurate ONNX classifier for the target tests, built without torch in about a second.

A fixed random Conv+ReLU feature layer followed by a Gemm fitted by ridge least squares on
the digits dataset: real conv and matmul ops for the quantizer and the runtimes, and
logits with clear margins, so agreement numbers measure the backend rather than noise.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from edgekd.quant.host import recipe_for_host
from edgekd.runtimes.profiles import QuantRecipe

INPUT = "input"


@dataclass
class TinyModel:
    fp32: Path
    int8: Path
    eval_x: np.ndarray
    eval_y: np.ndarray
    input_spec: dict


def _graph(conv_w: np.ndarray, gemm: tuple[np.ndarray, np.ndarray] | None):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(conv_w, "conv_w"), numpy_helper.from_array(np.zeros(len(conv_w), np.float32), "conv_b")]
    nodes = [helper.make_node("Conv", [INPUT, "conv_w", "conv_b"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2], name="pool"),
             helper.make_node("Flatten", ["p"], ["features" if gemm is None else "f"], name="flatten")]
    output = "features"
    if gemm is not None:
        weight, bias = gemm
        inits += [numpy_helper.from_array(weight, "fc_w"), numpy_helper.from_array(bias, "fc_b")]
        nodes.append(helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["logits"], transB=1, name="fc"))
        output = "logits"
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["batch", 1, 8, 8])],
                              [helper.make_tensor_value_info(output, TensorProto.FLOAT, ["batch", None])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.checker.check_model(model, full_check=True)
    return model


def _run(model, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {INPUT: x})[0]


def _ridge(features: np.ndarray, labels: np.ndarray, alpha: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Closed-form ridge regression onto one-hot targets: a linear classifier in milliseconds
    (scikit-learn's iterative solvers take seconds on a busy 2-core machine)."""
    f = np.hstack([features, np.ones((len(features), 1), np.float32)]).astype(np.float64)
    target = np.eye(10)[labels]
    solution = np.linalg.solve(f.T @ f + alpha * np.eye(f.shape[1]), f.T @ target)
    return solution[:-1].T.astype(np.float32), solution[-1].astype(np.float32)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> TinyModel:
    import onnx
    from sklearn.datasets import load_digits

    from edgekd.runtimes.ptq import quantize_qdq

    digits = load_digits()
    x = (digits.images[:, None] / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    train, test = slice(0, 1400), slice(1400, None)
    conv_w = np.random.default_rng(0).normal(0, 0.5, (8, 1, 3, 3)).astype(np.float32)
    features = _run(_graph(conv_w, None), x[train])
    weight, bias = _ridge(features, y[train])
    model = _graph(conv_w, (weight, bias))
    folder = tmp_path_factory.mktemp("tiny")
    fp32 = folder / "tiny-fp32.onnx"
    onnx.save(model, str(fp32))
    # The recipe this CPU computes exactly (7-bit weights without VNNI): the contract compares runtimes, not saturation.
    recipe = recipe_for_host(QuantRecipe(name="u8s8", activation_type="uint8", weight_type="int8")).recipe
    int8 = quantize_qdq(fp32, folder / "tiny-int8.onnx", recipe, x[train][:256])
    spec = {"name": INPUT, "shape": ["batch", 1, 8, 8], "dtype": "float32"}
    return TinyModel(fp32, int8, x[test], y[test], spec)


@pytest.fixture
def reference(tiny_model):
    """onnxruntime CPU logits of the fp32 model: what every backend is held to."""
    import onnx

    return _run(onnx.load(str(tiny_model.fp32)), tiny_model.eval_x)
