"""A table's schema and the check of raw rows against it: what a tabular bundle takes, torch- and scikit-learn-free so
`edgekd bench` on the device runs it.

A tabular model takes one named ONNX input per column, each (batch, 1) (layout "columns"), or one input per type
(layout "types", data.inputs): 'numeric' (batch, k) float32 and 'categorical' (batch, m) string, the columns of each
kind in the schema's order. Numbers are float32 (NaN where a value is missing), categories strings (the empty string
where a value is missing: its own category).
The schema (in the manifest's preprocessing.tabular) lists the columns in that order with each one's kind and, for
categories, the values seen in training. Rows that do not fit it are refused with one line naming the column,
rather than scored silently wrong (an unseen category would one-hot to all zeros).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgekd.core.errors import DataError

NUMERIC, CATEGORICAL = "numeric", "categorical"
MISSING_CATEGORY = ""  # a missing categorical value: its own category, the empty string
COLUMNS, TYPES = "columns", "types"  # input layouts: one input per column, or one per type
NUMERIC_INPUT, CATEGORICAL_INPUT = "numeric", "categorical"  # the inputs' names in the types layout


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
    layout: str = COLUMNS

    @property
    def numeric(self) -> list[str]:
        return [c.name for c in self.columns if c.kind == NUMERIC]

    @property
    def categorical(self) -> list[str]:
        return [c.name for c in self.columns if c.kind == CATEGORICAL]

    def to_json(self) -> dict[str, Any]:
        inputs = ("one (batch, 1) input per column, named as it" if self.layout == COLUMNS else
                  f"'{NUMERIC_INPUT}' (batch, {len(self.numeric)}) and '{CATEGORICAL_INPUT}' (batch, {len(self.categorical)}), "
                  "the columns of each kind in this order")
        return {"target": self.target, "classes": list(self.classes), "columns": [c.to_json() for c in self.columns],
                "layout": self.layout,
                "inputs": f"{inputs}: float32 for numeric (NaN: missing), string for categorical ('': missing)"}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Schema:
        columns = tuple(Column(c["name"], c["kind"], tuple(c.get("categories", ()))) for c in data["columns"])
        return cls(data["target"], tuple(data["classes"]), columns, data.get("layout", COLUMNS))


def model_inputs(schema: Schema, rows: dict[str, Any], where: str, first_line: int | None = None) -> dict[str, np.ndarray]:
    """{column: (n, 1) array} in the model's dtypes from raw rows ({column: values}), or one line naming the column.
    `first_line`: the file line of row 0 where the rows are a CSV file's (2: after the header), said beside the row."""
    missing = [c.name for c in schema.columns if c.name not in rows]
    if missing:
        raise DataError(f"{where}: column '{missing[0]}' is missing; the model takes {', '.join(c.name for c in schema.columns)}")
    lengths = {c.name: len(np.asarray(rows[c.name]).reshape(-1)) for c in schema.columns}
    if len(set(lengths.values())) > 1:
        odd, usual = _odd_column(lengths)
        raise DataError(f"{where}: column '{odd}' has {lengths[odd]} rows but column '{usual}' has "
                        f"{lengths[usual]}; give every column one value per row")
    return {column.name: _column(column, np.asarray(rows[column.name]).reshape(-1), where, first_line).reshape(-1, 1)
            for column in schema.columns}


def _odd_column(lengths: dict[str, int]) -> tuple[str, str]:
    """(the first column whose length differs from the length most columns share, a column of that length): the
    short column is the one to name, even when it comes first in the schema (ties: the first column's length)."""
    counts: dict[int, int] = {}
    for n in lengths.values():
        counts[n] = counts.get(n, 0) + 1
    expected = max(counts, key=lambda n: counts[n])  # dicts keep order: on a tie the first column's length wins
    odd = next(name for name, n in lengths.items() if n != expected)
    usual = next(name for name, n in lengths.items() if n == expected)
    return odd, usual


