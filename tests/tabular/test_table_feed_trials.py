"""Trial defects of session 14 on tables: the device's row checks (model_feed), the teacher's chance bar on skewed
classes, one parameter count per student, and the table's smaller rough edges."""
from __future__ import annotations

import re

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


def test_a_good_teacher_on_skewed_classes_is_above_chance_and_balanced_bars_stay():
    """Trial defect (session 14): with the largest class 98.0% of 600 validation rows, a teacher right on 598 (it found
    10 of the 12 minority rows) was called "not clearly above chance ... remove it, or lower its weight": the normal
    approximation's bar (chance + 3 standard errors, 99.7%) overstates a guesser's spread near 100%; guessing gets 598
    once in 2,000. The exact binomial tail judges skewed classes; balanced ones keep their bar."""
    from edgekd.pipeline.teacher_check import chance_bar, not_above_chance

    assert not_above_chance(598 / 600, 0.98, 600, "validation rows") is None
    assert not_above_chance(597 / 600, 0.98, 600, "validation rows")  # 3 misses: guessing gets as many once in 470
    assert chance_bar(0.5, 100) == pytest.approx(0.65) and chance_bar(0.1, 500) == pytest.approx(0.1402, abs=1e-4)
    assert "too few" in not_above_chance(1.0, 0.95, 69, "test samples")


def test_a_table_run_on_skewed_classes_reports_per_class_recall():
    """Trial defect (session 14): a run with a 1% minority passed its gate at top-1 = chance while neither the teacher
    nor the student ever predicted the minority, and nothing said so. On skewed classes (the largest over 80%) a
    table's report now carries each reference's per-class recall and balanced accuracy (report.json references), a
    note in report.md, and a warning naming a class a reference never predicts."""
    from edgekd.pipeline.stages.bench import class_recall, imbalance_notes, imbalanced

    y = np.array([0] * 95 + [1] * 5)
    always_common = np.tile([2.0, 0.0], (100, 1))
    finds_four = always_common.copy()
    finds_four[95:99] = [0.0, 2.0]
    refs = {"student_fp32": {"top1": 0.95, **class_recall(always_common, y, ["common", "rare"])},
            "teacher": {"top1": 0.99, **class_recall(finds_four, y, ["common", "rare"])}}
    assert imbalanced(y) and not imbalanced(np.array([0, 1] * 50))
    assert refs["teacher"]["recall"] == {"common": 1.0, "rare": 0.8} and refs["teacher"]["balanced_accuracy"] == 0.9
    note, missed = imbalance_notes(refs, y, ["common", "rare"])
    assert "student_fp32 50.0% ('rare' recall 0.0%); teacher 90.0% ('rare' recall 80.0%)" in note[0]
    assert len(missed) == 1 and missed[0].startswith("student_fp32 never predicts class 'rare' (5 of the 100 test samples)")
    assert imbalance_notes({"teacher": {"top1": 0.9}}, y, ["common", "rare"]) == ([], [])  # balanced: nothing added


def test_the_int8_student_is_a_quantized_copy_of_the_fp32_graph_with_its_parameter_count(table_run):
    """Trial defect (session 14): one tabular student with category columns read 2,437 parameters in fp32 and 1,957 in
    int8: export folds the one-hot slot selection into the first layer (its weight spans every slot of the union),
    while int8 quantized the unfolded network behind a Gather of the slots. The int8 model now quantizes the folded
    network, behind the same preprocessing: the same graph as the fp32 one, quantized, and one parameter count."""
    import json

    import onnx

    from edgekd.data.table_schema import layout_arrays
    from edgekd.tabular.front import front_graph, plan_from_graph, unpicked_features
    from edgekd.tabular.runtime import run_onnx

    run, _folder = table_run
    rows = {row["precision"]: row for row in json.loads((run / "report.json").read_text())["rows"]}
    assert rows["fp32"]["parameters"] == rows["int8"]["parameters"]
    fp32 = onnx.load(str(run / "03-export" / "student-fp32.onnx"))
    int8 = onnx.load(str(next((run / "04-quantize").glob("student-int8-*.onnx"))))
    # the same nodes but the quantization's own (onnxruntime folds a Relu into the QuantizeLinear it feeds)
    plain = [n.op_type for n in int8.graph.node if n.op_type not in ("QuantizeLinear", "DequantizeLinear", "Relu")]
    assert plain == [n.op_type for n in fp32.graph.node if n.op_type != "Relu"] and "Gather" not in plain

    from edgekd.data.config import DataConfig
    from edgekd.data.tabular import load_tabular_dataset

    data = load_tabular_dataset(DataConfig(source="csv", path="table.csv", target="grade"), 0, _folder)
    plan = plan_from_graph(onnx.load(str(run / "02-distill" / "preprocessing.onnx")), data.schema)
    x = layout_arrays(data.schema, data.val.x)
    picked = run_onnx(front_graph(plan, data.schema).SerializeToString(), x)
    unpicked = run_onnx(front_graph(plan, data.schema, pick=False).SerializeToString(), x)
    assert np.array_equal(unpicked_features(plan, picked), unpicked)  # the calibration rows are what the graph computes


