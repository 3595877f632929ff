"""data.source csv/parquet: typed columns, missing values, a stratified split, and one line naming the column for
each kind of bad input."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgekd.core.errors import ConfigError, DataError
from edgekd.data.config import DataConfig
from edgekd.data.table_schema import model_inputs
from edgekd.data.tabular import load_tabular_dataset
from tests.tabular.conftest import table_rows


def _load(path: Path, **extra):
    source = "parquet" if path.suffix == ".parquet" else "csv"
    return load_tabular_dataset(DataConfig(source=source, path=str(path), target="grade", **extra), 0, path.parent)


def test_columns_are_typed_and_missing_values_kept(table_csv):
    data = _load(table_csv)
    kinds = {c.name: c.kind for c in data.schema.columns}
    assert kinds == {"size": "numeric", "price": "numeric", "color": "categorical", "shape": "categorical", "y": "numeric",
                     "tier": "numeric"}
    assert data.classes == ["high", "low", "mid"]
    color = next(c for c in data.schema.columns if c.name == "color")
    assert color.categories == ("", "blue", "green", "red")  # a missing category is its own: ''
    assert data.train.x["size"].dtype == np.float32 and np.isnan(data.train.x["size"]).any()
    assert data.train.x["color"].dtype.kind == "U" and data.train.x["color"].shape[1] == 1
    assert len(data.train) + len(data.val) + len(data.test) == 600 and len(data.test) == 120


def test_split_is_stratified_and_seeded(table_csv):
    first, again = _load(table_csv), _load(table_csv)
    assert np.array_equal(first.test.y, again.test.y) and first.fingerprint == again.fingerprint
    share = lambda y: np.bincount(y, minlength=3) / len(y)  # noqa: E731
    assert np.allclose(share(first.test.y), share(first.train.y), atol=0.03)


def test_parquet_reads_like_csv(tmp_path, table_csv):
    path = tmp_path / "table.parquet"
    table_rows().to_parquet(path, index=False)
    assert _load(path).fingerprint == _load(table_csv).fingerprint


def test_a_csv_with_a_utf8_byte_order_mark_reads_like_one_without(tmp_path):
    """Excel's "CSV UTF-8" opens the file with a BOM; with the target as the first column it must still be found."""
    frame = table_rows()[["grade", "size", "color"]]
    frame.to_csv(tmp_path / "plain.csv", index=False)
    (tmp_path / "excel.csv").write_bytes(b"\xef\xbb\xbf" + (tmp_path / "plain.csv").read_bytes())
    with_bom = _load(tmp_path / "excel.csv")
    assert [c.name for c in with_bom.schema.columns] == ["size", "color"]
    assert with_bom.fingerprint == _load(tmp_path / "plain.csv").fingerprint


def test_declared_categorical_column_of_numbers(table_csv):
    data = _load(table_csv, categorical=["tier"], features=["tier", "color"])
    assert [c.kind for c in data.schema.columns] == ["categorical", "categorical"]
    assert data.schema.columns[0].categories == ("1", "2", "3")


def test_target_with_one_class_is_refused(tmp_path):
    frame = table_rows()
    frame["grade"] = "only"
    frame.to_csv(tmp_path / "one.csv", index=False)
    with pytest.raises(DataError, match=r"data.target 'grade': holds one class \('only'\) only"):
        _load(tmp_path / "one.csv")


@pytest.mark.parametrize("target", ["price", "y"])
def test_a_numeric_target_is_a_quantity_to_bin(table_csv, target):
    """price (whole numbers, most on one row) and y (fractional): one whole line saying edgekd classifies and how
    many values there are, not scikit-learn's stratification error cut short."""
    data = DataConfig(source="csv", path=str(table_csv), target=target, features=["color", "shape"])
    with pytest.raises(DataError, match=rf"^data.target '{target}': holds numbers with \d+ distinct values, a quantity rather "
                                        r"than classes; edgekd trains classifiers only: bin the column into classes \(pandas.cut "
                                        r"or qcut\) and name the binned column as data.target$"):
        load_tabular_dataset(data, 0, table_csv.parent)
    # whole-number class codes stay classes
    tiers = load_tabular_dataset(DataConfig(source="csv", path=str(table_csv), target="tier", features=["color"]), 0, table_csv.parent)
    assert tiers.classes == ["1", "2", "3"]


