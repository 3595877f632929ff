"""Trial defects of session 14 on tables: the device's row checks (model_feed), the teacher's chance bar on skewed
classes, one parameter count per student, and the table's smaller rough edges."""
from __future__ import annotations

import numpy as np
import pytest

from edgekd.core.errors import DataError
from edgekd.data.table_schema import CATEGORICAL, NUMERIC, Column, Schema, model_feed


def _schema() -> Schema:
    return Schema("price", ("high", "low"), (
        Column("carat", CATEGORICAL, ("0.23", "0.3", "1.1", "1.5")),
        Column("grade", CATEGORICAL, ("", "1", "2", "3", "8")),
        Column("depth", NUMERIC),
    ))


def test_numbers_written_as_text_or_float32_are_the_categories_the_build_saw():
    """Trial defect (session 14): rows read from the model's own CSV with csv.DictReader were refused on the device:
    the build stores integer codes pandas read as floats because of a gap (3.0) as the category '3', but the device
    compared the text '3.0'; and a float32 array of a decimal category column (carat 1.1) became '1.100000023841858'
    through float64. Both are now the category the build saw."""
    rows = {"carat": np.array([1.1, 0.23, 0.3], dtype=np.float32), "grade": ["3.0", "", "8"], "depth": ["61.5", "60", ""]}
    fed = model_feed(_schema(), rows, "rows")
    assert fed["carat"][:, 0].tolist() == ["1.1", "0.23", "0.3"]
    assert fed["grade"][:, 0].tolist() == ["3", "", "8"]
    with pytest.raises(DataError, match=r"column 'grade' holds the category '4.0'"):  # a number no category is
        model_feed(_schema(), {**rows, "grade": ["4.0", "1", "2"]}, "rows")


def test_columns_of_unequal_length_name_the_odd_one_out():
    """Trial defect (session 14): with the schema's first column short (3 rows, the others 5) the error blamed a column
    of the right length ("column 'grade' has 5 rows but column 'carat' has 3"); the length most columns share is the
    expected one, and the column that differs from it is named."""
    rows = {"carat": ["1.1", "0.3", "0.23"], "grade": ["1", "2", "3", "8", ""], "depth": [60.0, 61.0, 62.0, 63.0, 64.0]}
    with pytest.raises(DataError, match=r"column 'carat' has 3 rows but column 'grade' has 5"):
        model_feed(_schema(), rows, "rows")
