"""The student's preprocessing as ONNX, in the input layout the data config asks for (data.inputs), and the fp32
graph with that preprocessing joined to the network, its one-hot slot selection folded into the first layer.

Written with onnx.helper rather than converted by skl2onnx: skl2onnx's ColumnTransformer converter makes one input per
column and about eight nodes (a Concat of the numbers, Imputer, Scaler, a OneHotEncoder per category column, Concats
and a Reshape), and onnxruntime pays a fixed cost per node and per input at batch 1 that is most of the student's
time. Here the numbers arrive as one (batch, k) float32 input and the categories as one (batch, m) string input
(data.inputs: types), or one input per column gathered by one Concat per kind (data.inputs: columns); the categories go
through a single OneHotEncoder over the union of every column's values. The unfolded graph ('features', exactly
scikit-learn's ColumnTransformer output) is checked against scikit-learn before it is kept (distill.save_preprocessing)
and is what int8 networks are joined behind. For fp32, the selection of each column's one-hot slots (a Gather) is
folded into the first Gemm's weights: Imputer, Scaler, OneHotEncoder, Flatten, Concat, then the network; its outputs
are checked against PyTorch at export.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgekd.data.table_schema import CATEGORICAL_INPUT, NUMERIC_INPUT, TYPES, Schema

FEATURES = "features"


@dataclass
class FrontPlan:
    """The fitted ColumnTransformer's arithmetic: numbers (x := median where NaN; (x - mean) * multiplier, the
    multiplier 1 / scale), then each category column one-hot over its training values (an unseen one: all zeros)."""
    numeric: list[str]
    categorical: list[str]
    medians: np.ndarray
    means: np.ndarray
    multipliers: np.ndarray
    categories: list[list[str]]

    @property
    def union(self) -> list[str]:
        """Every category column's values, one OneHotEncoder slot each."""
        return sorted({c for column in self.categories for c in column})

    def picks(self) -> np.ndarray:
        """For each of scikit-learn's one-hot features, in its order, its slot in the flattened (m, union) one-hot."""
        slot = {c: i for i, c in enumerate(self.union)}
        return np.array([j * len(slot) + slot[c] for j, column in enumerate(self.categories) for c in column], dtype=np.int64)


def plan_of(front, schema: Schema) -> FrontPlan:
    """The numbers a fitted student front (student.fit_preprocessing) holds."""
    k = len(schema.numeric)
    medians = means = multipliers = np.zeros(0, dtype=np.float32)
    if k:
        pipe = front.named_transformers_["numeric"]
        imputer, scaler = pipe.steps[0][1], pipe.steps[1][1]
        medians, means, multipliers = (a.astype(np.float32) for a in (imputer.statistics_, scaler.mean_, 1.0 / scaler.scale_))
    categories = ([[str(c) for c in values] for values in front.named_transformers_["categorical"].categories_]
                  if schema.categorical else [])
    return FrontPlan(schema.numeric, schema.categorical, medians, means, multipliers, categories)


def plan_from_graph(model, schema: Schema) -> FrontPlan:
    """The plan back from a graph front_graph wrote (the run's preprocessing.onnx): its Imputer's and Scaler's numbers,
    the schema's categories (what the encoder was fitted with)."""
    attrs = {node.name: {a.name: list(a.floats) for a in node.attribute} for node in model.graph.node}
    numbers = lambda node, key: np.array(attrs[node][key] if node in attrs else [], dtype=np.float32)  # noqa: E731
    categories = [list(c.categories) for c in schema.columns if c.name in schema.categorical]
    return FrontPlan(schema.numeric, schema.categorical, numbers("impute", "imputed_value_floats"),
                     numbers("standardize", "offset"), numbers("standardize", "scale"), categories)


def front_graph(plan: FrontPlan, schema: Schema, pick: bool = True):
    """Raw inputs (schema.layout) in, scikit-learn's 'features' (batch, F) float out. `pick` False: the features before
    the one-hot slots are picked, [standardized numbers, flattened one-hot over the union] (unpicked_width), which a
    network with its first layer folded (folded_network) takes."""
    from onnx import helper

    name = _namer(schema)
    inputs, nodes, inits, parts = _gather_inputs(plan, schema)
    if plan.categorical and pick:
        inits.append(_tensor(plan.picks(), name("picks")))
        nodes.append(helper.make_node("Gather", [parts[-1], name("picks")], [name("one_hot_picked")], axis=1, name="pick"))
        parts[-1] = name("one_hot_picked")
    nodes.append(_concat(parts, name(FEATURES)))
    width = plan_width(plan) if pick else unpicked_width(plan)
    return _model(nodes, inputs, [_value(name(FEATURES), "float", width)], inits, "preprocessing")


def plan_width(plan: FrontPlan) -> int:
    return len(plan.numeric) + sum(len(c) for c in plan.categories)


def unpicked_width(plan: FrontPlan) -> int:
    """The width of [standardized numbers, flattened one-hot over the union]: what a folded first layer takes."""
    return len(plan.numeric) + len(plan.categories) * len(plan.union)


