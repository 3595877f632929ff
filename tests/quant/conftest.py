"""Tiny ONNX models built with onnx.helper: no torch, no training, milliseconds to make."""
from __future__ import annotations

import numpy as np
import pytest


def gemm_mlp(path, weights: list[np.ndarray], biases: list[np.ndarray]):
    """Gemm -> Relu -> ... -> Gemm, input 'input' [batch, features], output 'logits'."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits, current = [], [], "input"
    for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
        inits += [numpy_helper.from_array(w.astype(np.float32), f"w{i}"), numpy_helper.from_array(b.astype(np.float32), f"b{i}")]
        out = "logits" if i == len(weights) - 1 else f"h{i}"
        nodes.append(helper.make_node("Gemm", [current, f"w{i}", f"b{i}"], [out], name=f"fc{i}", transB=1))
        if i < len(weights) - 1:
            nodes.append(helper.make_node("Relu", [out], [f"r{i}"], name=f"relu{i}"))
            out = f"r{i}"
        current = out
    inputs = [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", weights[0].shape[1]])]
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", weights[-1].shape[0]])]
    graph = helper.make_graph(nodes, "mlp", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.fixture
def planted_sensitive_model(tmp_path):
    """An MLP whose input carries one feature with a huge dynamic range (up to 1e4) that the model
    ignores (zero weights): a per-tensor int8 scale for that input wipes out the features that matter.
    Labels are the fp32 model's own predictions, so fp32 is 100 % accurate."""
    rng = np.random.default_rng(0)
    w0 = rng.normal(0, 0.5, (64, 16))
    w0[:, 15] = 0.0
    w1 = rng.normal(0, 0.5, (10, 64))
    path = gemm_mlp(tmp_path / "planted.onnx", [w0, w1], [np.zeros(64), np.zeros(10)])

    def sample(n, seed):
        x = np.random.default_rng(seed).normal(0, 1, (n, 16)).astype(np.float32)
        x[:, 15] = np.random.default_rng(seed + 1).uniform(-1e4, 1e4, n)
        return x

    calib, val = sample(256, 1), sample(1000, 2)
    logits = np.maximum(val @ w0.T, 0) @ w1.T
    return path, calib, val, logits.argmax(1)


@pytest.fixture(scope="module")
def trained_digits_cnn():
    """A small ConvNet with batch norms, trained for a few seconds on scikit-learn's digits."""
    import torch

    from edgekd.data import load_dataset
    from edgekd.data.config import DataConfig
    from edgekd.train.config import TrainConfig
    from edgekd.train.models.zoo import ConvNet
    from edgekd.train.trainer import cross_entropy_loss, train

    data = load_dataset(DataConfig(source="digits"), seed=0)
    torch.manual_seed(0)
    model = ConvNet(1, 10, 8, width=8)
    train(model, torch.from_numpy(data.train.x), torch.from_numpy(data.train.y),
          TrainConfig(epochs=3, lr=0.05, batch_size=64), cross_entropy_loss(), seed=0)
    return model.eval(), data