def layout_arrays(schema: Schema, columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The model's inputs from {column: (n, 1) array} (model_inputs' output): as they are for the columns layout,
    stacked by kind for the types layout."""
    if schema.layout == COLUMNS:
        return {c.name: columns[c.name] for c in schema.columns}
    out = {}
    for name, kind in ((NUMERIC_INPUT, schema.numeric), (CATEGORICAL_INPUT, schema.categorical)):
        if kind:
            out[name] = np.concatenate([np.asarray(columns[c]).reshape(-1, 1) for c in kind], axis=1)
    return out


def columns_of(schema: Schema, arrays: dict[str, Any], where: str) -> dict[str, Any]:
    """{column: values} from the model's inputs in the schema's layout (the inverse of layout_arrays), or one line
    naming the input that is missing or the wrong width."""
    if not hasattr(arrays, "items"):  # one array of every column: which column is which is not known
        raise DataError(f"{where}: give the rows as {{column name: values}} (a dict, or a pandas DataFrame's columns), not "
                        f"one {type(arrays).__name__}; the model's columns are {', '.join(c.name for c in schema.columns)}")
    if schema.layout == COLUMNS:
        return arrays
    out = {}
    for name, kind in ((NUMERIC_INPUT, schema.numeric), (CATEGORICAL_INPUT, schema.categorical)):
        if not kind:
            continue
        if name not in arrays:
            raise DataError(f"{where}: input '{name}' is missing; it holds the columns {', '.join(kind)}")
        array = np.asarray(arrays[name])
        if array.ndim != 2 or array.shape[1] != len(kind):
            raise DataError(f"{where}: input '{name}' is {tuple(array.shape)}, but holds {len(kind)} columns "
                            f"({', '.join(kind)}): give a (rows, {len(kind)}) array")
        out.update({column: array[:, i] for i, column in enumerate(kind)})
    return out


def model_feed(schema: Schema, arrays: dict[str, Any], where: str) -> dict[str, np.ndarray]:
    """The model's inputs (in its layout) checked column by column: every column there, numbers where numbers
    belong, no unseen category; bad input gets one line naming the column."""
    columns = columns_of(schema, arrays, where)
    flat = {name: _one_column(name, values, where) for name, values in columns.items()}
    return layout_arrays(schema, model_inputs(schema, flat, where))


def _one_column(name: str, values: Any, where: str) -> Any:
    """A column's values as (rows,): a model input per column is (rows, 1). Anything wider would lose rows or
    values without a word (a (1, 3) list is one row, not three), so it is refused naming the column."""
    array = np.asarray(values, dtype=object) if isinstance(values, (list, tuple)) else np.asarray(values)
    if array.ndim <= 1:
        return values
    if array.ndim == 2 and array.shape[1] == 1:
        return np.asarray(values)[:, 0]
    raise DataError(f"{where}: column '{name}' is {tuple(array.shape)}, but a column is one value per row: give a (rows,) "
                    "or (rows, 1) array")


def row_at(row: int, first_line: int | None = None) -> str:
    """'row 123' (rows counted from 0, as the array given is indexed), with the file's line where the rows are a CSV
    file's: 'row 123, line 125 of the file' (a trial looked for row 123 at line 123)."""
    return f"row {row}" if first_line is None else f"row {row}, line {row + first_line} of the file"


def _column(column: Column, values: np.ndarray, where: str, first_line: int | None = None) -> np.ndarray:
    if column.kind == NUMERIC:
        return numeric_values(values, column.name, where, first_line=first_line)
    known = set(column.categories)
    text = _known_spellings(_category_texts(values), column.categories)
    unknown = [i for i, v in enumerate(text.tolist()) if v not in known]
    if unknown:
        row = unknown[0]
        shown = ", ".join(repr(c) for c in column.categories[:12]) + (", ..." if len(column.categories) > 12 else "")
        if text[row] == MISSING_CATEGORY:  # '' is a category only where the file had gaps in this column
            raise DataError(f"{where}: column '{column.name}' has a missing value ({row_at(row, first_line)}), but had none in the data the model "
                            f"was built from (known: {shown}); give one of the known categories")
        fallback = ", or to '' (missing)" if MISSING_CATEGORY in known else ""
        raise DataError(f"{where}: column '{column.name}' holds the category {str(text[row])!r} ({row_at(row, first_line)}), unseen in the data "
                        f"the model was built from (known: {shown}); map it to a known category{fallback}")
    return text


