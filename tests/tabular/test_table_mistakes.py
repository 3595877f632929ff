"""What a new user's tables brought out (issue 35: one line naming the column for bad input, teachers of any kind):
odd column names, a duplicated header, another separator, dates, infinities, columns of unequal length, an ONNX
teacher converted from a DataFrame the way skl2onnx documents it, and --resume of a table's distill stage."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from edgekd.core.errors import DataError
from edgekd.data.config import DataConfig
from edgekd.data.table_schema import model_inputs
from edgekd.data.tabular import load_tabular_dataset
from tests.tabular.conftest import table_config, table_rows


def _load(path: Path, **extra):
    source = "parquet" if path.suffix == ".parquet" else "csv"
    return load_tabular_dataset(DataConfig(source=source, path=str(path), target="grade", **extra), 0, path.parent)


def _run(folder: Path, frame, **config):
    from edgekd.pipeline.runner import run_from_file

    frame.to_csv(folder / "table.csv", index=False)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump({**table_config(), **config}), encoding="utf-8")
    return run_from_file(path, out=str(folder / "run"), log=lambda _m: None)


def test_column_names_that_are_not_identifiers_run_end_to_end(tmp_path):
    """skl2onnx renames 'price (usd)' to 'price__usd_' inside its graphs. Before: an internal KeyError when the
    ensemble graph was fed the table's columns by name."""
    from edgekd.core.fileio import read_json

    frame = table_rows().rename(columns={"price": "price (usd)", "size": "size.cm"})
    config = table_config()
    config["teachers"] = config["teachers"][:2]  # a forest and LightGBM: both converted with skl2onnx/onnxmltools
    _run(tmp_path, frame, teachers=config["teachers"])
    teachers = read_json(tmp_path / "run" / "manifest.json")["stages"]["teachers"]["metrics"]
    assert teachers["ensemble"]["onnx_bytes"] > 0
    import onnx

    names = [i.name for i in onnx.load(str(tmp_path / "run" / "01-teachers" / "teacher-0.onnx")).graph.input]
    assert "price (usd)" in names and "size.cm" in names


def test_a_header_naming_a_column_twice_is_refused(tmp_path):
    """Before: pandas renamed the second 'size' to 'size.1', and the run trained on it (or crashed)."""
    frame = table_rows()
    path = tmp_path / "table.csv"
    frame.to_csv(path, index=False, header=[*frame.columns[:2], "size", *frame.columns[3:]])
    with pytest.raises(DataError, match=r"the header names column 'size' twice; give each column its own name"):
        _load(path)


def test_a_semicolon_csv_with_decimal_commas_reads_like_the_comma_one(tmp_path, table_csv, capsys):
    """A spreadsheet in a comma-decimal locale. Before: one column named 'size;price;...', refused as a missing target."""
    path = tmp_path / "semicolon.csv"
    table_rows().to_csv(path, index=False, sep=";", decimal=",")
    ours, theirs = _load(path), _load(table_csv)
    assert "columns separated by ';', decimal commas read as numbers" in capsys.readouterr().err
    assert [c.kind for c in ours.schema.columns] == [c.kind for c in theirs.schema.columns]
    np.testing.assert_allclose(ours.train.x["size"], theirs.train.x["size"], rtol=1e-6)


def test_a_semicolon_csv_with_decimal_points_reads_its_numbers_as_numbers(tmp_path, table_csv, capsys):
    """Trial defect (session 11): a ';' file writing 1.36 was read with decimal ',', so every number column became
    categories (student 63.9% against 86.1% from the comma file) and the device would refuse any new value."""
    path = tmp_path / "semicolon-points.csv"
    table_rows().to_csv(path, index=False, sep=";")
    ours, theirs = _load(path), _load(table_csv)
    assert "decimal commas" not in capsys.readouterr().err
    assert [c.kind for c in ours.schema.columns] == [c.kind for c in theirs.schema.columns]
    np.testing.assert_allclose(ours.train.x["size"], theirs.train.x["size"], rtol=1e-6)