def unpicked_features(plan: FrontPlan, features: np.ndarray) -> np.ndarray:
    """scikit-learn's features (n, F) as front_graph(pick=False) gives them: each one-hot feature at its slot of the
    union, zeros in the slots of other columns' values (a column's value is always one of its own categories)."""
    k = len(plan.numeric)
    out = np.zeros((len(features), unpicked_width(plan)), dtype=np.float32)
    out[:, :k] = features[:, :k]
    out[:, k + plan.picks()] = features[:, k:]
    return out


def _first_gemm(network):
    """(the network's first node, its weight (out, F) and bias as float64) when it is a plain Gemm on 'features' with
    its weights as initializers; else None (nothing to fold)."""
    from onnx import numpy_helper

    graph = network.graph
    first = [n for n in graph.node if FEATURES in n.input]
    weights = {i.name: i for i in graph.initializer}
    if len(first) != 1 or not _plain_gemm(first[0], weights):
        return None
    gemm = first[0]
    trans_b = next((a.i for a in gemm.attribute if a.name == "transB"), 0)
    w = numpy_helper.to_array(weights[gemm.input[1]]).astype(np.float64)
    w = w if trans_b else w.T  # (out, F)
    b = numpy_helper.to_array(weights[gemm.input[2]]).astype(np.float64) if len(gemm.input) > 2 and gemm.input[2] else np.zeros(len(w))
    return gemm, w, b


def folded_network(plan: FrontPlan, network):
    """The network alone with the one-hot slot selection folded into its first Gemm, as folded_graph folds it: it takes
    front_graph(pick=False)'s features. The int8 model quantizes this network, so that it is a quantized copy of the
    shipped fp32 graph (the same weights, the same parameter count) rather than of the unfolded network (a trial's
    student read 2,437 parameters in fp32 and 1,957 in int8). None when folded_graph would not fold either."""
    import onnx
    from onnx import numpy_helper

    found = _first_gemm(network)
    if found is None:
        return None
    gemm, w, b = found
    w_new, b_new = fold_weights(plan, w, b)
    model = onnx.ModelProto()
    model.CopyFrom(network)
    graph = model.graph
    at = next(i for i, n in enumerate(graph.node) if list(n.input) == list(gemm.input) and n.op_type == "Gemm")
    folded, weight, bias = graph.node[at], "folded_weight", "folded_bias"
    replaced = set(gemm.input[1:]) - {n for i, node in enumerate(graph.node) if i != at for n in node.input}
    kept = [i for i in graph.initializer if i.name not in replaced]
    del graph.initializer[:]
    graph.initializer.extend([*kept, numpy_helper.from_array(w_new.astype(np.float32), weight),
                              numpy_helper.from_array(b_new.astype(np.float32), bias)])
    folded.input[:] = [FEATURES, weight, bias]
    del folded.attribute[:]
    folded.attribute.extend([onnx.helper.make_attribute("transB", 1)])
    features = next(i for i in graph.input if i.name == FEATURES)
    features.type.tensor_type.shape.dim[1].dim_value = unpicked_width(plan)
    onnx.checker.check_model(model)
    return model


def folded_graph(plan: FrontPlan, schema: Schema, network):
    """The fp32 student in one graph, with the one-hot slot selection folded into the first Gemm of
    `network` (an ONNX model taking 'features'); None when that first node is not a plain Gemm on initializers."""
    import onnx
    from onnx import numpy_helper

    graph = network.graph
    found = _first_gemm(network)
    if found is None:
        return None
    gemm, w, b = found
    w_new, b_new = fold_weights(plan, w, b)
    name = _namer(schema)
    inputs, nodes, inits, parts = _gather_inputs(plan, schema)
    nodes.append(_concat(parts, name("raw_features")))
    renamed = _network_names(graph, schema)
    kept = [i for i in graph.initializer if i.name not in set(gemm.input[1:])]
    for init in kept:
        init.name = renamed.get(init.name, init.name)
    inits += [numpy_helper.from_array(w_new.astype(np.float32), name("folded_weight")),
              numpy_helper.from_array(b_new.astype(np.float32), name("folded_bias")), *kept]
    for node in graph.node:
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        copy.input[:] = [renamed.get(i, i) for i in copy.input]
        copy.output[:] = [renamed.get(o, o) for o in copy.output]
        if node is gemm:
            copy.input[:] = [name("raw_features"), name("folded_weight"), name("folded_bias")]
            del copy.attribute[:]
            copy.attribute.extend([onnx.helper.make_attribute("transB", 1)])
        nodes.append(copy)
    return _model(nodes, inputs, list(graph.output), inits, "student", network)


