"""Tables (data.source csv or parquet): typed columns and a target column, split (stratified) into train, validation
and test, with the schema every model and bundle is described by (edgekd/data/table_schema.py).

Each split's x is {column: (n, 1) array} in the form the bundle's ONNX model takes (float32 with NaN for numbers,
strings with '' for categories), so eval.npz holds raw columns and `edgekd bench` feeds them as they are. Teachers
that want a DataFrame get one from frame().
"""
from __future__ import annotations

import hashlib
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekd.core.errors import ConfigError, DataError
from edgekd.core.fileio import resolve_path
from edgekd.core.metrics import ACCURACY
from edgekd.data.datasets import Split
from edgekd.data.table_schema import (
    CATEGORICAL,
    NUMERIC,
    Column,
    Schema,
    category_text,
    layout_arrays,
    model_inputs,
    numeric_values,
    row_at,
)

# A text column is numeric with a typo when at least this share of its values are numbers: refused, not read as categories.
# Half, not nearly all: a missing-value marker ('?', '-') on 10% of a number column's rows would otherwise turn it into
# hundreds of categories, silently; a true category column of number-like codes is declared in data.categorical.
NUMERIC_SHARE = 0.5
# A category column with more distinct values than this share of its rows (and more than IDENTIFIER_MIN) is an
# identifier or free text: refused rather than one-hot encoded.
IDENTIFIER_SHARE, IDENTIFIER_MIN = 0.5, 50
# A CSV's row 0 is on line 2, under its header: said beside a row an error names (the file is read with the header on
# line 1; blank lines, which pandas skips, would shift this).
CSV_FIRST_LINE = 2
# A stratified split into training, validation and test puts at least one row of every class in each.
MIN_CLASS_ROWS = 3