def test_a_bad_value_in_the_csv_is_named_by_its_row_and_its_line(tmp_path):
    """Trial defect (session 14): 'unknown' in a number column was named as row 123, which the user looked for at line
    123 of the file (it is on line 125: rows count from 0, under a header); an infinite value was named by its row in a
    split. Errors reading the file now name the file's row and its line; the device's rows keep their index."""
    import pandas as pd

    from edgekd.data.config import DataConfig
    from edgekd.data.tabular import load_tabular_dataset

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"carat": rng.normal(1, 0.3, 300).round(2).astype(object), "cut": rng.choice(["A", "B"], 300)})
    frame.loc[123, "carat"] = "unknown"
    frame.to_csv(tmp_path / "dia.csv", index=False)
    assert (tmp_path / "dia.csv").read_text().splitlines()[124].startswith("unknown,")
    with pytest.raises(DataError, match=r"holds text \('unknown', row 123, line 125 of the file\)"):
        load_tabular_dataset(DataConfig(source="csv", path="dia.csv", target="cut"), 0, tmp_path)
    with pytest.raises(DataError, match=r"holds text \('cheap', row 1\) where"):  # the device: the index, as before
        model_feed(_schema(), {"carat": ["1.1", "0.3"], "grade": ["1", "2"], "depth": ["60", "cheap"]}, "rows")


def test_the_starter_file_does_not_pick_a_quantity_named_y_as_the_target(tmp_path):
    """Trial defect (session 14): `edgekd init --data dia.csv` picked `y` (a diamond's width in mm) as data.target for
    its name, and the run then stopped with "a quantity rather than classes". A column the name rule picks that holds a
    quantity gives way to the first text column with few values; a label column of class codes stays picked."""
    import pandas as pd

    from edgekd.pipeline.config_help import table_starter

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"carat": rng.normal(1, 0.3, 200), "cut": rng.choice(["Ideal", "Good", "Fair"], 200),
                          "color": rng.choice(list("DEFGHIJ"), 200), "y": rng.normal(5.7, 1.1, 200).round(2)})
    frame.to_csv(tmp_path / "dia.csv", index=False)
    assert 'target: "cut"' in table_starter("dia", str(tmp_path / "dia.csv"), "edgekd.yaml", None)
    frame.assign(y=rng.integers(0, 3, 200)).to_csv(tmp_path / "codes.csv", index=False)
    assert 'target: "y"' in table_starter("codes", str(tmp_path / "codes.csv"), "edgekd.yaml", None)


def test_a_long_teacher_fit_says_it_is_still_fitting(monkeypatch, capsys):
    """Trial defect (session 14): a LogisticRegression teacher took 55 s to fit and the run printed nothing meanwhile
    (progress lines stopped: a scikit-learn fit reports no progress). A fit longer than the progress interval now
    prints a heartbeat line naming the teacher and its rows."""
    import time

    from sklearn.linear_model import LogisticRegression

    from edgekd.train.config import TeacherConfig
    from edgekd.train.teacher_kinds import fit_teacher

    fit = LogisticRegression.fit

    def slow_fit(self, *args, **kwargs):
        time.sleep(1.3)
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(LogisticRegression, "fit", slow_fit)
    monkeypatch.setenv("EDGEKD_PROGRESS_SECONDS", "0")  # every line: the heartbeat's shortest interval, 1 s
    x, y = np.random.default_rng(0).normal(size=(40, 3)), np.array([0, 1] * 20)
    fit_teacher(TeacherConfig(sklearn="LogisticRegression"), 1, x, y, 2, 0)
    said = capsys.readouterr().err
    assert re.search(r"^  fitting teachers\[1\] LogisticRegression on 40 rows: 1\.\d s elapsed$", said, re.M), said
