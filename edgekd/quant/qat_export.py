"""Export a fake-quantized model (quant/qat.py) to a QDQ ONNX file like the one PTQ writes.

The TorchScript-based exporter (dynamo=False) is used because it is the one that turns torch's
fake-quant ops into QuantizeLinear/DequantizeLinear. It leaves the weights in float behind a
QuantizeLinear; `fold_weight_quantization` stores them as int8 (and biases as int32, as
onnxruntime's quantizer does) so the file is a quarter of the size and runtimes see the usual
DequantizeLinear(int8 weight) pattern. No library does this rewrite on a standalone ONNX file.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from edgekd.core.fileio import atomic_path
from edgekd.train.exporter import ExportSpec, write_onnx
from edgekd.train.onnx_export import INPUT_NAME, OUTPUT_NAME


def export_qdq(qat_model: torch.nn.Module, example: np.ndarray, out_path: Path, opset: int = 17) -> Path:
    import onnx

    qat_model.eval()
    sample = torch.as_tensor(example[:2]).float()
    with atomic_path(out_path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        write_onnx(qat_model, qdq_spec(sample, opset), tmp, failure="quantize: QAT export to QDQ ONNX failed")
        model = onnx.load(str(tmp))
        fold_weight_quantization(model)
        onnx.checker.check_model(model, full_check=True)
        onnx.save(model, str(tmp))
    return out_path


def qdq_spec(sample: torch.Tensor, opset: int) -> ExportSpec:
    """The image classifier's names and dynamic batch, through the TorchScript exporter (module doc)."""
    return ExportSpec([INPUT_NAME], [OUTPUT_NAME], (sample,), opset, dynamo=False,
                      dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}})


def _constants(graph) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    values = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            values[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return values


def _per_axis(param: np.ndarray, rank: int, axis: int) -> np.ndarray:
    if param.ndim == 0:
        return param
    shape = [1] * rank
    shape[axis] = -1
    return param.reshape(shape)


def fold_weight_quantization(model) -> None:
    """QuantizeLinear(float initializer) -> int8 initializer; float Conv/Gemm bias -> int32 + DequantizeLinear."""
    from onnx import helper, numpy_helper

    graph = model.graph
    consts = _constants(graph)
    initializers = {init.name: init for init in graph.initializer}
    producers = {out: node for node in graph.node for out in node.output}
    folded = []
    for node in list(graph.node):
        if node.op_type != "QuantizeLinear" or node.input[0] not in initializers:
            continue
        weight, scale, zero_point = consts[node.input[0]], consts[node.input[1]], consts[node.input[2]]
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        info = np.iinfo(zero_point.dtype)
        # round half to even, as QuantizeLinear and torch's fake quantization do
        q = np.rint(weight / _per_axis(scale, weight.ndim, axis)) + _per_axis(zero_point, weight.ndim, axis)
        graph.initializer.append(numpy_helper.from_array(np.clip(q, info.min, info.max).astype(zero_point.dtype), node.output[0]))
        graph.node.remove(node)
        folded.append(node.input[0])
    for name in folded:
        if not any(name in n.input for n in graph.node):
            graph.initializer.remove(initializers[name])
    _quantize_biases(graph, _constants(graph), producers, helper, numpy_helper)


def _quantize_biases(graph, consts, producers, helper, numpy_helper) -> None:
    """bias_int32 = round(bias / (input_scale * weight_scale)), zero point 0: onnxruntime's convention."""
    for node in list(graph.node):
        if node.op_type not in ("Conv", "Gemm") or len(node.input) < 3 or node.input[2] not in consts:
            continue
        x_dq, w_dq = producers.get(node.input[0]), producers.get(node.input[1])
        if not (x_dq and w_dq and x_dq.op_type == w_dq.op_type == "DequantizeLinear"):
            continue
        scale = (consts[x_dq.input[1]] * consts[w_dq.input[1]]).astype(np.float32).reshape(-1)
        scale = scale.reshape(()) if scale.size == 1 else scale  # per-tensor weights: one scale
        bias = consts[node.input[2]].astype(np.float64)
        q = np.clip(np.rint(bias / scale), -(2**31), 2**31 - 1).astype(np.int32)
        base = node.input[2]
        graph.initializer.extend([numpy_helper.from_array(q, f"{base}_quantized"),
                                  numpy_helper.from_array(scale, f"{base}_scale"),
                                  numpy_helper.from_array(np.zeros(scale.shape, np.int32), f"{base}_zero_point")])
        dq = helper.make_node("DequantizeLinear", [f"{base}_quantized", f"{base}_scale", f"{base}_zero_point"],
                              [f"{base}_dequantized"], name=f"{base}_DequantizeLinear", axis=0)
        graph.node.insert(list(graph.node).index(node), dq)
        node.input[2] = f"{base}_dequantized"
    used = {name for n in graph.node for name in n.input}
    for init in [i for i in graph.initializer if i.name not in used]:
        graph.initializer.remove(init)
