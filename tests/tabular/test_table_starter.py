"""`edgekd init --data TABLE.csv`: a starter pipeline for tables that loads, guesses the label column, and passes its
own gate; `edgekd ship --data TABLE.csv` points to it."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from edgekd.cli import main
from edgekd.pipeline.config import load_config
from tests.faults.helpers import assert_one_line_error, invoke

pd = pytest.importorskip("pandas")
pytest.importorskip("sklearn")


@pytest.fixture
def wine_csv(tmp_path):
    from sklearn.datasets import load_wine

    wine = load_wine(as_frame=True)
    frame = wine.frame.rename(columns={"target": "cultivar"})
    frame["cultivar"] = [str(wine.target_names[i]) for i in frame["cultivar"]]
    frame.to_csv(tmp_path / "wine.csv", index=False)
    return tmp_path / "wine.csv"


def test_init_on_a_table_writes_a_table_pipeline_with_the_label_column_guessed(wine_csv, tmp_path):
    """Trial defect (session 11, carried): `edgekd init --data wine.csv` was refused ("not digits, fashion-mnist, ..."),
    with no word of how tables are run."""
    path = tmp_path / "sub" / "t.yaml"
    path.parent.mkdir()
    assert CliRunner().invoke(main, ["init", str(path), "--data", str(wine_csv)]).exit_code == 0
    config = load_config(path)
    assert config.data.source == "csv" and config.data.target == "cultivar"  # the last column: no column named label
    assert "change it if another column is the label" in path.read_text()
    frame = pd.read_csv(wine_csv)
    frame.insert(0, "label", frame.pop("cultivar"))
    frame.to_csv(tmp_path / "labelled.csv", index=False)
    assert CliRunner().invoke(main, ["init", str(tmp_path / "l.yaml"), "--data", str(tmp_path / "labelled.csv")]).exit_code == 0
    assert load_config(tmp_path / "l.yaml").data.target == "label"


def test_the_table_starter_runs_and_passes_its_own_gate(wine_csv, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert CliRunner().invoke(main, ["init", "--data", "wine.csv"]).exit_code == 0
    result = invoke("run", "edgekd.yaml", "--out", "run")
    assert result.exit_code == 0 and "gate: PASS" in result.output, result.output[-3000:]


def test_ship_of_a_table_points_to_the_table_pipeline(wine_csv, tmp_path):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"")
    assert_one_line_error(invoke("ship", model, "--data", wine_csv, "--out", tmp_path / "run"),
                          "a table, which edgekd ship does not take", f"edgekd init --data {wine_csv}")


@pytest.mark.parametrize("teacher, key", [({"skops": "m.skops", "params": {"n_estimators": 3}}, "params"),
                                          ({"onnx": "m.onnx", "params": {"C": 1}}, "params"),
                                          ({"sklearn": "LogisticRegression", "trusted": ["x"]}, "trusted"),
                                          ({"skops": "m.skops", "outputs": "logits"}, "outputs")])
def test_a_teacher_key_its_kind_does_not_read_is_refused(teacher, key):
    """Trial defect (session 11, carried): a skops teacher's params and outputs were accepted and did nothing."""
    from pydantic import ValidationError

    from edgekd.train.config import TeacherConfig

    with pytest.raises(ValidationError, match=f"{key}: read for .* teachers only, not a {next(iter(teacher))} teacher"):
        TeacherConfig(**teacher)
    TeacherConfig(**{k: v for k, v in teacher.items() if k != key})


def test_init_never_writes_over_a_data_file_given_as_its_path(wine_csv):
    """Trial defect (session 13): `edgekd init wine.csv` said "already exists; pass --force", and `--force` replaced the
    user's table with YAML."""
    before = wine_csv.read_bytes()
    for args in (["init", str(wine_csv)], ["init", str(wine_csv), "--force"], ["init", str(wine_csv), "--data", str(wine_csv), "--force"]):
        result = CliRunner().invoke(main, args)
        assert_one_line_error(result, "edgekd init writes a pipeline file, which ends in .yaml",
                              f"did you mean: edgekd init --data {wine_csv}")
    assert wine_csv.read_bytes() == before


def test_the_input_checks_warnings_are_in_the_run_log(tmp_path):
    """Trial defect (session 13): a data column's warning (one value on every row) was said before the run log opened,
    so RUN/edgekd.log never held it."""
    import yaml

    from tests.tabular.conftest import table_config, table_rows

    frame = table_rows()
    frame["const"] = 7
    frame.to_csv(tmp_path / "table.csv", index=False)
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(table_config()), encoding="utf-8")
    result = invoke("run", tmp_path / "p.yaml", "--out", tmp_path / "run", "--only", "teachers")
    assert result.exit_code == 0, result.output[-3000:]
    assert "holds one value on every row" in result.output
    assert "holds one value on every row" in (tmp_path / "run" / "edgekd.log").read_text()


def test_images_on_a_table_bundle_say_it_takes_rows():
    """Trial defect (session 13): `bench --images` on a table's bundle said "built from arrays, not image files"."""
    from edgekd.core.errors import DataError
    from edgekd.data.images import Preprocess

    with pytest.raises(DataError, match="a table's bundle, which takes rows of columns, not images"):
        Preprocess.from_manifest({"tabular": {"inputs": []}}, "b/manifest.json")