def test_a_class_too_rare_to_split_is_named(tmp_path):
    rows = table_rows()
    rows.loc[0, "grade"] = "unique"
    rows.to_csv(tmp_path / "rare.csv", index=False)
    with pytest.raises(DataError, match=r"cannot be split stratified into training, validation and test \(class 'unique' has 1 "
                                        r"row\(s\)\); every class needs at least 3 rows: drop or merge the rare ones$"):
        _load(tmp_path / "rare.csv")


def test_text_in_a_numeric_column_names_it(tmp_path):
    frame = table_rows()
    frame["price"] = frame["price"].astype(object)
    frame.loc[7, "price"] = "n/a?"
    frame.to_csv(tmp_path / "typo.csv", index=False)
    with pytest.raises(DataError, match=r"column 'price' holds text \('n/a\?', row 7, line 9 of the file\) where the model takes numbers") as err:
        _load(tmp_path / "typo.csv")
    assert "\n" not in str(err.value) and "or list the column in data.categorical" in str(err.value)


def test_missing_feature_column_and_target(table_csv):
    with pytest.raises(DataError, match=r"column 'weight' \(data.features / data.categorical\) is not in the file"):
        _load(table_csv, features=["size", "weight"])
    with pytest.raises(DataError, match=r"data.target 'nope': no such column"):
        load_tabular_dataset(DataConfig(source="csv", path=str(table_csv), target="nope"), 0, table_csv.parent)


def test_the_target_among_the_features_is_refused(table_csv):
    """The answer given as an input would score 100% and predict nothing on the device."""
    with pytest.raises(ConfigError, match=r"data.features / data.categorical: 'grade' is data.target.*remove it"):
        _load(table_csv, features=["size", "grade"])
    with pytest.raises(ConfigError, match=r"'grade' is data.target"):
        _load(table_csv, categorical=["grade"])


def test_a_table_without_rows_is_named(tmp_path):
    table_rows().head(0).to_csv(tmp_path / "header.csv", index=False)
    with pytest.raises(DataError, match=r"data.path '.*header.csv': holds no rows \(a header only\)"):
        _load(tmp_path / "header.csv")


def test_a_feature_listed_twice_is_named(table_csv):
    with pytest.raises(ConfigError, match=r"^data.features: 'size' is listed twice; list each column once$"):
        _load(table_csv, features=["size", "color", "size"])


def test_rows_at_inference_are_checked_against_the_schema(table_csv):
    schema = _load(table_csv).schema
    good = {"size": [1.0], "price": ["1200"], "color": [""], "shape": ["round"], "y": [np.nan], "tier": [2]}
    assert model_inputs(schema, good, "rows")["price"].dtype == np.float32
    with pytest.raises(DataError, match=r"rows: column 'color' holds the category 'purple' \(row 0\), unseen in the data the model was built from"):
        model_inputs(schema, {**good, "color": ["purple"]}, "rows")
    with pytest.raises(DataError, match=r"rows: column 'shape' is missing; the model takes size, price, color, shape, y, tier"):
        model_inputs(schema, {k: v for k, v in good.items() if k != "shape"}, "rows")
    with pytest.raises(DataError, match=r"rows: column 'size' holds text \('big', row 0\)") as err:
        model_inputs(schema, {**good, "size": ["big"]}, "rows")
    assert "data.categorical" not in str(err.value)  # the device cannot change the model's columns



def test_a_category_in_one_split_only_is_known(tmp_path):
    """A rare value that falls in validation or test only does not stop the run: the schema's categories are the
    file's, so the bundle's eval rows (test rows) pass its check too."""
    for row in range(len(table_rows()) - 1, 0, -1):  # the first row from the end that is not in the training split
        frame = table_rows()
        frame.loc[row, "shape"] = "oval"
        frame.to_csv(tmp_path / "rare.csv", index=False)
        data = _load(tmp_path / "rare.csv")
        if "oval" not in data.train.x["shape"]:
            break
    assert "oval" in np.concatenate([data.val.x["shape"], data.test.x["shape"]])
    assert "oval" in next(c for c in data.schema.columns if c.name == "shape").categories
    model_inputs(data.schema, {k: v[:, 0] for k, v in data.test.x.items()}, "test rows")  # the eval rows pass the check


def test_an_all_missing_column_is_named(tmp_path):
    frame = table_rows()
    frame["note"] = np.nan
    frame.to_csv(tmp_path / "empty.csv", index=False)
    with pytest.raises(DataError, match=r"column 'note' has no value in the training split \(all missing\).*data.features") as err:
        _load(tmp_path / "empty.csv")
    assert "\n" not in str(err.value)
    frame["note"] = None
    frame.to_parquet(tmp_path / "empty.parquet", index=False)
    with pytest.raises(DataError, match=r"column 'note' has no value in the training split"):
        _load(tmp_path / "empty.parquet")