@dataclass
class TabularDataset:
    name: str
    train: Split
    val: Split
    test: Split
    schema: Schema
    fingerprint: str = ""
    labeled: bool = True
    measured: str = ACCURACY
    source: dict[str, Any] = field(default_factory=dict)

    @property
    def classes(self) -> list[str]:
        return list(self.schema.classes)

    @property
    def num_classes(self) -> int:
        return len(self.schema.classes)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (len(self.schema.columns),)

    def model_x(self, x: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """A split's columns as the student's ONNX graph takes them (data.inputs: per column, or per type)."""
        return layout_arrays(self.schema, x)

    def preprocessing(self) -> dict[str, Any]:
        """What the device feeds: raw columns as the schema says (imputation, scaling and encoding are in the graph)."""
        return {"tabular": self.schema.to_json(), "formula": "raw columns; preprocessing is inside the ONNX graph"}


def frame(x: dict[str, np.ndarray]):
    """A split's columns as a pandas DataFrame (what scikit-learn, LightGBM and XGBoost teachers are fitted on)."""
    import pandas as pd

    return pd.DataFrame({name: array[:, 0] for name, array in x.items()})


def load_tabular_dataset(cfg, seed: int, base_dir: Path) -> TabularDataset:
    """data.source csv/parquet: read, type the columns, split stratified by the target with `seed`."""
    where = f"data.path '{cfg.path}'"
    table = read_table(cfg.source, resolve_path(Path(cfg.path).expanduser(), base_dir), where, target=cfg.target)
    labels, classes = _target(table, cfg.target, where, CSV_FIRST_LINE if cfg.source == "csv" else None)
    features = cfg.features or [c for c in table.columns if c != cfg.target]
    twice = sorted({c for c in features if features.count(c) > 1})
    if twice:  # each column is one named input of the model
        raise ConfigError(f"data.features: '{twice[0]}' is listed twice; list each column once")
    if cfg.target in [*features, *(cfg.categorical or [])]:  # the answer among the inputs: a perfect, useless model
        raise ConfigError(f"data.features / data.categorical: '{cfg.target}' is data.target, the column the model predicts; "
                          "remove it from the model's inputs")
    absent = [c for c in [*features, *(cfg.categorical or [])] if c not in table.columns]
    if absent:
        raise DataError(f"{where}: column '{absent[0]}' (data.features / data.categorical) is not in the file; its columns are "
                        f"{', '.join(map(str, table.columns))}")
    splits = _split(len(table), labels, classes, cfg, seed, where)
    train_rows = splits[0]
    first_line = CSV_FIRST_LINE if cfg.source == "csv" else None
    columns = tuple(_column(table[name], str(name), name in (cfg.categorical or []), train_rows, where, first_line)
                    for name in features)
    _say_uninformative(table, features, where, given=bool(cfg.features))
    schema = Schema(str(cfg.target), tuple(classes), columns, cfg.inputs)
    # The whole file at once, then split: an error names the row of the file (and its line), not of a split.
    x = model_inputs(schema, {c.name: table[c.name].to_numpy() for c in columns}, where, first_line)
    made = [Split({name: values[rows] for name, values in x.items()}, labels[rows]) for rows in splits]
    dataset = TabularDataset(Path(cfg.path).stem, *made, schema=schema, source={"path": str(cfg.path), "rows": len(table)})
    dataset.fingerprint = _fingerprint(dataset)
    return dataset


def _say_uninformative(table, features: list, where: str, given: bool) -> None:
    """A column that tells the model nothing but that every device must still feed: a saved pandas index ('Unnamed: 0'),
    a row number or id (a distinct whole number on every row), one value on every row. Said, not refused (the columns
    are the user's to choose); not said of columns the user listed in data.features."""
    import warnings

    if given:
        return
    for name in features:
        values = table[name]
        why = None
        if str(name).startswith("Unnamed: "):
            why = "looks like a saved pandas index (to_csv without index=False)"
        elif values.nunique(dropna=False) <= 1:
            why = "holds one value on every row"
        elif values.dtype.kind in "iu" and values.is_unique and len(values) > 20:
            why = "holds a distinct whole number on every row, like a row number or an id"
        if why:
            warnings.warn(f"{where}: column '{name}' {why}: it tells the model nothing, and every device would have to feed "
                          "it; list the columns to use in data.features", stacklevel=3)


def read_table(source: str, path: Path, where: str, target: str | None = None):
    try:
        import pandas as pd
    except ImportError:
        raise ConfigError(f"data.source {source}: needs pandas (and pyarrow for parquet); pip install 'edgekd[tabular]'") from None
    if not path.is_file():
        raise DataError(f"{where}: no such file ({path}); give a .csv or .parquet file")
    try:
        # utf-8-sig: a byte order mark (Excel's "CSV UTF-8") is not part of the first column's name.
        return _read_csv(pd, path, where, target) if source == "csv" else pd.read_parquet(path)
    except DataError:
        raise
    except ImportError as exc:
        raise ConfigError(f"data.source parquet: {str(exc).splitlines()[0][:120]}; pip install 'edgekd[tabular]'") from None
    except Exception as exc:  # pandas/pyarrow parse errors come in many types
        raise DataError(f"{where}: cannot be read as {source} ({str(exc).splitlines()[0][:160]})") from None


CSV_SEPARATORS = (",", ";", "\t", "|")


# '1,065': a decimal comma or a thousands separator; such fields are no evidence of the decimal mark either way.
AMBIGUOUS_COMMA = r"-?\d{1,3},\d{3}"


def _decimal_mark(rows, separator: str) -> str:
    """',' or '.', as the numbers of the file's first rows write it. Any separator may come with decimal commas (a
    tab-separated export of a comma-decimal locale, or quoted "14,23" between commas): read with '.', every such
    number column became categories. With no evidence, ',' for ';' (the separator where ',' is the decimal mark), but
    not always: a ';' file of '1.36' values read with decimal ',' kept them as text."""
    fields = [field.strip() for row in rows for field in row]
    commas = sum(bool(re.fullmatch(r"-?\d+,\d+", f)) and not re.fullmatch(AMBIGUOUS_COMMA, f) for f in fields)
    points = sum(bool(re.fullmatch(r"-?\d+\.\d+", f)) for f in fields)
    if separator == ";":
        return "." if points > commas else ","
    return "," if commas > points else "."


def _read_csv(pd, path: Path, where: str, target: str | None = None):
    """The CSV with the separator its header uses (a spreadsheet in a comma-decimal locale writes ';'), said when it
    is not a comma; a header naming one column twice is refused (pandas would quietly rename the second 'y.1'), as
    is a target whose labels pandas would read as one number ('01' and '1')."""
    import csv

    with open(path, encoding="utf-8-sig", newline="") as file:
        first = file.readline()
        sample = [file.readline() for _ in range(200)]
    separator = max(CSV_SEPARATORS, key=first.count) if first else ","
    header = next(csv.reader([first], delimiter=separator), [])
    twice = sorted({name for name in header if header.count(name) > 1})
    if twice:
        raise DataError(f"{where}: the header names column '{twice[0]}' twice; give each column its own name")
    decimal = _decimal_mark(csv.reader([line for line in sample if line], delimiter=separator), separator)
    if separator != "," or decimal == ",":
        print(f"{where}: columns separated by {separator!r}" + (", decimal commas read as numbers" if decimal == "," else ""),
              file=sys.stderr)
    # Only an empty field is missing: pandas' default markers would read a class or category 'NA' (or 'None', 'null')
    # as missing, and the device, fed the file's own 'NA', then refused it. In a column of numbers they are missing.
    read = {"encoding": "utf-8-sig", "sep": separator, "keep_default_na": False, "na_values": [""]}
    table = _markers_missing_among_numbers(pd, pd.read_csv(path, decimal=decimal, **read), decimal)
    if target in table.columns and table[target].dtype.kind in "biuf":
        as_written = pd.read_csv(path, usecols=[target], dtype=str, **read)[target]
        _refuse_merged_labels(as_written, table[target], target, where)
    return table


# pandas' default missing-value markers (read_csv's na_values), missing in a column of numbers only.
NUMBER_MISSING_MARKERS = ("#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>", "N/A",
                          "NA", "NULL", "NaN", "None", "n/a", "nan", "null")


def _markers_missing_among_numbers(pd, table, decimal: str):
    """A text column of numbers and missing-value markers ('NA', as R writes a gap) as the numbers with NaN, as
    pandas' defaults read it; a column with other text keeps its 'NA' as text (a class or a category)."""
    for name in table.columns:
        values = table[name]
        if values.dtype.kind in "biufmM" or values.dtype == bool:
            continue
        markers = values.isin(NUMBER_MISSING_MARKERS)
        rest = values[~markers & values.notna()].astype(str)
        rest = rest.str.replace(",", ".", regex=False) if decimal == "," else rest
        if markers.any() and len(rest) and pd.to_numeric(rest, errors="coerce").notna().all():
            table[name] = pd.to_numeric(rest, errors="coerce").reindex(values.index)
    return table


def _refuse_merged_labels(as_written, as_read, target: str, where: str) -> None:
    """pandas reads a target of number-like labels as numbers, so '01' and '1' become the class 1 together, quietly
    (a trial's three classes became two, and the model scored 100%). Two labels written differently that read as one
    number are refused, naming them; '3.0' beside '3' is one class as before (a float column's way of writing 3)."""
    import pandas as pd

    texts = pd.DataFrame({"text": as_written.str.strip(), "number": as_read}).dropna().drop_duplicates()
    texts = texts[~texts["text"].str.replace(r"\.0+$", "", regex=True).duplicated()]  # '3' and '3.0': one spelling
    merged = texts[texts["number"].duplicated(keep=False)]
    if len(merged):
        first = merged[merged["number"] == merged["number"].iloc[0]]["text"].tolist()
        raise DataError(f"data.target '{target}': labels {first[0]!r} and {first[1]!r} of {where} are the same number, and would "
                        "be read as one class; write each class one way (all the same), or, if they are different classes, "
                        "name them with text that is not a number")


def _target(table, target: str, where: str, first_line: int | None = None) -> tuple[np.ndarray, list[str]]:
    if target not in table.columns:
        raise DataError(f"data.target '{target}': no such column in {where}; its columns are {', '.join(map(str, table.columns))}")
    values = table[target]
    if not len(values):
        raise DataError(f"{where}: holds no rows (a header only); give a table with rows of every class")
    if values.isna().any():
        row = int(np.flatnonzero(values.isna().to_numpy())[0])
        raise DataError(f"data.target '{target}': {row_at(row, first_line)} of {where} has no value; every row needs "
                        "its class")
    text = np.array([category_text(v) for v in values.tolist()], dtype=str)  # numbers as classes: 3.0 and 3 are '3'
    classes, labels = _ordered_classes(text)
    if values.dtype.kind in "biuf" and _quantity(values.to_numpy(), np.bincount(labels)):
        raise DataError(f"data.target '{target}': holds numbers with {len(classes)} distinct values, a quantity rather than "
                        "classes; edgekd trains classifiers only: bin the column into classes (pandas.cut or qcut) and name "
                        "the binned column as data.target")
    if len(classes) < 2:
        raise DataError(f"data.target '{target}': holds one class ({str(classes[0])!r}) only; a classifier needs rows of two "
                        "classes or more")
    twins = [(a, b) for i, a in enumerate(classes) for b in classes[i + 1:] if a.strip().lower() == b.strip().lower()]
    if twins:  # 'barbera' and 'barbera ': two classes to the model, one to the user
        raise DataError(f"data.target '{target}': classes {twins[0][0]!r} and {twins[0][1]!r} of {where} differ only by case "
                        "or spaces, and would be two classes; write them the same (e.g. strip the spaces)")
    return labels.astype(np.int64), [str(c) for c in classes]


def _ordered_classes(text: np.ndarray) -> tuple[list[str], np.ndarray]:
    """The classes and each row's class index: whole numbers in numeric order (class 10 after 9, so that the model's
    output i is class i where the classes are 0..k-1: a device reading argmax as the class id is right), else sorted."""
    names = np.unique(text).tolist()
    if all(re.fullmatch(r"-?\d+", name) for name in names):
        names.sort(key=int)
    index = {name: i for i, name in enumerate(names)}
    return names, np.array([index[t] for t in text.tolist()], dtype=np.int64)


# A whole-number target with more distinct values than this, most of them on too few rows to split, is a quantity
# (a price in whole dollars); with fewer, or with few rare values, it is class codes with a rare class.
QUANTITY_MIN_VALUES = 10


def _quantity(values: np.ndarray, rows_per_class: np.ndarray) -> bool:
    """Whether a numeric target is a measured quantity (a regression target) rather than class codes: it has fractional
    values (class codes are whole numbers; 3.0 is class 3), or many values, most on fewer rows than a stratified split
    into training, validation and test needs of every class (price: 2,165 values on 3,000 rows). Class codes with one
    rare class (a trial's class 3 on 2 rows) are not: the split names that class, and says to drop or merge it."""
    fractional = np.any(np.mod(values, 1) != 0)
    rare = int((rows_per_class < MIN_CLASS_ROWS).sum())
    return bool(fractional or (len(rows_per_class) > QUANTITY_MIN_VALUES and rare * 2 > len(rows_per_class)))


def _split(n: int, labels: np.ndarray, classes: list[str], cfg, seed: int, where: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stratified: test_fraction held out, then val_fraction of the rest for validation."""
    from sklearn.model_selection import train_test_split

    rows, counts = np.arange(n), np.bincount(labels, minlength=len(classes))
    try:
        if counts.min() < MIN_CLASS_ROWS:  # scikit-learn may put all of such a class in training, without a word
            raise ValueError("too few rows")
        rest, test = train_test_split(rows, test_size=cfg.test_fraction, random_state=seed, stratify=labels)
        train, val = train_test_split(rest, test_size=cfg.val_fraction, random_state=seed, stratify=labels[rest])
    except ValueError as exc:  # a class with too few rows to stratify
        rarest = int(counts.argmin())
        reason = (f"class '{classes[rarest]}' has {int(counts[rarest])} row(s)"
                  if counts[rarest] < MIN_CLASS_ROWS else str(exc).splitlines()[0])  # the library's reason, whole
        raise DataError(f"data.target '{cfg.target}': {where} cannot be split stratified into training, validation and test "
                        f"({reason}); every class needs at least {MIN_CLASS_ROWS} rows: drop or merge the rare ones") from None
    unmeasured = [k for k in range(len(classes)) if not ((labels[val] == k).any() and (labels[test] == k).any())]
    if unmeasured:  # its accuracy would never be measured, and the gate would pass whatever the model does on it
        k = unmeasured[0]
        raise DataError(f"data.target '{cfg.target}': class '{classes[k]}' of {where} has {int(counts[k])} rows, none in the "
                        "validation or test split; give more rows of it, or raise data.val_fraction / data.test_fraction")
    train = train[:cfg.train_limit] if cfg.train_limit else train
    test = test[:cfg.test_limit] if cfg.test_limit else test
    return np.sort(train), np.sort(val), np.sort(test)



def _column(values, name: str, declared_categorical: bool, train_rows: np.ndarray, where: str,
            first_line: int | None = None) -> Column:
    """The kind of one column: categorical when declared or holding text, else numeric. A category's values are those
    of the whole file, not of the training split alone: a rare value that falls in validation or test only is a known
    category (its one-hot slot stays as initialized), not a reason to stop the run or to refuse the bundle's eval rows."""
    if values.iloc[train_rows].isna().all():
        raise DataError(f"{where}: column '{name}' has no value in the training split (all missing): it can teach nothing; "
                        "leave it out with data.features, or fill it")
    if values.dtype.kind in "mM":  # a date or a duration: neither a number the graph takes nor a category that recurs
        raise DataError(f"{where}: column '{name}' holds dates or times ({values.dtype}); the model takes numbers and "
                        "categories: derive them before saving (days since a date, the day of the week...), or leave the "
                        "column out with data.features")
    if not declared_categorical and values.dtype.kind in "biuf":
        return Column(name, NUMERIC)
    if not declared_categorical and values.dtype.kind == "O" and _written_dates(values):
        raise DataError(f"{where}: column '{name}' holds dates written as text ({values.dropna().iloc[0]!r}); the model takes "
                        "numbers and categories: derive them before saving (day of the year, days since a date, the day of "
                        "the week...), or leave the column out with data.features")
    if not declared_categorical and values.dtype.kind == "O":
        present = values.dropna()
        numbers = present.map(_is_number)
        if len(present) and numbers.mean() >= NUMERIC_SHARE:
            numeric_values(values.to_numpy(), name, where, building=True, first_line=first_line)  # raises, naming the first text among the numbers
            # Every value a number and still text: written with the other decimal mark than the one the file was read
            # with (points in a file of decimal commas); one-hot, each value would become a category.
            if present.astype(str).str.contains(r"[.,]").any():
                raise DataError(f"{where}: column '{name}' holds numbers written with another decimal mark "
                                f"({present.iloc[0]!r}) than the file's other numbers; save the file with one decimal mark "
                                "(points, or commas throughout)")
    categories = tuple(sorted({category_text(v) for v in values.tolist()}))
    present = int(values.notna().sum())
    if not declared_categorical:
        _refuse_decimal_commas(categories, name, where)
    if len(categories) > max(IDENTIFIER_MIN, IDENTIFIER_SHARE * present):
        grouped = [c for c in categories if re.fullmatch(r"-?\d{1,3}([,.' ]\d{3})+([.,]\d+)?", c)]
        if len(grouped) * 2 > len(categories):  # '1.065,0': numbers with thousands separators, read as text
            raise DataError(f"{where}: column '{name}' writes numbers with thousands separators ({grouped[0]!r}); save the "
                            "file without them (a spreadsheet's number format: no grouping)")
        raise DataError(f"{where}: column '{name}' has {len(categories)} distinct values in {present} rows: an identifier or free "
                        "text, not a category (one-hot, it would bloat the model, and the device would refuse every new value); "
                        "leave it out with data.features")
    return Column(name, CATEGORICAL, categories)


def _refuse_decimal_commas(categories: tuple[str, ...], name: str, where: str) -> None:
    """A text column whose values are mostly numbers written with a decimal comma ('0,86') where the file's other
    numbers use points: one-hot, it would be a category per value (a trial's hue: 78 of them), or an 'identifier'."""
    written = [c for c in categories if re.fullmatch(r"-?\d+,\d+", c)]
    if written and len(written) * 2 > len(categories) and not all(re.fullmatch(AMBIGUOUS_COMMA, c) for c in written):
        raise DataError(f"{where}: column '{name}' holds numbers written with decimal commas ({written[0]!r}) where the file's "
                        "other numbers use points; save the file with one decimal mark (points, or commas throughout)")


# How a CSV writes dates and times (pandas reads them all as text): a column whose sampled values all parse with one of
# these is dates. Fixed formats, not pandas' guessing, which takes codes such as '3' or 'Q1' for dates.
DATE_FORMATS = ("%Y-%m-%d", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y/%m/%d", "%d/%m/%Y", "%m/%d/%Y",
                "%d.%m.%Y", "%d-%m-%Y", "%Y%m%dT%H%M%S")
DATE_SAMPLE = 200


def _written_dates(values) -> bool:
    """Whether a text column's values are dates (a sample of its distinct values, all of one format): one-hot, a
    date column of a trial became a category per day, or was refused as 'an identifier or free text'."""
    import pandas as pd

    sample = pd.Series(values.dropna().astype(str).str.strip().unique()[:DATE_SAMPLE])
    if not len(sample):
        return False
    return any(pd.to_datetime(sample, format=form, errors="coerce").notna().all() for form in DATE_FORMATS)


def _is_number(value: Any) -> bool:
    try:
        float(value)
        return True
    except (TypeError, ValueError):
        return False


def _fingerprint(dataset: TabularDataset) -> str:
    digest = hashlib.sha256(repr(dataset.schema.to_json()).encode())
    for split in (dataset.train, dataset.val, dataset.test):
        for name in sorted(split.x):
            digest.update(name.encode() + np.ascontiguousarray(split.x[name]).tobytes())
        digest.update(np.ascontiguousarray(split.y).tobytes())
    return digest.hexdigest()[:16]