def numeric_values(values: np.ndarray, name: str, where: str, building: bool = False,
                   first_line: int | None = None) -> np.ndarray:
    """float32 values of a numeric column (None/NaN/'' as NaN), or one line naming the column and the first text.
    `building`: reading the file a model is built from, where the column may still be declared categorical (on the
    device its kind is fixed). `first_line`: as model_inputs takes it."""
    with np.errstate(over="ignore"):  # a float64 beyond float32's range becomes inf, refused below with its row
        out = values.astype(np.float32) if values.dtype.kind in "biuf" else _parsed_numbers(values, name, where, building, first_line)
    infinite = np.flatnonzero(np.isinf(out))
    if len(infinite):  # inf (or a number beyond float32's range) turns every logit NaN: the model answers class 0
        row = int(infinite[0])
        shown = values[row].item() if isinstance(values[row], np.generic) else values[row]
        raise DataError(f"{where}: column '{name}' holds an infinite or out-of-range value ({shown!r}, {row_at(row, first_line)}) "
                        "where the model takes finite numbers; fix the value, or leave it empty for a missing one")
    return out


def _parsed_numbers(values: np.ndarray, name: str, where: str, building: bool, first_line: int | None) -> np.ndarray:
    out = np.empty(len(values), dtype=np.float32)
    for row, value in enumerate(values.tolist()):
        if _is_missing(value):
            out[row] = np.nan
            continue
        try:
            out[row] = float(value)
        except (TypeError, ValueError):
            if isinstance(value, str) and re.fullmatch(r"-?\d{1,3}([,.' ]\d{3})+([.,]\d+)?", value.strip()):
                raise DataError(f"{where}: column '{name}' writes numbers with thousands separators ({value!r}, {row_at(row, first_line)}); "
                                "save the file without them (a spreadsheet's number format: no grouping)") from None
            declare = " (or list the column in data.categorical)" if building else ""
            raise DataError(f"{where}: column '{name}' holds text ({value!r}, {row_at(row, first_line)}) where the model takes numbers; fix the "
                            f"value, or leave it empty for a missing one{declare}") from None
    return out


def category_text(value: Any) -> str:
    """A category's text: '' when missing, a whole number without its '.0'. An integer-coded column with a gap is
    read as floats (3.0), and the device then gives the code as an integer (3): both are category '3'. A float32
    is written as its own shortest text (1.1, not float64's 1.100000023841858), as the build wrote the float64 1.1."""
    if _is_missing(value):
        return MISSING_CATEGORY
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, np.floating):
        return str(value)  # numpy's shortest text for the value's own precision
    return str(value)


def _category_texts(values: np.ndarray) -> np.ndarray:
    """A column's category texts. Float arrays narrower than float64 go value by value as numpy scalars: .tolist()
    would widen a float32 1.1 to 1.100000023841858, a category the build never saw."""
    if values.dtype.kind == "U":
        return values
    items = list(values) if values.dtype.kind == "f" and values.dtype.itemsize < 8 else values.tolist()
    return np.array([category_text(v) for v in items], dtype=str)


def _known_spellings(text: np.ndarray, categories: tuple[str, ...]) -> np.ndarray:
    """Each text that is not a known category but is the same number as exactly one known category, as that category:
    csv.DictReader gives the model's own CSV as written ('3.0' where pandas wrote integer codes with a gap as floats,
    the category '3'), and a float32 array may read '1.1' where the build saw '1.10'. Texts already known, or that
    match no number or several, are left for the check that names them."""
    known = set(categories)
    unknown = [i for i, v in enumerate(text.tolist()) if v not in known]
    if not unknown:
        return text
    by_number: dict[float, list[str]] = {}
    for category in categories:
        number = _number(category)
        if number is not None:
            by_number.setdefault(number, []).append(category)
    if not by_number:
        return text
    out = text.astype(object)
    for i in unknown:
        same = by_number.get(_number(str(text[i])), [])
        if len(same) == 1:
            out[i] = same[0]
    return np.array(out.tolist(), dtype=str)


def _number(text: str) -> float | None:
    """The finite number a category's text writes, else None."""
    try:
        number = float(text)
    except ValueError:
        return None
    return number if np.isfinite(number) else None


def _is_missing(value: Any) -> bool:
    """None, NaN, '' and pandas' own markers (pd.NA of string and nullable columns, NaT), recognised by type name
    because this module runs on the device, where pandas is not installed."""
    return (value is None or (isinstance(value, float) and np.isnan(value)) or (isinstance(value, str) and value.strip() == "")
            or type(value).__name__ in ("NAType", "NaTType"))


def schema_of(manifest: dict[str, Any]) -> Schema | None:
    """A bundle manifest's table schema, None for other models."""
    table = (manifest.get("preprocessing") or {}).get("tabular")
    return Schema.from_json(table) if isinstance(table, dict) else None
