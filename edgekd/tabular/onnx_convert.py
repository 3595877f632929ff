"""Fitted scikit-learn teachers as ONNX with skl2onnx, LightGBM and XGBoost
through onnxmltools' converters, and the teachers joined into one ensemble graph: the baseline a user would deploy
instead of the student (TreeEnsemble operators), timed on onnxruntime beside it.

Every graph takes the table's raw columns, one (batch, 1) input per column named as it (float for numbers, string
for categories), so the ensemble, each teacher and the student are fed the same eval rows.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edgekd.core.errors import DataError
from edgekd.data.table_schema import NUMERIC, Schema
from edgekd.train.teacher_kinds import ONNX_OPSET

PROBABILITIES = "probabilities"
# Numbers a member may take a column as, other than float (onnx.TensorProto's names). The ensemble's shared input
# stays float (what edgekd feeds) and is cast for that member.
OTHER_NUMBERS = ("DOUBLE", "INT64", "INT32")


def initial_types(schema: Schema) -> list:
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    return [(c.name, FloatTensorType([None, 1]) if c.kind == NUMERIC else StringTensorType([None, 1])) for c in schema.columns]


def _register_boosters() -> None:
    """LightGBM's and XGBoost's converters (onnxmltools) registered with skl2onnx, so a pipeline ending in one converts."""
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import calculate_linear_classifier_output_shapes

    try:
        from lightgbm import LGBMClassifier
        from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm

        update_registered_converter(LGBMClassifier, "LightGbmLGBMClassifier", calculate_linear_classifier_output_shapes,
                                    convert_lightgbm, options={"nocl": [True, False], "zipmap": [True, False, "columns"]})
    except ImportError:
        pass
    try:
        from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost
        from xgboost import XGBClassifier

        update_registered_converter(XGBClassifier, "XGBoostXGBClassifier", calculate_linear_classifier_output_shapes,
                                    convert_xgboost, options={"nocl": [True, False], "zipmap": [True, False, "columns"]})
    except ImportError:
        pass


def teacher_onnx(model, schema: Schema):
    """A fitted classifier (its table front included) as ONNX: raw columns in, 'probabilities' (batch, classes) out.
    Returns (onnx.ModelProto, None), or (None, the converter's reason) when no converter fits a member."""
    try:
        from skl2onnx import to_onnx
    except ImportError:
        return None, "skl2onnx is not installed (pip install 'edgekd[tabular]')"
    _register_boosters()
    try:
        onx = to_onnx(model, initial_types=initial_types(schema), target_opset=dict(ONNX_OPSET),
                      options={"zipmap": False})
    except Exception as exc:  # skl2onnx raises RuntimeError/NotImplementedError/MissingShapeCalculator for unsupported models
        cause = exc.__cause__ or exc  # skl2onnx wraps the converter's own error, which says what went wrong
        return None, f"skl2onnx cannot convert {type(model).__name__}: {type(cause).__name__}: {str(cause).splitlines()[0][:160]}"
    names = [o.name for o in onx.graph.output]
    if PROBABILITIES not in names:
        return None, f"the converted graph has no '{PROBABILITIES}' output ({', '.join(names)})"
    return _inputs_named_as_columns(onx, schema), None


def _inputs_named_as_columns(onx, schema: Schema):
    """The graph's inputs renamed back to the table's column names: skl2onnx rewrites a name that is not an
    identifier ('table (%)' -> 'table____', 'price.usd' -> 'price_usd'), and every graph here is fed by column name."""
    renamed = {graph_input.name: column.name for graph_input, column in zip(onx.graph.input, schema.columns)}
    return inputs_renamed(onx, renamed)


def inputs_renamed(onx, renamed: dict[str, str]):
    """The graph with its inputs renamed ({input: column}), in place: the inputs and the nodes that read them."""
    renamed = {old: new for old, new in renamed.items() if old != new}
    if not renamed:
        return onx
    taken = {name for node in onx.graph.node for name in (*node.input, *node.output)} - set(renamed)
    for graph_input in onx.graph.input:
        if renamed.get(graph_input.name) in taken:  # the column's name is already a tensor of the converted graph
            raise DataError(f"column '{renamed[graph_input.name]}': its name is taken inside the converted teacher graph; "
                            "rename the column in the file")
        graph_input.name = renamed.get(graph_input.name, graph_input.name)
    for node in onx.graph.node:
        node.input[:] = [renamed.get(name, name) for name in node.input]
    return onx


def _output_type(graph, name: str) -> int:
    return next(o.type.tensor_type.elem_type for o in graph.output if o.name == name)


def _as_float(value):
    """A copy of a graph input's value info typed float: the ensemble's shared input for a numeric column."""
    from onnx import TensorProto

    copy = type(value)()
    copy.CopyFrom(value)
    copy.type.tensor_type.elem_type = TensorProto.FLOAT
    return copy


def ensemble_onnx(members: list, weights: list[float], path: Path) -> Path:
    """One graph: every member's nodes side by side on the shared raw-column inputs, their probabilities averaged
    with the ensemble weights (prob_mean) into 'probabilities'. Written by hand with onnx.helper because
    onnx.compose.merge_models joins graphs in series (one's outputs into the other's inputs), not side by side."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, initializers, inputs, outputs_to_mix = [], [], {}, []
    opsets: dict[str, int] = {}
    for number, member in enumerate(members):
        graph, prefix = member.graph, f"m{number}_"
        cast = {i.name for i in graph.input if TensorProto.DataType.Name(i.type.tensor_type.elem_type) in OTHER_NUMBERS}
        keep = {i.name for i in graph.input} - cast
        rename = lambda name, keep=keep, prefix=prefix: name if (name in keep or not name) else prefix + name  # noqa: E731
        for value in graph.input:
            inputs.setdefault(value.name, _as_float(value) if value.name in cast else value)
            if value.name in cast:  # the shared float column, cast to the number type this member declares
                nodes.append(helper.make_node("Cast", [value.name], [prefix + value.name], name=f"{prefix}cast_{value.name}",
                                              to=value.type.tensor_type.elem_type))
        for init in graph.initializer:
            copy = onnx.TensorProto()
            copy.CopyFrom(init)
            copy.name = rename(init.name)
            initializers.append(copy)
        for node in graph.node:
            copy = onnx.NodeProto()
            copy.CopyFrom(node)
            copy.name = prefix + (node.name or f"node{len(nodes)}")
            copy.input[:] = [rename(n) for n in node.input]
            copy.output[:] = [rename(n) for n in node.output]
            nodes.append(copy)
        mixed = rename(PROBABILITIES)
        if _output_type(graph, PROBABILITIES) != TensorProto.FLOAT:  # skl2onnx's double probabilities of a float64 frame
            nodes.append(helper.make_node("Cast", [mixed], [mixed + "_float"], name=f"{prefix}cast_probabilities", to=TensorProto.FLOAT))
            mixed += "_float"
        outputs_to_mix.append(mixed)
        for opset in member.opset_import:
            opsets[opset.domain] = max(opsets.get(opset.domain, 0), opset.version)
    total = float(sum(weights))
    scaled = []
    for number, (name, weight) in enumerate(zip(outputs_to_mix, weights)):
        initializers.append(numpy_helper.from_array(np.array(weight / total, dtype=np.float32), f"weight{number}"))
        nodes.append(helper.make_node("Mul", [name, f"weight{number}"], [f"weighted{number}"], name=f"weigh{number}"))
        scaled.append(f"weighted{number}")
    nodes.append(helper.make_node("Sum", scaled, [PROBABILITIES], name="ensemble_mean"))
    output = helper.make_tensor_value_info(PROBABILITIES, TensorProto.FLOAT, ["batch", None])
    graph = helper.make_graph(nodes, "ensemble", list(inputs.values()), [output], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets.items()])
    model.ir_version = max(m.ir_version for m in members)
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path