def fold_weights(plan: FrontPlan, w: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """w (out, F) and b of a layer on scikit-learn's features, as the same layer on [standardized numbers, flattened
    one-hot over the union]: a one-hot feature's column moves to its slot, and the slots no feature uses (a value of
    another column) get zeros: ignored, as scikit-learn does. Exact: weights move, no arithmetic. Standardization is
    not folded (w m x - w m mean): with correlated columns the first layer's weights are large and the float32
    cancellation moved the diamonds student's logits by 1.4e-3, above export.parity_atol; the Scaler stays a node."""
    k = len(plan.numeric)
    slots = np.zeros((len(w), len(plan.categories) * len(plan.union)))
    slots[:, plan.picks()] = w[:, k:]
    return np.concatenate([w[:, :k], slots], axis=1), b


def _plain_gemm(node, weights: dict) -> bool:
    """A Gemm on 'features' with its weights (and bias, if any) as initializers, alpha = beta = 1, A not transposed."""
    if node.op_type != "Gemm" or node.input[0] != FEATURES or node.input[1] not in weights:
        return False
    if len(node.input) > 2 and node.input[2] and node.input[2] not in weights:
        return False
    attrs = {a.name: a for a in node.attribute}
    return (attrs["transA"].i == 0 if "transA" in attrs else True) and all(attrs[k].f == 1.0 for k in ("alpha", "beta") if k in attrs)


def _namer(schema: Schema):
    """The graph's own tensor names, kept clear of the columns': with one input per column, a column called 'numbers'
    or 'relu' would otherwise name two tensors, which ONNX refuses."""
    taken = {c.name for c in schema.columns}

    def name(base: str) -> str:
        while base in taken:
            base += "_"
        return base

    return name


def _network_names(graph, schema: Schema) -> dict[str, str]:
    """The network's tensors (the exporter's 'linear', 'relu', 'net.2.weight') that share a column's name, renamed;
    its output keeps its name (the bundle's), so a column called as it is refused."""
    from edgekd.core.errors import ConfigError

    columns, name = {c.name for c in schema.columns}, _namer(schema)
    outputs = {o.name for o in graph.output}
    if outputs & columns:
        raise ConfigError(f"data: column '{sorted(outputs & columns)[0]}' has the name of the model's output; rename the column "
                          "(or use data.inputs: types)")
    inner = {o for node in graph.node for o in node.output} | {i.name for i in graph.initializer}
    return {tensor: name(tensor) for tensor in inner & columns}


def _gather_inputs(plan: FrontPlan, schema: Schema):
    """The layout's inputs and the nodes up to [standardized numbers (batch, k), flattened one-hot (batch, m * union)]."""
    from onnx import helper

    name = _namer(schema)
    inputs, nodes, parts = [], [], []
    if schema.layout == TYPES:
        inputs += [_value(NUMERIC_INPUT, "float", len(plan.numeric))] if plan.numeric else []
        inputs += [_value(CATEGORICAL_INPUT, "string", len(plan.categorical))] if plan.categorical else []
        numbers, categories = NUMERIC_INPUT, CATEGORICAL_INPUT
    else:  # one (batch, 1) input per column, in the schema's order
        inputs = [_value(c.name, "float" if c.name in plan.numeric else "string", 1) for c in schema.columns]
        numbers, categories = name("numbers"), name("categories")
        if plan.numeric:
            nodes.append(_concat(plan.numeric, numbers))
        if plan.categorical:
            nodes.append(_concat(plan.categorical, categories))
    if plan.numeric:
        nodes.append(helper.make_node("Imputer", [numbers], [name("imputed")], domain="ai.onnx.ml", name="impute",
                                      imputed_value_floats=plan.medians.tolist(),
                                      replaced_value_float=float("nan")))
        nodes.append(helper.make_node("Scaler", [name("imputed")], [name("standardized")], domain="ai.onnx.ml",
                                      name="standardize", offset=plan.means.tolist(), scale=plan.multipliers.tolist()))
        parts.append(name("standardized"))
    if plan.categorical:
        nodes.append(helper.make_node("OneHotEncoder", [categories], [name("one_hot")], domain="ai.onnx.ml", name="one_hot",
                                      cats_strings=plan.union, zeros=1))
        nodes.append(helper.make_node("Flatten", [name("one_hot")], [name("one_hot_flat")], axis=1, name="flatten"))
        parts.append(name("one_hot_flat"))
    return inputs, nodes, [], parts


def _concat(names: list[str], out: str):
    from onnx import helper

    if len(names) == 1:
        return helper.make_node("Identity", names, [out], name=f"{out}_only")
    return helper.make_node("Concat", names, [out], axis=1, name=f"{out}_concat")


def _value(name: str, kind: str, width: int):
    from onnx import TensorProto, helper

    return helper.make_tensor_value_info(name, TensorProto.FLOAT if kind == "float" else TensorProto.STRING, ["batch", width])


def _tensor(array: np.ndarray, name: str):
    from onnx import numpy_helper

    return numpy_helper.from_array(array, name)


def _model(nodes, inputs, outputs, inits, name: str, network=None):
    """With `network`: its opsets (the default domain's version the exporter wrote) beside ai.onnx.ml's."""
    import onnx
    from onnx import helper

    from edgekd.train.teacher_kinds import ONNX_OPSET

    opsets = dict(ONNX_OPSET)
    if network is not None:
        opsets.update({o.domain: o.version for o in network.opset_import})
    graph = helper.make_graph(nodes, name, inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets.items()])
    model.ir_version = max(8, network.ir_version if network is not None else 8)
    onnx.checker.check_model(model)
    return model
