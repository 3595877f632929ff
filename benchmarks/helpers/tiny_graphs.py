"""Tiny self-made ONNX graphs with the inputs and outputs of the third-party models (benchmarks/third_party.py), for
its --smoke mode and for tests: no download, a few KB each, deterministic by seed.

    det:  x [N, 3, H, W] float -> sigmoid text-probability map [N, 1, H, W]      (PP-OCR det's I/O)
    rec:  x [N, 3, 48, W] float -> softmax over C classes per step [N, W/4, C]   (PP-OCR rec's I/O; blank is class 0)
    cls:  x [N, 3, 48, W] float -> softmax over 2 classes [N, 2]                 (PP-OCR cls's I/O: 0 or 180 degrees)
    vad:  input [N, 512] float, state [2, N, H] float, sr [] int64
          -> output [N, 1] speech probability, stateN [2, N, H]                   (Silero VAD v5's I/O)
    vad_branching: the same I/O behind an If on sr that OpenVINO cannot convert, as Silero VAD's file (--smoke's VAD)
Written with onnx.helper, opset 13 (the version onnxruntime's quantizer needs at least), named dynamic axes.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 13


def _weights(rng: np.random.Generator, name: str, shape: tuple[int, ...], scale: float = 0.5) -> onnx.TensorProto:
    return numpy_helper.from_array((rng.standard_normal(shape) * scale / np.sqrt(np.prod(shape[1:]) or 1)).astype(np.float32), name)


def _save(graph: onnx.GraphProto, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="edgekd-tiny-graphs")
    model.ir_version = 8  # onnxruntime releases of 2023 and later read it
    onnx.checker.check_model(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def tiny_det(path: Path, seed: int = 0, width: int = 8, features: bool = False) -> Path:
    """Conv 3x3 -> ReLU -> Conv 3x3 -> ReLU -> Conv 1x1 -> Sigmoid: a probability map the size of the image; with
    `features`, the last ReLU's [N, width, H, W] as a second output (a model with several outputs)."""
    rng = np.random.default_rng(seed)
    inits = [_weights(rng, "w1", (width, 3, 3, 3), 2.0), numpy_helper.from_array(np.zeros(width, np.float32), "b1"),
             _weights(rng, "w2", (width, width, 3, 3), 2.0), numpy_helper.from_array(np.zeros(width, np.float32), "b2"),
             _weights(rng, "w3", (1, width, 1, 1), 2.0), numpy_helper.from_array(np.zeros(1, np.float32), "b3")]
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c2"], ["r2"]),
             helper.make_node("Conv", ["r2", "w3", "b3"], ["c3"]), helper.make_node("Sigmoid", ["c3"], ["maps"])]
    outputs = [helper.make_tensor_value_info("maps", TensorProto.FLOAT, ["batch", 1, "height", "width"])]
    if features:
        outputs.append(helper.make_tensor_value_info("r2", TensorProto.FLOAT, ["batch", width, "height", "width"]))
    graph = helper.make_graph(nodes, "tiny_det", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, "height", "width"])],
                              outputs, inits)
    return _save(graph, path)


def _line_features(rng: np.random.Generator, width: int) -> tuple[list, list]:
    """x [N, 3, 48, W] -> features [N, W/4, width]: a strided conv, ReLU, the mean over the height, steps last."""
    inits = [_weights(rng, "wc", (width, 3, 3, 3), 2.0), numpy_helper.from_array(np.zeros(width, np.float32), "bc")]
    nodes = [helper.make_node("Conv", ["x", "wc", "bc"], ["conv"], pads=[1, 1, 1, 1], strides=[1, 4]),
             helper.make_node("Relu", ["conv"], ["relu"]),
             helper.make_node("ReduceMean", ["relu"], ["pooled"], axes=[2], keepdims=0),
             helper.make_node("Transpose", ["pooled"], ["steps"], perm=[0, 2, 1])]
    return inits, nodes


