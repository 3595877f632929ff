"""A table's schema and the check of raw rows against it: what a tabular bundle takes, torch- and scikit-learn-free so
`edgekd bench` on the device runs it.

A tabular model takes one named ONNX input per column, each (batch, 1): a float32 for a numeric column (NaN where a
value is missing) and a string for a categorical one (the empty string where a value is missing: its own category).
The schema (in the manifest's preprocessing.tabular) lists the columns in that order with each one's kind and, for
categories, the values seen in training. Rows that do not fit it are refused with one line naming the column,
rather than scored silently wrong (an unseen category would one-hot to all zeros).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgekd.core.errors import DataError

NUMERIC, CATEGORICAL = "numeric", "categorical"
MISSING_CATEGORY = ""  # a missing categorical value: its own category, the empty string


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # numeric or categorical
    categories: tuple[str, ...] = ()  # categorical: the values seen in training, sorted

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, **({"categories": list(self.categories)} if self.kind == CATEGORICAL else {})}


@dataclass(frozen=True)
class Schema:
    target: str
    classes: tuple[str, ...]
    columns: tuple[Column, ...] = field(default_factory=tuple)

    @property
    def numeric(self) -> list[str]:
        return [c.name for c in self.columns if c.kind == NUMERIC]

    @property
    def categorical(self) -> list[str]:
        return [c.name for c in self.columns if c.kind == CATEGORICAL]

    def to_json(self) -> dict[str, Any]:
        return {"target": self.target, "classes": list(self.classes), "columns": [c.to_json() for c in self.columns],
                "inputs": "one (batch, 1) input per column, named as it: float32 for numeric (NaN: missing), string for "
                          "categorical ('': missing)"}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Schema:
        columns = tuple(Column(c["name"], c["kind"], tuple(c.get("categories", ()))) for c in data["columns"])
        return cls(data["target"], tuple(data["classes"]), columns)


def model_inputs(schema: Schema, rows: dict[str, Any], where: str) -> dict[str, np.ndarray]:
    """{column: (n, 1) array} in the model's dtypes from raw rows ({column: values}), or one line naming the column."""
    missing = [c.name for c in schema.columns if c.name not in rows]
    if missing:
        raise DataError(f"{where}: column '{missing[0]}' is missing; the model takes {', '.join(c.name for c in schema.columns)}")
    return {column.name: _column(column, np.asarray(rows[column.name]).reshape(-1), where).reshape(-1, 1)
            for column in schema.columns}


def _column(column: Column, values: np.ndarray, where: str) -> np.ndarray:
    if column.kind == NUMERIC:
        return numeric_values(values, column.name, where)
    text = np.array(["" if _is_missing(v) else str(v) for v in values.tolist()], dtype=str) if values.dtype.kind != "U" else values
    known = set(column.categories)
    unknown = [i for i, v in enumerate(text.tolist()) if v not in known]
    if unknown:
        row = unknown[0]
        shown = ", ".join(repr(c) for c in column.categories[:12]) + (", ..." if len(column.categories) > 12 else "")
        raise DataError(f"{where}: column '{column.name}' holds the category {str(text[row])!r} (row {row}), unseen in training "
                        f"(known: {shown}); map it to a known category, or to '' (missing)")
    return text


def numeric_values(values: np.ndarray, name: str, where: str) -> np.ndarray:
    """float32 values of a numeric column (None/NaN/'' as NaN), or one line naming the column and the first text."""
    if values.dtype.kind in "biuf":
        return values.astype(np.float32)
    out = np.empty(len(values), dtype=np.float32)
    for row, value in enumerate(values.tolist()):
        if _is_missing(value):
            out[row] = np.nan
            continue
        try:
            out[row] = float(value)
        except (TypeError, ValueError):
            raise DataError(f"{where}: column '{name}' holds text ({value!r}, row {row}) where the model takes numbers; fix the "
                            "value, or leave it empty for a missing one (or list the column in data.categorical)") from None
    return out


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or (isinstance(value, str) and value.strip() == "")


def schema_of(manifest: dict[str, Any]) -> Schema | None:
    """A bundle manifest's table schema, None for other models."""
    table = (manifest.get("preprocessing") or {}).get("tabular")
    return Schema.from_json(table) if isinstance(table, dict) else None
