"""int8 (or 4-bit) weights for a language model's exported decoder (edgekd.lm.export) with onnxruntime's
quantization tools (ort_quantize.py): the onnxruntime backend's decoder quantizer (OrtBackend.quantize_decoder, issue
33: runtimes/ owns every quantizer); no torch.

Two kinds; in both, only products with a stored weight change (attention and the KV cache stay float):
* `dynamic`: quantize_dynamic, MatMulInteger with int8 weights and activations quantized per call.
  Only matrix products with a constant weight are quantized (MatMulConstBOnly): attention's activation x
  activation products stay float, where int8 costs accuracy and saves no file size.
* `nbits8` / `nbits4`: MatMulNBits, weights in blocks of `block_size` with one scale each (onnxruntime's
  recipe for LLMs on CPU). accuracy_level 4 multiplies in int8 (activations quantized per block) instead of
  dequantizing weights to float: on this AVX2 machine the 2 x 128 student decoded 8-bit at 0.17x its fp32
  tokens/s without it (benchmarks/lm_probe.py at commit f8653d4) and 1.6x with it (the current results). Its
  accuracy is what the perplexity gate must judge on the target.

Both quantizers only take MatMul nodes with a constant weight, while the exporter writes GPT-2's linear layers
(transformers' Conv1D, an addmm) as Gemm and the output layer, tied to the embedding, as MatMul(x,
Transpose(embedding)). `gemm_as_matmul` rewrites both first; onnxruntime ships no public pass for this, hence
the short rewrite here.
"""
from __future__ import annotations

from pathlib import Path

from edgekd.core.errors import ArtifactError, ConfigError
from edgekd.core.fileio import atomic_path
from edgekd.runtimes.ort_quantize import dynamic_int8_constant_matmuls, matmul_nbits

METHODS = ("dynamic", "nbits8", "nbits4")  # OrtBackend.decoder_methods


def quantize_decoder(source: str | Path, target: str | Path, method: str = "dynamic", reduce_range: bool = True,
                     block_size: int = 32, accuracy_level: int | None = 4) -> Path:
    """Write the quantized copy of `source` to `target` (atomically; `source` is left as it is).

    reduce_range (dynamic only): 7-bit weights. x86 CPUs without VNNI/AMX sum pairs of u8 x s8 products in a
    saturating int16, and full-range int8 weights overflow it; edgekd's image pipeline chooses this per host
    (edgekd/quant/host.py), which the pipeline wiring should do here too. True is exact on every CPU."""
    import onnx

    if method not in METHODS:
        raise ConfigError(f"lm quantize: unknown method {method!r}; use one of {', '.join(METHODS)}")
    if not Path(source).is_file():
        raise ArtifactError(f"{source}: decoder ONNX file not found; export one with edgekd.lm.export.export_decoder")
    model = gemm_as_matmul(onnx.load(str(source)))
    target = Path(target)
    with atomic_path(target) as tmp:
        if method == "dynamic":
            dynamic_int8_constant_matmuls(model, tmp, reduce_range)
        else:
            matmul_nbits(model, tmp, int(method[len("nbits"):]), block_size, accuracy_level)
    return target


def gemm_as_matmul(model):
    """Every Gemm with a constant weight, alpha = beta = 1 and no transposed input A as MatMul (+ Add for C), and
    every MatMul whose weight is Transpose(constant) (the tied output layer) with the transposed constant stored."""
    weights = {init.name: init for init in model.graph.initializer}
    transposed_constants = {node.output[0]: node.input[0] for node in model.graph.node
                            if node.op_type == "Transpose" and node.input[0] in weights and _attributes(node).get("perm", [1, 0]) == [1, 0]}
    nodes = []
    for node in model.graph.node:
        if node.op_type == "MatMul" and node.input[1] in transposed_constants:
            node.input[1] = _transposed(model, weights, transposed_constants[node.input[1]])
            nodes.append(node)
        elif _is_plain_gemm(node, weights):
            nodes.extend(_as_matmul(model, weights, node))
        else:
            nodes.append(node)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return model


def _attributes(node) -> dict:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _is_plain_gemm(node, weights: dict) -> bool:
    attrs = _attributes(node)
    return (node.op_type == "Gemm" and node.input[1] in weights and not attrs.get("transA", 0)
            and attrs.get("alpha", 1.0) == 1.0 and attrs.get("beta", 1.0) == 1.0)


def _as_matmul(model, weights: dict, node) -> list:
    from onnx import helper

    weight = _transposed(model, weights, node.input[1]) if _attributes(node).get("transB", 0) else node.input[1]
    has_bias = len(node.input) > 2 and node.input[2]
    product = f"{node.output[0]}_matmul" if has_bias else node.output[0]
    nodes = [helper.make_node("MatMul", [node.input[0], weight], [product], name=f"{node.output[0]}_as_matmul")]
    if has_bias:
        nodes.append(helper.make_node("Add", [product, node.input[2]], [node.output[0]], name=f"{node.output[0]}_as_bias"))
    return nodes


def _transposed(model, weights: dict, name: str) -> str:
    """The name of a stored transposed copy of constant `name` (made once): quantizers need the weight as a constant."""
    from onnx import numpy_helper

    copy = f"{name}_transposed"
    if copy not in weights:
        weights[copy] = numpy_helper.from_array(numpy_helper.to_array(weights[name]).T.copy(), copy)
        model.graph.initializer.append(weights[copy])
    return copy
