"""Which quantized nodes to keep in float first: one instrumented pass over both models, as onnxruntime's
qdq_loss_debug does, instead of one quantization per node.

onnxruntime's tools (modify_model_output_intermediate_tensors, collect_activations, create_activation_matching,
compute_activation_error) give every activation of the int8 QDQ model beside the same tensor of the float model.
Their error at a tensor is cumulative: everything upstream adds to it, and one badly quantized early layer makes
every later tensor equally wrong, hiding a second bad layer behind it. So a node is scored in two parts:
- its own noise: its int8 output against the float node run on the very inputs the int8 model gave it, as a
  noise-to-signal power ratio ||int8 - float||^2 / ||float||^2. That is what keeping the node in float removes (its
  inputs' Q/DQ and its weights' int8). The float node is the float graph's node alone (onnx.utils.Extractor), run
  with onnxruntime on the activations the pass collected: no quantization per node;
- its reach: how much of a noise ratio at its output arrives at the model's outputs, from the gains the same pass
  measured at every node downstream (_reach). The same own noise in the first convolution passes through every later
  layer; own noise alone ranked late layers first on PP-OCR's classifier, whose float versions fixed little.
The score is their product. A node that cannot be run alone (an input the pass does not collect, such as an int64
shape) is scored by the cumulative error it adds (its output's minus its inputs'). The ranking is a heuristic; the
search that uses it (quant/fallback.py) judges every candidate on the validation metric.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgekd.core.metrics import sample_count, take_rows
from edgekd.core.progress import progress
from edgekd.runtimes.ptq import ArrayReader, input_name_of, model_axes

# Activations of both models are held for one chunk of samples at a time: bounded memory whatever the model.
CHUNK_BYTES = 256 * 2**20


@dataclass
class Energy:
    """Squared norms of a float tensor and of its int8 error, summed over samples: additive across chunks (the
    SQNR qdq_loss_debug computes on all samples at once is 10 log10(signal / noise))."""

    signal: float = 0.0
    noise: float = 0.0

    def __add__(self, other: Energy) -> Energy:
        return Energy(self.signal + other.signal, self.noise + other.noise)

    @property
    def noise_ratio(self) -> float:
        return self.noise / self.signal if self.signal > 0 else (0.0 if self.noise == 0 else float("inf"))


def energy(reference, other) -> Energy:
    """err_func for compute_activation_error: the squared norms instead of its SQNR, so that chunks add up."""
    ref = np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in _listed(reference)])
    diff = ref - np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in _listed(other)])
    return Energy(float(ref @ ref), float(diff @ diff))


def _listed(values):
    return [values] if isinstance(values, np.ndarray) else values


@dataclass
class _Node:
    """A quantized node: where its inputs and outputs are in the int8 graph (raw: before any Q/DQ) and in the float
    graph, and the float node alone as an onnxruntime session (None when it cannot run alone)."""

    inputs: list[tuple[str, str]]  # (int8 raw name, float name) of its non-constant inputs
    outputs: list[tuple[str, str]]
    quantized: bool = True  # fed by a DequantizeLinear; other nodes are kept for the propagation estimate only
    producers: list[str] = field(default_factory=list)  # op type making each input in the int8 graph
    alone: object = None
    # Per input: its shape after the batch dimension (the instrumented models give every tensor flattened).
    shapes: list[tuple[int, ...]] = field(default_factory=list)
    local: Energy = field(default_factory=Energy)


def rank_nodes(prepared_fp32: Path, int8_qdq: Path, samples: np.ndarray, nodes: list[str] | None = None) -> list[dict]:
    """Quantized nodes of `int8_qdq` (or `nodes`), highest score first (own noise times reach, see the module doc).
    `prepared_fp32`: the float graph quantize_static quantized (ptq.prepare_for_quantization), so that node and tensor
    names match."""
    from onnxruntime.quantization.qdq_loss_debug import modify_model_output_intermediate_tensors

    graph_nodes = _quantized_nodes(int8_qdq)
    first = next(iter(samples.values())) if isinstance(samples, dict) else samples  # several inputs: the first's
    _attach_float_nodes(prepared_fp32, graph_nodes, first.shape[1:])
    with tempfile.TemporaryDirectory(prefix="edgekd-ranking-") as scratch:
        float_aug, int8_aug = Path(scratch) / "float.onnx", Path(scratch) / "int8.onnx"
        modify_model_output_intermediate_tensors(str(prepared_fp32), str(float_aug))
        modify_model_output_intermediate_tensors(str(int8_qdq), str(int8_aug))
        seen = _one_pass(float_aug, int8_aug, samples, input_name_of(prepared_fp32), graph_nodes,
                         model_axes(prepared_fp32, samples))
    own = _own_noise(graph_nodes, seen)
    reach = _reach(graph_nodes, seen, own, _graph_outputs(int8_qdq))
    return _rank(graph_nodes, own, reach, seen, nodes)


def _one_pass(float_aug: Path, int8_aug: Path, samples: np.ndarray, input_name: str,
              graph_nodes: dict[str, _Node], axes: dict | None = None) -> dict[str, Energy]:
    """Accumulate each node's own error (_Node.local) and return, per float tensor, the Energy of the int8 model's
    value after its Q/DQ, as the next node reads it (qdq_loss_debug's cross-model error)."""
    from onnxruntime.quantization.qdq_loss_debug import (
        collect_activations,
        compute_activation_error,
        create_activation_matching,
    )

    seen: dict[str, Energy] = {}
    chunks = _chunks(float_aug, samples, input_name, axes)
    for chunk in progress(chunks, desc="int8 error per node (one pass)", unit="chunk"):
        float_acts = collect_activations(str(float_aug), ArrayReader(input_name, chunk, axes=axes))
        int8_acts = collect_activations(str(int8_aug), ArrayReader(input_name, chunk, axes=axes))
        matching = {name: m for name, m in create_activation_matching(int8_acts, float_acts).items() if "float" in m}
        found = {name: errors["xmodel_err"] for name, errors in compute_activation_error(matching, energy).items()}
        # Tensors with no Q/DQ after them (a Gemm's output that onnxruntime leaves float, the logits): compared as is.
        plain = {name: energy(float_acts[name], values) for name, values in int8_acts.items()
                 if name in float_acts and name not in matching}
        for name, value in {**found, **plain}.items():
            seen[name] = seen.get(name, Energy()) + value
        for node in graph_nodes.values():
            if node.quantized:
                _add_local_error(node, int8_acts)
    return seen


def _add_local_error(node: _Node, int8_acts: dict[str, list[np.ndarray]]) -> None:
    if node.alone is None:
        return
    fed = [_input_as_fed(raw, name, int8_acts) for raw, name in node.inputs]
    read = [_as_read(raw, name, int8_acts) for raw, name in node.outputs]
    if any(name not in int8_acts for name in fed + read):
        node.alone = None
        return
    feeds = {name: np.concatenate([batch.reshape(-1, *shape) for batch in int8_acts[source]])
             for (_, name), source, shape in zip(node.inputs, fed, node.shapes, strict=True)}
    floats = node.alone.run([name for _, name in node.outputs], feeds)
    for tensor, reference in zip(read, floats, strict=True):
        node.local = node.local + energy(reference, np.concatenate(int8_acts[tensor]))


_READ = "\0read:"  # marks an input to feed after its Q/DQ (see _attach_float_nodes)


def _as_read(raw: str, name: str, int8_acts: dict) -> str:
    """The int8 tensor as the next node reads it: after its Q/DQ when it has one. Not the node's raw output: onnxruntime
    drops a Relu (or Clip) after a quantized node and lets the Q/DQ's range do the clamping, so the raw output is the
    pre-activation one, unlike the float graph's tensor of the same name."""
    from onnxruntime.quantization.quant_utils import DEQUANT_OUTPUT_SUFFIX

    if name + DEQUANT_OUTPUT_SUFFIX in int8_acts:
        return name + DEQUANT_OUTPUT_SUFFIX
    return name if raw != name and name in int8_acts else raw


def _input_as_fed(raw: str, name: str, int8_acts: dict) -> str:
    return _as_read(name, name, int8_acts) if raw.startswith(_READ) else raw


def _chunks(float_aug: Path, samples: np.ndarray, input_name: str, axes: dict | None = None) -> list[np.ndarray]:
    """Samples in chunks whose activations (both models, int8 ones twice: before and after Q/DQ) fit CHUNK_BYTES,
    judged from the float model's activations on one sample."""
    from onnxruntime.quantization.qdq_loss_debug import collect_activations

    one = collect_activations(str(float_aug), ArrayReader(input_name, take_rows(samples, slice(0, 1)), axes=axes))
    per_sample = 3 * sum(a.nbytes for values in one.values() for a in values)
    count = sample_count(samples)
    size = int(max(1, min(count, CHUNK_BYTES // max(per_sample, 1))))
    return [take_rows(samples, slice(i, i + size)) for i in range(0, count, size)]


def _quantized_nodes(int8_qdq: Path) -> dict[str, _Node]:
    """Per node fed by a DequantizeLinear: its non-constant inputs and its outputs, as (int8 raw name, float name).
    An input read through Q/DQ is the tensor that went into the QuantizeLinear; weights (initializers, constants)
    are left out."""
    import onnx
    from onnxruntime.quantization.quant_utils import QUANT_INPUT_SUFFIX

    graph = onnx.load(str(int8_qdq), load_external_data=False).graph
    producer = {out: node for node in graph.node for out in node.output}
    constant = {t.name for t in graph.initializer} | {out for n in graph.node if n.op_type == "Constant" for out in n.output}

    def raw(tensor: str) -> str | None:
        node = producer.get(tensor)
        if node is not None and node.op_type == "DequantizeLinear":
            quantize = producer.get(node.input[0])
            if quantize is None or quantize.op_type != "QuantizeLinear":
                return None  # an int8 weight stored as such
            tensor = quantize.input[0]
        return None if tensor in constant else tensor

    out = {}
    for index, node in enumerate(graph.node):  # ONNX keeps nodes in topological order; so does this dict
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            continue
        quantized = bool(node.name) and any((p := producer.get(t)) is not None and p.op_type == "DequantizeLinear"
                                            for t in node.input)
        inputs = [(r, r.removesuffix(QUANT_INPUT_SUFFIX)) for r in (raw(t) for t in node.input if t) if r]
        outputs = [(t, t.removesuffix(QUANT_INPUT_SUFFIX)) for t in node.output if t]
        inputs = list(dict.fromkeys(inputs))
        ops = [producer[r].op_type if r in producer else "" for r, _ in inputs]
        out[node.name if quantized else f"#{index}"] = _Node(inputs, outputs, quantized, ops)
    return out


def _graph_outputs(int8_qdq: Path) -> list[str]:
    import onnx
    from onnxruntime.quantization.quant_utils import QUANT_INPUT_SUFFIX

    return [o.name.removesuffix(QUANT_INPUT_SUFFIX) for o in onnx.load(str(int8_qdq), load_external_data=False).graph.output]


def _attach_float_nodes(prepared_fp32: Path, graph_nodes: dict[str, _Node], sample_shape: tuple[int, ...]) -> None:
    """Each node's float version alone: the float graph between its inputs and outputs (onnx.utils.Extractor, which
    keeps the float weights), as an onnxruntime session."""
    import onnx
    from onnx.utils import Extractor

    from edgekd.runtimes.ort import open_session

    model = _with_sample_shape(onnx.load(str(prepared_fp32)), sample_shape)
    float_producer = {out: n.op_type for n in model.graph.node for out in n.output}
    extractor = Extractor(model)
    for node in (n for n in graph_nodes.values() if n.quantized):
        # An input whose int8 producer is not the float one (a Conv whose Relu onnxruntime dropped, letting the Q/DQ
        # clamp) is fed as the node reads it, after its Q/DQ: its raw value is the pre-activation one.
        node.inputs = [(raw if op == float_producer.get(name, "") else _READ + name, name)
                       for (raw, name), op in zip(node.inputs, node.producers, strict=True)]
        try:
            alone = extractor.extract_model([name for _, name in node.inputs], [name for _, name in node.outputs])
            if len(alone.graph.node) > 4:  # reached back past its inputs (e.g. a computed shape): not one node
                continue
            node.shapes = [_shape_after_batch(alone, name) for _, name in node.inputs]
            if any(shape is None for shape in node.shapes):
                continue
            node.alone = open_session(alone.SerializeToString(), threads=1)
        except Exception:  # noqa: BLE001 - onnx and onnxruntime raise many types; such a node falls back (module doc)
            node.alone = None


def _with_sample_shape(model, sample_shape: tuple[int, ...]):
    """The float graph with its input's dimensions after the batch set to the samples' and shapes inferred again: the
    instrumented pass flattens every tensor, and a model with free height and width (an OCR model) says nothing
    about its tensors' shapes otherwise."""
    import onnx

    initializers = {t.name for t in model.graph.initializer}
    first = next(i for i in model.graph.input if i.name not in initializers)
    dims = first.type.tensor_type.shape.dim
    if len(dims) == len(sample_shape) + 1:
        for dim, size in zip(list(dims)[1:], sample_shape, strict=True):
            dim.Clear()
            dim.dim_value = int(size)
        del model.graph.value_info[:]
        try:
            model = onnx.shape_inference.infer_shapes(model)
        except Exception:  # noqa: BLE001 - onnx raises several types; the nodes it cannot shape fall back (module doc)
            pass
    return model


def _shape_after_batch(model, name: str) -> tuple[int, ...] | None:
    """The known dimensions after the first (batch) one of input `name`, or None when one is not known."""
    info = next((i for i in model.graph.input if i.name == name), None)
    dims = info.type.tensor_type.shape.dim if info is not None and info.type.tensor_type.HasField("shape") else None
    if not dims:
        return None
    rest = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in list(dims)[1:])
    return None if any(d <= 0 for d in rest) else rest


def _own_noise(graph_nodes: dict[str, _Node], seen: dict[str, Energy]) -> dict[str, tuple[float, str]]:
    """Per quantized node: (its own noise-to-signal ratio, how it was measured), see the module doc."""
    out = {}
    for name, node in graph_nodes.items():
        if not node.quantized:
            continue
        if node.alone is not None and node.local.signal + node.local.noise > 0:
            out[name] = (node.local.noise_ratio, "alone")
            continue
        out_noise = max((seen[f].noise_ratio for _, f in node.outputs if f in seen), default=0.0)
        in_noise = max((seen[f].noise_ratio for _, f in node.inputs if f in seen), default=0.0)
        out[name] = (max(0.0, out_noise - in_noise), "cumulative")
    return out


# A node's measured gain (its output's noise ratio over its input's) is capped: a near-exact input makes the
# quotient meaningless, and one wild quotient would otherwise decide the order of everything upstream.
MAX_GAIN = 4.0


def _reach(graph_nodes: dict[str, _Node], seen: dict[str, Energy], own: dict[str, tuple[float, str]],
           outputs: list[str]) -> dict[str, float]:
    """Per tensor: how much of a unit noise-to-signal ratio there reaches the model's outputs, by the pass's own
    numbers. A node turns the noise ratio it reads into its output's plus its own noise (both after Q/DQ),
    so its gain is (output ratio - own) / input ratio; noise at a tensor reaches the outputs through every node
    that reads it. Walked from the outputs back (the graph is in topological order). Why: the same own noise in the
    first convolution reaches the logits through every later layer; ranking by own noise alone picked late layers
    whose float versions fixed little (benchmarks/results/fallback_search.md)."""
    reach = {name: 1.0 for name in outputs}
    for name, node in reversed(list(graph_nodes.items())):
        downstream = sum(reach.get(f, 0.0) for _, f in node.outputs)
        if downstream == 0:
            continue
        in_ratio = max((seen[f].noise_ratio for _, f in node.inputs if f in seen), default=0.0)
        out_ratio = max((seen[f].noise_ratio for _, f in node.outputs if f in seen), default=0.0)
        if in_ratio <= 0:
            continue
        gain = min(MAX_GAIN, max(0.0, out_ratio - own.get(name, (0.0, ""))[0]) / in_ratio)
        for _, f in node.inputs:
            reach[f] = reach.get(f, 0.0) + gain * downstream
    return reach


def _rank(graph_nodes: dict[str, _Node], own: dict[str, tuple[float, str]], reach: dict[str, float],
          seen: dict[str, Energy], nodes: list[str] | None) -> list[dict]:
    rows = []
    for name in nodes if nodes is not None else [n for n, node in graph_nodes.items() if node.quantized]:
        if name not in own:
            rows.append({"node": name, "score": 0.0, "noise_added": 0.0, "measured": "unknown node"})
            continue
        noise, how = own[name]
        downstream = sum(reach.get(f, 0.0) for _, f in graph_nodes[name].outputs)
        output_noise = max((seen[f].noise_ratio for _, f in graph_nodes[name].outputs if f in seen), default=None)
        rows.append({"node": name, "score": noise * downstream, "noise_added": noise, "reach": downstream,
                     "measured": how, "output_noise": output_noise})
    # Stable sort: equal scores keep the graph's order.
    return sorted(rows, key=lambda row: -row["score"])