def test_integer_codes_with_a_gap_are_the_same_categories_as_integers(tmp_path):
    """An integer-coded column with a missing value is read as floats (2.0): its categories are '1', '2', '3', so the
    device's integer codes (2) and the file's (2.0) both fit; a target of numbers likewise."""
    frame = table_rows()
    frame["tier"] = frame["tier"].astype(float)
    frame.loc[3, "tier"] = np.nan
    frame["grade"] = frame["grade"].map({"low": 0.0, "mid": 1.0, "high": 2.0})
    frame.to_csv(tmp_path / "codes.csv", index=False)
    data = _load(tmp_path / "codes.csv", categorical=["tier"])
    assert next(c for c in data.schema.columns if c.name == "tier").categories == ("", "1", "2", "3")
    assert data.classes == ["0", "1", "2"]
    good = {"size": [1.0], "price": [1200.0], "color": ["red"], "shape": ["round"], "y": [0.0]}
    assert model_inputs(data.schema, {**good, "tier": [2]}, "rows")["tier"][0, 0] == "2"
    assert model_inputs(data.schema, {**good, "tier": [2.0]}, "rows")["tier"][0, 0] == "2"


def test_table_keys_need_a_table_source():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="data.target: applies to data.source csv or parquet"):
        DataConfig(source="digits", target="cut")
    with pytest.raises(ValidationError, match="data.target: data.source csv needs data.path"):
        DataConfig(source="csv", path="x.csv")
    # data.source forgotten (a trial, session 11: told to remove data.target)
    with pytest.raises(ValidationError, match=r"not to 'digits'; set data.source: csv \(unset, it is 'digits'\)"):
        DataConfig(path="wine.csv", target="cultivar")


def test_an_identifier_column_is_not_a_category(tmp_path):
    """Row ids read as categories: one one-hot slot per row, and every new row refused on the device."""
    frame = table_rows()
    frame["order_id"] = [f"A{i:05d}" for i in range(len(frame))]
    frame.to_csv(tmp_path / "ids.csv", index=False)
    with pytest.raises(DataError, match=r"column 'order_id' has 600 distinct values in 600 rows: an identifier .*data.features"):
        _load(tmp_path / "ids.csv")
    assert [c.name for c in _load(tmp_path / "ids.csv", features=["size", "color"]).schema.columns] == ["size", "color"]


def test_a_missing_value_marker_in_a_number_column_is_named(tmp_path):
    """'?' on a tenth of a number column's rows (as in many UCI tables) does not make it a column of categories."""
    frame = table_rows()
    frame["tier"] = frame["tier"].astype(object)
    frame.loc[frame.index[::10], "tier"] = "?"
    frame.to_csv(tmp_path / "marker.csv", index=False)
    with pytest.raises(DataError, match=r"column 'tier' holds text \('\?', row 0, line 2 of the file\) where the model takes numbers; .*leave it empty"):
        _load(tmp_path / "marker.csv")
    declared = _load(tmp_path / "marker.csv", categorical=["tier"])  # codes with a marker, declared: categories
    assert next(c for c in declared.schema.columns if c.name == "tier").categories == ("1", "2", "3", "?")


def test_keys_data_says_what_data_path_is_for_a_table():
    from edgekd.pipeline.config_help import key_lines

    (line,) = [text for text in key_lines("data") if text.startswith("data.path ")]
    assert "for csv and parquet the table" in line


def test_pandas_missing_markers_are_missing(tmp_path):
    """A parquet file of pandas' string and nullable integer columns holds pd.NA: a missing value, not the category
    '<NA>' nor text in a number column."""
    import pandas as pd

    frame = table_rows()
    frame["color"] = frame["color"].astype("string")
    frame["tier"] = frame["tier"].astype("Int64")
    frame.loc[5, "tier"] = pd.NA
    frame.to_parquet(tmp_path / "nullable.parquet", index=False)
    data = _load(tmp_path / "nullable.parquet")
    assert next(c for c in data.schema.columns if c.name == "color").categories == ("", "blue", "green", "red")
    assert next(c for c in data.schema.columns if c.name == "tier").kind == "numeric"
    assert model_inputs(data.schema, {**{k: v[:1, 0] for k, v in data.test.x.items()}, "color": [pd.NA]}, "rows")["color"][0, 0] == ""
