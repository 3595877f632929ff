"""distill.out_of_fold: a fitted teacher's outputs on its own training rows come from fits that did not see them."""
from __future__ import annotations

import numpy as np
import pytest
import yaml

from edgekd.core.errors import ConfigError
from edgekd.core.fileio import read_json
from edgekd.data.config import DataConfig
from edgekd.data.tabular import load_tabular_dataset
from edgekd.train.config import TeacherConfig
from edgekd.train.teacher_kinds import fit_teacher, out_of_fold_logits
from tests.tabular.conftest import table_config, table_rows

FOREST = TeacherConfig(sklearn="RandomForestClassifier", params={"n_estimators": 30})


@pytest.fixture
def table(table_csv):
    return load_tabular_dataset(DataConfig(source="csv", path=str(table_csv), target="grade"), 0, table_csv.parent)


def _top1(logits, y) -> float:
    return float((np.asarray(logits).argmax(1) == y).mean())


def test_a_forest_knows_its_training_rows_and_out_of_fold_outputs_do_not(table):
    fitted = fit_teacher(FOREST, 0, table.train.x, table.train.y, table.num_classes, 0, table.schema)
    in_sample = _top1(fitted.logits(table.train.x), table.train.y)
    held_out = out_of_fold_logits(FOREST, 0, table.train.x, table.train.y, table.num_classes, 0, 5, table.schema)
    assert held_out.shape == (len(table.train), table.num_classes) and held_out.dtype == np.float32
    validation = _top1(fitted.logits(table.val.x), table.val.y)
    # in sample the forest is (nearly) always right; out of fold it is about as right as on validation rows
    assert in_sample > 0.97 and _top1(held_out, table.train.y) < in_sample - 0.05
    assert abs(_top1(held_out, table.train.y) - validation) < 0.1


def test_each_row_comes_from_the_fit_without_its_fold(table):
    from sklearn.model_selection import StratifiedKFold

    held_out = out_of_fold_logits(FOREST, 0, table.train.x, table.train.y, table.num_classes, 3, 4, table.schema)
    y = table.train.y
    rest, fold = next(iter(StratifiedKFold(4, shuffle=True, random_state=3).split(np.zeros(len(y)), y)))
    alone = fit_teacher(FOREST, 0, {k: v[rest] for k, v in table.train.x.items()}, y[rest], table.num_classes, 3, table.schema)
    assert np.allclose(held_out[fold], alone.logits({k: v[fold] for k, v in table.train.x.items()}))


def test_texts_are_split_as_rows_too():
    texts = [f"{word} {filler}" for word in ("editor text vim", "network socket http") for filler in "abcde"] * 4
    labels = np.array(([0] * 5 + [1] * 5) * 4)
    spec = TeacherConfig(sklearn=[{"TfidfVectorizer": {}}, {"LogisticRegression": {}}])
    assert out_of_fold_logits(spec, 0, texts, labels, 2, 0, 5).argmax(1).tolist() == labels.tolist()


def test_too_few_rows_of_a_class_for_the_folds_is_one_line():
    labels = np.array([0] * 10 + [1] * 3)
    with pytest.raises(ConfigError, match="distill.out_of_fold: 5 folds need at least 5 training rows of every class; "
                                          "one class has 3; lower distill.out_of_fold or set it to null"):
        out_of_fold_logits(FOREST, 0, {"a": np.arange(13.0)[:, None]}, labels, 2, 0, 5)


def test_the_pipeline_distills_from_out_of_fold_outputs_and_keys_them_apart(tmp_path):
    from edgekd.pipeline.runner import run_from_file

    table_rows().to_csv(tmp_path / "table.csv", index=False)
    runs = {}
    for name, folds in (("in-sample", None), ("out-of-fold", 3)):
        raw = table_config()
        raw["distill"]["train"]["epochs"] = 1
        raw["distill"] |= {"out_of_fold": folds} if folds else {}
        config = tmp_path / f"{name}.yaml"
        config.write_text(yaml.safe_dump(raw), encoding="utf-8")
        run_from_file(config, out=str(tmp_path / name), log=lambda _m: None, only=["teachers"])
        runs[name] = read_json(tmp_path / name / "manifest.json")
    plain, oof = (runs[n]["stages"]["teachers"]["metrics"]["teachers"] for n in ("in-sample", "out-of-fold"))
    assert [t["out_of_fold"] for t in oof] == [3, 3, 3] and [t["out_of_fold"] for t in plain] == [None] * 3
    for a, b in zip(plain, oof):  # the training rows' outputs are keyed apart; validation and test are the same fit's
        assert a["cache_keys"]["train"] != b["cache_keys"]["train"] and a["cache_keys"]["val"] == b["cache_keys"]["val"]
    # a config without it keys its stages as before the option existed (left out of the dump while unset)
    from edgekd.pipeline.config import load_config

    assert "out_of_fold" not in load_config(tmp_path / "in-sample.yaml").model_dump(mode="json")["distill"]
    assert load_config(tmp_path / "out-of-fold.yaml").model_dump(mode="json")["distill"]["out_of_fold"] == 3