def tiny_rec(path: Path, seed: int = 0, classes: int = 12, width: int = 16) -> Path:
    rng = np.random.default_rng(seed)
    inits, nodes = _line_features(rng, width)
    inits += [_weights(rng, "wo", (width, classes), 8.0), numpy_helper.from_array(np.zeros(classes, np.float32), "bo")]
    nodes += [helper.make_node("MatMul", ["steps", "wo"], ["scores"]), helper.make_node("Add", ["scores", "bo"], ["logits"]),
              helper.make_node("Softmax", ["logits"], ["probs"], axis=-1)]
    graph = helper.make_graph(nodes, "tiny_rec", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 48, "width"])],
                              [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", "steps", classes])], inits)
    return _save(graph, path)


def tiny_cls(path: Path, seed: int = 0, width: int = 16) -> Path:
    rng = np.random.default_rng(seed)
    inits, nodes = _line_features(rng, width)
    inits += [_weights(rng, "wo", (width, 2), 8.0), numpy_helper.from_array(np.zeros(2, np.float32), "bo")]
    nodes += [helper.make_node("ReduceMean", ["steps"], ["line"], axes=[1], keepdims=0),
              helper.make_node("MatMul", ["line", "wo"], ["scores"]), helper.make_node("Add", ["scores", "bo"], ["logits"]),
              helper.make_node("Softmax", ["logits"], ["probs"], axis=-1)]
    graph = helper.make_graph(nodes, "tiny_cls", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 48, "width"])],
                              [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", 2])], inits)
    return _save(graph, path)


def tiny_vad(path: Path, seed: int = 0, hidden: int = 16, window: int = 512) -> Path:
    """h = tanh(input W1 + state[0] W2); output = sigmoid(h w3); stateN = [h, h]. sr is taken and unused, as a model
    for one sample rate would."""
    rng = np.random.default_rng(seed)
    inits = [_weights(rng, "w1", (window, hidden), 4.0), _weights(rng, "w2", (hidden, hidden)), _weights(rng, "w3", (hidden, 1), 4.0),
             numpy_helper.from_array(np.array(0, np.int64), "zero")]
    nodes = [helper.make_node("Gather", ["state", "zero"], ["previous"], axis=0),
             helper.make_node("MatMul", ["input", "w1"], ["a"]), helper.make_node("MatMul", ["previous", "w2"], ["b"]),
             helper.make_node("Add", ["a", "b"], ["ab"]), helper.make_node("Tanh", ["ab"], ["h"]),
             helper.make_node("MatMul", ["h", "w3"], ["score"]), helper.make_node("Sigmoid", ["score"], ["output"]),
             helper.make_node("Unsqueeze", ["h", "axes"], ["h0"]), helper.make_node("Concat", ["h0", "h0"], ["stateN"], axis=0)]
    inits.append(numpy_helper.from_array(np.array([0], np.int64), "axes"))
    inputs, outputs = _vad_io(window, hidden)
    return _save(helper.make_graph(nodes, "tiny_vad", inputs, outputs, inits), path)


def _vad_io(window: int, hidden: int) -> tuple[list, list]:
    """Silero VAD's inputs (a frame, the recurrent state [2, batch, hidden], a 0-d sample rate) and outputs."""
    inputs = [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", window]),
              helper.make_tensor_value_info("state", TensorProto.FLOAT, [2, "batch", hidden]),
              helper.make_tensor_value_info("sr", TensorProto.INT64, [])]
    outputs = [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 1]),
               helper.make_tensor_value_info("stateN", TensorProto.FLOAT, [2, "batch", hidden])]
    return inputs, outputs


def tiny_vad_branching(path: Path, seed: int = 0, hidden: int = 16, window: int = 512, channels: int = 4) -> Path:
    """Silero VAD's I/O and the pattern of its graph that OpenVINO 2025-2026 cannot convert ("Conversion is failed
    for: Conv-16, ReduceMean-16"), while onnxruntime runs it: an If on `sr` (16000: the frame as [N, 1, window];
    else as it is) whose branches differ in rank, so the Conv after it has an input of unknown rank.
    h = tanh(mean over time of Conv(frame) + state[0] W2); output = sigmoid(h w3); stateN = [tanh(h W4)] * 2."""
    rng = np.random.default_rng(seed)
    inits = [_weights(rng, "conv_w", (channels, 1, 8), 4.0), _weights(rng, "w2", (hidden, channels)),
             _weights(rng, "w3", (channels, 1), 4.0), _weights(rng, "w4", (channels, hidden), 2.0),
             numpy_helper.from_array(np.array(0, np.int64), "zero"), numpy_helper.from_array(np.array([1], np.int64), "one"),
             numpy_helper.from_array(np.array([0], np.int64), "axes"), numpy_helper.from_array(np.array(16000, np.int64), "rate")]

    def branch(name: str, node) -> onnx.GraphProto:
        return helper.make_graph([node], name, [], [helper.make_tensor_value_info(node.output[0], TensorProto.FLOAT, None)])

    nodes = [helper.make_node("Equal", ["sr", "rate"], ["is_16k"]),
             helper.make_node("If", ["is_16k"], ["frame"],
                              then_branch=branch("as_channels", helper.make_node("Unsqueeze", ["input", "one"], ["framed"])),
                              else_branch=branch("as_given", helper.make_node("Identity", ["input"], ["unframed"]))),
             helper.make_node("Conv", ["frame", "conv_w"], ["features"], strides=[8]),
             helper.make_node("ReduceMean", ["features"], ["pooled"], axes=[2], keepdims=0),
             helper.make_node("Gather", ["state", "zero"], ["previous"], axis=0),
             helper.make_node("MatMul", ["previous", "w2"], ["b"]), helper.make_node("Add", ["pooled", "b"], ["ab"]),
             helper.make_node("Tanh", ["ab"], ["h"]), helper.make_node("MatMul", ["h", "w3"], ["score"]),
             helper.make_node("Sigmoid", ["score"], ["output"]), helper.make_node("MatMul", ["h", "w4"], ["next"]),
             helper.make_node("Tanh", ["next"], ["next_h"]), helper.make_node("Unsqueeze", ["next_h", "axes"], ["h0"]),
             helper.make_node("Concat", ["h0", "h0"], ["stateN"], axis=0)]
    inputs, outputs = _vad_io(window, hidden)
    return _save(helper.make_graph(nodes, "tiny_vad_branching", inputs, outputs, inits), path)


GRAPHS = {"det": tiny_det, "rec": tiny_rec, "cls": tiny_cls, "vad": tiny_vad}