def test_a_date_column_is_refused_naming_it(tmp_path):
    """Before: taken as a category of the training dates, so the device refused every new date."""
    import pandas as pd

    frame = table_rows()
    frame["sold"] = pd.date_range("2020-01-01", periods=len(frame), freq="D")
    frame.to_parquet(tmp_path / "table.parquet", index=False)
    with pytest.raises(DataError, match=r"column 'sold' holds dates or times .*derive them before saving"):
        _load(tmp_path / "table.parquet")


def test_an_infinite_value_is_refused_in_the_table_and_on_the_device(tmp_path, table_csv):
    """Before: a crash in LightGBM's or the student's imputer; on the device the check let it through and every logit
    was NaN (class 0)."""
    frame = table_rows()
    frame.loc[5, "price"] = np.inf
    frame.to_csv(tmp_path / "inf.csv", index=False)
    with pytest.raises(DataError, match=r"column 'price' holds an infinite or out-of-range value \(inf, row 5, line 7 of the file\)"):
        _load(tmp_path / "inf.csv")  # the file's row (and line), not a split's
    schema = _load(table_csv).schema
    rows = {c.name: table_rows().head(3)[c.name].to_numpy() for c in schema.columns}
    for bad in ("inf", "1e999", -np.inf):
        rows["size"] = np.array([1.0, bad, 2.0], dtype=object)
        with pytest.raises(DataError, match=r"device rows: column 'size' holds an infinite or out-of-range value"):
            model_inputs(schema, rows, "device rows")


def test_columns_of_unequal_length_are_named_on_the_device(table_csv):
    """Before: onnxruntime's 'numbers_concat' error, naming no column."""
    schema = _load(table_csv).schema
    rows = {c.name: table_rows().head(3)[c.name].to_numpy() for c in schema.columns}
    rows["price"] = rows["price"][:2]
    with pytest.raises(DataError, match=r"column 'price' has 2 rows but column 'size' has 3; give every column one value"):
        model_inputs(schema, rows, "device rows")


def test_an_onnx_teacher_converted_from_a_dataframe_takes_its_double_and_int64_columns(tmp_path):
    """skl2onnx's to_onnx(model, X_train[:1]) on a DataFrame: float64 columns as double inputs, integers as int64,
    probabilities as double. Before: refused with the wrong advice (zipmap), or an internal onnxruntime error."""
    import onnx
    from skl2onnx import to_onnx
    from sklearn.compose import make_column_transformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    from edgekd.core.fileio import read_json

    frame = table_rows().dropna()
    features = frame[["size", "price", "tier", "color", "shape"]].astype({"price": "int64", "tier": "int64"})
    front = make_column_transformer((OneHotEncoder(handle_unknown="ignore"), ["color", "shape"]), remainder="passthrough")
    model = make_pipeline(front, RandomForestClassifier(n_estimators=10, random_state=0)).fit(features, frame["grade"])
    converted = to_onnx(model, features[:1], options={"zipmap": False})
    types = {i.name: i.type.tensor_type.elem_type for i in converted.graph.input}
    assert types["size"] == onnx.TensorProto.DOUBLE and types["tier"] == onnx.TensorProto.INT64
    onnx.save(converted, str(tmp_path / "frame.onnx"))
    config = table_config()
    teachers = [config["teachers"][0], {"onnx": "frame.onnx"}]
    _run(tmp_path, frame, teachers=teachers, data={**config["data"], "features": ["size", "price", "tier", "color", "shape"]})
    scored = read_json(tmp_path / "run" / "manifest.json")["stages"]["teachers"]["metrics"]
    assert scored["teachers"][1]["val_top1"] > 0.6 and scored["ensemble"]["onnx_bytes"] > 0


@pytest.mark.slow
def test_resume_continues_a_tables_distill_from_its_last_epoch(tmp_path, monkeypatch):
    """Before: the table's student kept no per-epoch progress, so --resume trained it from epoch 0 again although
    the interrupt message said the last epoch was kept."""
    from edgekd.core.fileio import read_json
    from edgekd.pipeline.runner import run_from_file
    from edgekd.train import trainer

    config = table_config()
    config["distill"]["train"]["epochs"] = 6
    table_rows().to_csv(tmp_path / "table.csv", index=False)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    real_save, saved = trainer._save_progress, []

    def interrupted_after_three(checkpoint, tag, model, optimizer, schedule, epochs_done):  # Ctrl-C in epoch 4
        real_save(checkpoint, tag, model, optimizer, schedule, epochs_done)
        saved.append(epochs_done)
        if epochs_done == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(trainer, "_save_progress", interrupted_after_three)
    with pytest.raises(KeyboardInterrupt):
        run_from_file(path, out=str(tmp_path / "run"), log=lambda _m: None)
    monkeypatch.undo()
    assert (tmp_path / "run" / "02-distill" / "distill.progress.pt").is_file()
    run_from_file(path, out=str(tmp_path / "run"), resume=True, log=lambda _m: None)
    phases = read_json(tmp_path / "run" / "manifest.json")["stages"]["distill"]["metrics"]["phases"]
    assert phases["distill"]["resumed_from_epoch"] == 3


