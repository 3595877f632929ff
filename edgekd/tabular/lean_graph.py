"""The student's preprocessing folded into its first layer, as a lean ONNX front: raw columns in, the first layer's
pre-activation out.

The fitted preprocessing is affine per column (standardize: (x - mean) / scale) or a lookup (one-hot), and the
network's first layer is linear, so both fold into it exactly:
- numbers: W' = W / scale and b' = b - W (mean / scale), after median imputation (IsNaN, Where), one Gemm;
- categories: one-hot(c) @ W = row c of W's block, so each column is a LabelEncoder (string -> row index; an
  unseen category -> a row of zeros, as OneHotEncoder's handle_unknown='ignore' gives) and every column's rows are
  gathered from one table at once (Concat, Gather, ReduceSum).

Written with onnx.helper because no converter folds preprocessing into the next layer: skl2onnx's graph of the same
ColumnTransformer (Imputer, Scaler, one OneHotEncoder per column, Concat, Casts; onnx_convert.preprocessing_onnx)
is exact but at batch 1 its per-node cost was most of the student's latency, and onnxruntime's optimizer cannot
fold ONNX-ML operators into a Gemm. tests/tabular/test_lean_graph.py checks this graph against that one.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from edgekd.data.table_schema import Schema

HIDDEN = "hidden"  # the front's output: the first layer's pre-activation, the tail's input


@dataclass(frozen=True)
class FrontConstants:
    """The fitted preprocessing's numbers (JSON-safe): median, mean and scale per numeric column, categories per
    categorical column, in the ColumnTransformer's output order (numbers first)."""

    numeric: tuple[str, ...]
    median: tuple[float, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    categorical: tuple[tuple[str, tuple[str, ...]], ...]

    @classmethod
    def from_fitted(cls, front, schema: Schema) -> FrontConstants:
        numeric = tuple(schema.numeric)
        median = mean = scale = ()
        if numeric:
            imputer, scaler = front.named_transformers_["numeric"].steps[0][1], front.named_transformers_["numeric"].steps[1][1]
            median, mean, scale = (tuple(float(v) for v in a) for a in (imputer.statistics_, scaler.mean_, scaler.scale_))
        categorical = ()
        if schema.categorical:
            encoder = front.named_transformers_["categorical"]
            categorical = tuple((name, tuple(str(c) for c in cats)) for name, cats in zip(schema.categorical, encoder.categories_))
        return cls(numeric, median, mean, scale, categorical)

    def to_json(self) -> dict[str, Any]:
        return {"numeric": [{"name": n, "median": m, "mean": u, "scale": s}
                            for n, m, u, s in zip(self.numeric, self.median, self.mean, self.scale)],
                "categorical": [{"name": n, "categories": list(c)} for n, c in self.categorical]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FrontConstants:
        numeric = data["numeric"]
        return cls(tuple(c["name"] for c in numeric), tuple(c["median"] for c in numeric), tuple(c["mean"] for c in numeric),
                   tuple(c["scale"] for c in numeric), tuple((c["name"], tuple(c["categories"])) for c in data["categorical"]))

    @property
    def width(self) -> int:
        return len(self.numeric) + sum(len(c) for _, c in self.categorical)

    def features(self, x: dict[str, np.ndarray]) -> np.ndarray:
        """The preprocessing's features in numpy (what the ColumnTransformer computes), for parity checks."""
        parts = []
        if self.numeric:
            values = np.concatenate([x[n].astype(np.float32) for n in self.numeric], axis=1)
            values = np.where(np.isnan(values), np.float32(self.median), values)
            parts.append((values - np.float32(self.mean)) / np.float32(self.scale))
        for name, categories in self.categorical:
            parts.append((x[name].astype(str) == np.array(categories, dtype=str)[None, :]).astype(np.float32))
        return np.concatenate(parts, axis=1).astype(np.float32)


def fold(constants: FrontConstants, weight: np.ndarray, bias: np.ndarray) -> dict[str, np.ndarray]:
    """The first layer (weight: (out, features), bias: (out,)) with the preprocessing folded in: the numeric Gemm's
    weight and bias, and the categories' lookup table (one row per category, a last row of zeros for unseen ones)."""
    weight, bias = weight.astype(np.float64), bias.astype(np.float64)
    n = len(constants.numeric)
    mean, scale = np.asarray(constants.mean, dtype=np.float64), np.asarray(constants.scale, dtype=np.float64)
    numeric_weight = weight[:, :n] / scale[None, :] if n else weight[:, :0]
    folded_bias = bias - (numeric_weight @ mean if n else 0.0)
    table = np.concatenate([weight[:, n:].T, np.zeros((1, weight.shape[0]))], axis=0)
    return {"numeric_weight": numeric_weight.T.astype(np.float32), "bias": folded_bias.astype(np.float32),
            "table": table.astype(np.float32)}


def front_graph(constants: FrontConstants, schema: Schema, weight: np.ndarray, bias: np.ndarray, opset: int,
                output: str = HIDDEN):
    """raw columns ((batch, 1) each, named as the schema's columns) -> `output` (batch, out): the first layer of
    the network applied to the preprocessed features."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from edgekd.train.teacher_kinds import ONNX_OPSET

    folded = fold(constants, weight, bias)
    nodes, inits, summands = [], [], []
    if constants.numeric:
        inits += [numpy_helper.from_array(np.asarray(constants.median, dtype=np.float32), "median"),
                  numpy_helper.from_array(folded["numeric_weight"], "numeric_weight"),
                  numpy_helper.from_array(folded["bias"], "bias")]
        nodes += [helper.make_node("Concat", list(constants.numeric), ["numbers"], axis=1, name="numbers"),
                  helper.make_node("IsNaN", ["numbers"], ["missing"], name="missing"),
                  helper.make_node("Where", ["missing", "median", "numbers"], ["imputed"], name="impute"),
                  helper.make_node("Gemm", ["imputed", "numeric_weight", "bias"], ["from_numbers"], name="numbers_layer")]
        summands.append("from_numbers")
    else:
        inits.append(numpy_helper.from_array(folded["bias"], "bias"))
        summands.append("bias")
    if constants.categorical:
        nodes += _category_lookup(constants, folded["table"], inits)
        summands.append("from_categories")
    nodes.append(helper.make_node("Sum", summands, [output], name="first_layer") if len(summands) > 1
                 else helper.make_node("Identity", summands, [output], name="first_layer"))
    inputs = [helper.make_tensor_value_info(c.name, TensorProto.FLOAT if c.name in constants.numeric else TensorProto.STRING,
                                            ["batch", 1]) for c in schema.columns]
    out = helper.make_tensor_value_info(output, TensorProto.FLOAT, ["batch", weight.shape[0]])
    graph = helper.make_graph(nodes, "table_front", inputs, [out], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset),
                                                    helper.make_opsetid("ai.onnx.ml", ONNX_OPSET["ai.onnx.ml"])])
    onnx.checker.check_model(model, full_check=True)
    return model


def _category_lookup(constants: FrontConstants, table: np.ndarray, inits: list) -> list:
    """Each categorical column's string -> its row of the shared table (offset by the columns before it); the rows
    of every column gathered at once and summed: what one-hot @ W gives."""
    from onnx import helper, numpy_helper

    nodes, indices, offset = [], [], 0
    unseen = len(table) - 1
    for number, (name, categories) in enumerate(constants.categorical):
        nodes.append(helper.make_node("LabelEncoder", [name], [f"row{number}"], domain="ai.onnx.ml", name=f"encode{number}",
                                      keys_strings=list(categories), values_int64s=list(range(offset, offset + len(categories))),
                                      default_int64=unseen))
        indices.append(f"row{number}")
        offset += len(categories)
    inits += [numpy_helper.from_array(table, "category_table"), numpy_helper.from_array(np.array([1], dtype=np.int64), "column_axis")]
    if len(indices) > 1:
        nodes.append(helper.make_node("Concat", indices, ["rows"], axis=1, name="rows"))
    rows = "rows" if len(indices) > 1 else indices[0]
    nodes += [helper.make_node("Gather", ["category_table", rows], ["looked_up"], axis=0, name="lookup"),
              helper.make_node("ReduceSum", ["looked_up", "column_axis"], ["from_categories"], keepdims=0, name="sum_columns")]
    return nodes
