"""--resume after one teacher's params changed: only that teacher is fitted again; the others' outputs and ONNX files
come from the teacher cache."""
from __future__ import annotations

import pytest
import yaml

from edgekd.core.fileio import read_json
from tests.tabular.conftest import table_config, table_rows

pytestmark = pytest.mark.slow  # fits the teachers twice: about 15 s on 2 cores


def test_resume_refits_only_the_teacher_that_changed(tmp_path, monkeypatch):
    from sklearn.pipeline import Pipeline

    from edgekd.pipeline.runner import run_from_file

    table_rows().to_csv(tmp_path / "table.csv", index=False)
    config = table_config()
    config["teachers"] = [{"sklearn": "RandomForestClassifier", "params": {"n_estimators": 10, "max_depth": 6}},
                          {"sklearn": "LogisticRegression", "params": {"max_iter": 200}}]
    path, run = tmp_path / "config.yaml", tmp_path / "run"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    run_from_file(path, out=str(run), only=["teachers"], log=lambda _m: None)
    first = read_json(run / "manifest.json")["stages"]["teachers"]["metrics"]

    fitted = []
    real_fit = Pipeline.fit
    monkeypatch.setattr(Pipeline, "fit", lambda self, *a, **k: fitted.append(type(self.steps[-1][1]).__name__) or real_fit(self, *a, **k))
    config["teachers"][1]["params"]["C"] = 0.5
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    run_from_file(path, out=str(run), only=["teachers"], resume=True, log=lambda _m: None)
    second = read_json(run / "manifest.json")["stages"]["teachers"]["metrics"]

    assert fitted == ["LogisticRegression"]  # the forest's outputs and ONNX file were cached: not fitted again
    assert second["teachers"][0]["cache_keys"] == first["teachers"][0]["cache_keys"]
    assert second["teachers"][1]["cache_keys"] != first["teachers"][1]["cache_keys"]
    assert second["teachers"][0]["onnx_bytes"] == first["teachers"][0]["onnx_bytes"] > 0
    assert (run / "01-teachers" / "teacher-0.onnx").is_file() and second["ensemble"]["onnx_bytes"] > 0


def test_a_skops_teacher_file_replaced_in_place_is_noticed_by_resume(tmp_path):
    """Trial defect (session 11): a teacher's .skops file overwritten with another model kept every stage 'up to date'
    under --resume (ONNX teacher files were fingerprinted, skops ones not): the bundle came from the old teacher."""
    from edgekd.pipeline.inputs import _model_files
    from edgekd.train.config import TeacherConfig

    teacher = TeacherConfig(skops="teacher.skops")
    (tmp_path / "teacher.skops").write_bytes(b"the first model")
    before = _model_files(teacher, tmp_path)
    (tmp_path / "teacher.skops").write_bytes(b"another model")
    assert _model_files(teacher, tmp_path) != before
    assert "skops" not in _model_files(TeacherConfig(onnx="teacher.onnx"), tmp_path)  # others' keys as they were


def test_a_member_that_pulls_the_ensemble_down_is_named():
    """Trial defect (session 11): a GaussianNB at 10.6% beside a LightGBM at 75.8% made an ensemble of 21.4%; only the
    fitted file teachers' top-1 was printed, and the warning advised training longer."""
    import warnings

    import numpy as np
    import pytest

    from edgekd.tasks.tabular import _say_weak_members

    y = np.repeat(np.arange(3), 100)
    entries = [{"index": 0, "name": "LGBMClassifier", "val_top1": 0.758}, {"index": 1, "name": "GaussianNB", "val_top1": 0.106}]
    with pytest.warns(UserWarning, match=r"^teachers\[1\] GaussianNB: top-1 10.6% on 300 validation rows, not clearly above "
                                         r"chance.*it pulls the ensemble down: remove it, or lower its weight"):
        _say_weak_members(entries, 0.214, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _say_weak_members([entries[0], {**entries[1], "val_top1": 0.75}], 0.77, y)  # two sound members: nothing said


def test_a_teachers_nan_outputs_name_the_columns_with_missing_values():
    """Trial defect (session 11): an ONNX teacher fed a NaN carat answered NaN, and the message advised checking "the
    checkpoint and the data normalisation"."""
    from types import SimpleNamespace

    import numpy as np
    import pytest

    from edgekd.core.errors import DataError
    from edgekd.tasks.tabular import _finite

    rows = {"carat": np.array([[0.3], [np.nan], [0.5]]), "cut": np.array([["Ideal"], ["Good"], ["Fair"]])}
    logits = np.array([[0.1, 0.9], [np.nan, np.nan], [0.4, 0.6]])
    teacher = SimpleNamespace(where="teachers[1]", kind="onnx", name="lr.onnx")
    with pytest.raises(DataError, match=r"^teachers\[1\].onnx 'lr.onnx': outputs NaN or Inf on 1 of 3 rows, rows with a "
                                        r"missing value in column\(s\) carat: the model takes no missing values"):
        _finite(teacher, logits, rows)
    assert _finite(teacher, logits[[0, 2]], {"carat": rows["carat"][[0, 2]]}) is not None


def test_a_name_matched_teacher_that_looks_swapped_is_not_told_to_fit_on_the_names():
    """Trial defect (session 11): a skops model fitted on the names (of another column) was told its class ids were
    matched by position and to fit it on the target's names, which it was."""
    from types import SimpleNamespace

    import numpy as np

    from edgekd.tasks.tabular import _order_fix

    by_name = SimpleNamespace(kind="skops", model=SimpleNamespace(classes_=np.array(["high", "low", "mid"], dtype=object)))
    assert "matched to this data's by name" in _order_fix(by_name, ["high", "low", "mid"])
    by_id = SimpleNamespace(kind="skops", model=SimpleNamespace(classes_=np.array([0, 1, 2])))
    assert "by position (sorted: high, low, mid)" in _order_fix(by_id, ["high", "low", "mid"])


def test_a_weak_members_warning_reaches_the_report(tmp_path):
    """Carried defect (session 13): a member named as pulling the ensemble down was said on the terminal and in
    RUN/edgekd.log only; report.json and report.md, which people read later, carried no word of it."""
    from edgekd.pipeline.runner import run_from_file

    table_rows().to_csv(tmp_path / "table.csv", index=False)
    config = table_config()
    config["teachers"] = [{"sklearn": "RandomForestClassifier", "params": {"n_estimators": 10, "max_depth": 6}},
                          {"sklearn": "DummyClassifier", "params": {"strategy": "uniform"}, "weight": 5}]
    path, run = tmp_path / "config.yaml", tmp_path / "run"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    with pytest.warns(UserWarning, match=r"teachers\[1\] DummyClassifier"):
        run_from_file(path, out=str(run), log=lambda _m: None)
    said = [w for w in read_json(run / "report.json")["warnings"] if w.startswith("teachers[1] DummyClassifier")]
    assert len(said) == 1 and "remove it, or lower its weight (teachers[1].weight)" in said[0]
    assert said[0] in (run / "report.md").read_text(encoding="utf-8")