def test_a_rare_class_that_is_another_typed_differently_is_named_as_such(tmp_path):
    frame = table_rows()
    frame.loc[3, "grade"] = "High "  # one row typed with a capital and a trailing space
    frame.to_csv(tmp_path / "table.csv", index=False)
    with pytest.raises(DataError, match=r"classes 'High ' and 'high' of .* differ only by case or spaces"):
        _load(tmp_path / "table.csv")


def test_whole_number_classes_keep_numeric_order(tmp_path):
    """Trial defect (session 11): classes 0..11 were ordered as text (0, 1, 10, 11, 2, ...), so the bundle's output 2
    was class 10 and a device reading argmax as the class id was wrong on most rows."""
    frame = table_rows()
    counts = [20 + 4 * k for k in range(12)]  # class k on 20 + 4k rows: its index is known by its count
    frame = frame.iloc[:sum(counts)].assign(grade=np.repeat(np.arange(12), counts))
    frame.to_csv(tmp_path / "table.csv", index=False)
    data = _load(tmp_path / "table.csv")
    assert data.classes == [str(k) for k in range(12)]
    labels = np.concatenate([data.train.y, data.val.y, data.test.y])
    assert np.bincount(labels).tolist() == counts  # index k holds the rows of class k


def test_a_class_of_two_rows_is_refused_not_put_in_training_only(tmp_path):
    """Trial defect (session 11): a class of 2 rows went wholly to training (validation and test had none of it), and
    the run passed without a word: its accuracy was never measured."""
    frame = table_rows()
    frame.loc[[5, 9], "grade"] = "rare"
    frame.to_csv(tmp_path / "table.csv", index=False)
    with pytest.raises(DataError, match=r"class 'rare' has 2 row\(s\)\); every class needs at least 3 rows"):
        _load(tmp_path / "table.csv")


def test_an_index_an_id_and_a_constant_column_are_said(tmp_path):
    """Trial defect (session 11): a saved pandas index ('Unnamed: 0'), an id column and a constant column became model
    inputs without a word; every device must then feed them."""
    frame = table_rows().assign(id=np.arange(600) + 1000, source="shop")
    frame.to_csv(tmp_path / "table.csv")  # with pandas' index as the first, unnamed column
    with pytest.warns(UserWarning) as said:
        _load(tmp_path / "table.csv")
    lines = [str(w.message) for w in said]
    assert any("column 'Unnamed: 0' looks like a saved pandas index" in line for line in lines)
    assert any("column 'id' holds a distinct whole number on every row" in line for line in lines)
    assert any("column 'source' holds one value on every row" in line and "data.features" in line for line in lines)


@pytest.mark.parametrize("separator, written", [(",", "{:,.0f}"), (";", "{:,.1f}")], ids=["1,065", "1.065,0"])
def test_numbers_with_thousands_separators_are_named_as_such(tmp_path, separator, written):
    """Trial defect (session 11): '1,065' was "text where the model takes numbers (or list it in data.categorical)",
    '1.065,0' in a ';' file "an identifier or free text": neither said thousands separators."""
    frame = table_rows()
    frame["price"] = [written.format(1000 + 7 * i) for i in range(len(frame))]
    if separator == ";":
        frame["price"] = frame["price"].str.replace(",", "_").str.replace(".", ",").str.replace("_", ".")
    frame.to_csv(tmp_path / "table.csv", index=False, sep=separator)
    with pytest.raises(DataError, match=r"column 'price' writes numbers with thousands separators"):
        _load(tmp_path / "table.csv")
