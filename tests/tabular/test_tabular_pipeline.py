"""The table pipeline end to end: teachers of several kinds cached and scored, the ensemble as ONNX, the student with
its preprocessing in one graph taking raw columns, int8, a bundle that `edgekd bench` measures without torch or
scikit-learn."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import yaml

from edgekd.core.errors import ConfigError
from edgekd.core.fileio import read_json
from tests.tabular.conftest import table_config, table_rows

pytestmark = pytest.mark.slow  # fits three teachers and trains a student: about half a minute on 2 cores


def _metrics(run, stage: str) -> dict:
    return read_json(run / "manifest.json")["stages"][stage]["metrics"]


def test_teachers_are_scored_cached_and_exported(table_run):
    from edgekd.train.distill.cache import TeacherLogitCache, resolve_cache_dir

    run, _ = table_run
    metrics = _metrics(run, "teachers")
    kinds = [t["kind"] for t in metrics["teachers"]]
    assert kinds == ["sklearn", "lightgbm", "sklearn"]
    for teacher in metrics["teachers"]:
        assert teacher["val_top1"] > 0.5 and teacher["top1"] > 0.5 and teacher["onnx_bytes"] > 0
        for key in teacher["cache_keys"].values():  # every split cached once, in the shared teacher-logit cache
            assert TeacherLogitCache(resolve_cache_dir(None, None, run)).load(key) is not None
    ensemble = metrics["ensemble"]
    assert ensemble["onnx_bytes"] > 0 and ensemble["p50_ms"] > 0 and ensemble["threads"] >= 1
    assert abs(ensemble["onnx_top1"] - ensemble["top1"]) < 0.02  # the deployed graph scores what the ensemble scores


def test_the_bundle_takes_raw_columns(table_run):
    import onnxruntime as ort

    run, _ = table_run
    bundle = run / "bundle" / "x86-cpu"
    manifest = read_json(bundle / "manifest.json")
    schema = manifest["preprocessing"]["tabular"]
    assert [c["name"] for c in schema["columns"]] == ["size", "price", "color", "shape", "y", "tier"]
    inputs = {i["name"]: i["dtype"] for i in manifest["inputs"]}
    assert inputs == {"size": "float32", "price": "float32", "color": "object", "shape": "object", "y": "float32", "tier": "float32"}
    with np.load(bundle / "eval.npz", allow_pickle=False) as data:
        assert data["color"].dtype.kind == "U" and "input.y" in data.files  # the column named y beside eval.npz's own y
    session = ort.InferenceSession(str(bundle / manifest["artifact"]["main"]))
    rows = {"size": [[1.2]], "price": [[1300.0]], "color": [["red"]], "shape": [[""]], "y": [[np.nan]], "tier": [[2.0]]}
    feed = {k: np.array(v, dtype=np.float32 if inputs[k] == "float32" else str) for k, v in rows.items()}
    assert session.run(None, feed)[0].shape == (1, 3)


def test_the_bundle_readme_says_how_to_feed_a_table(table_run):
    """The bundle's README tells the device to feed raw columns (not pixels), and the row check it names works."""
    from edgekd.core.errors import DataError
    from edgekd.data.table_schema import model_feed, schema_of

    bundle = table_run[0] / "bundle" / "x86-cpu"
    readme = (bundle / "README.md").read_text()
    assert "pixel" not in readme and "raw columns" in readme and "model_feed(schema_of(manifest), rows, where)" in readme
    schema = schema_of(read_json(bundle / "manifest.json"))
    rows = {"size": [1.2], "price": [1300.0], "color": [""], "shape": ["round"], "y": [np.nan], "tier": [2.0]}
    assert model_feed(schema, rows, "rows")["color"].shape == (1, 1)
    with pytest.raises(DataError, match=r"rows: column 'color' holds the category 'purple'.*known category, or to '' \(missing\)$"):
        model_feed(schema, {**rows, "color": ["purple"]}, "rows")
    # shape had no gap in the file: '' is not one of its categories, and the line does not suggest it
    with pytest.raises(DataError, match=r"rows: column 'shape' has a missing value \(row 0\), but had none in the data"):
        model_feed(schema, {**rows, "shape": [""]}, "rows")
    with pytest.raises(DataError, match=r"rows: column 'shape' holds the category 'oval'.*map it to a known category$"):
        model_feed(schema, {**rows, "shape": ["oval"]}, "rows")
    # a column given as one row of three values (or a second value per row) lost rows or values without a word
    assert model_feed(schema, {**rows, "size": [[1.2]]}, "rows")["size"].shape == (1, 1)  # (rows, 1) is a column
    with pytest.raises(DataError, match=r"rows: column 'size' is \(1, 3\), but a column is one value per row"):
        model_feed(schema, {**rows, "size": [[1.2, 1.3, 1.4]]}, "rows")
    with pytest.raises(DataError, match=r"rows: column 'color' is \(1, 2\)"):
        model_feed(schema, {**rows, "color": np.array([["red", "blue"]])}, "rows")


def test_student_and_int8_are_recorded(table_run):
    run, _ = table_run
    distill = _metrics(run, "distill")
    assert distill["arch"] == "resmlp" and distill["params"] < 1000 and distill["loss"]["kind"] == "hinton"
    assert _metrics(run, "export")["parity"]["max_abs_error"] < 1e-3
    assert (run / "04-quantize").glob("*.onnx")


@pytest.fixture(scope="module")
def types_run(tmp_path_factory):
    """The pipeline on the same table with data.inputs: types (one 'numeric' and one 'categorical' input)."""
    from edgekd.pipeline.runner import run_from_file

    folder = tmp_path_factory.mktemp("table-types-run")
    table_rows().to_csv(folder / "table.csv", index=False)
    config = table_config()
    config["data"]["inputs"] = "types"
    (folder / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    run_from_file(folder / "config.yaml", out=str(folder / "run"), log=lambda _m: None)
    return folder / "run"


def test_a_types_bundle_takes_one_input_per_type_and_folds_its_front(types_run):
    import onnx
    import onnxruntime as ort

    bundle = types_run / "bundle" / "x86-cpu"
    manifest = read_json(bundle / "manifest.json")
    assert manifest["preprocessing"]["tabular"]["layout"] == "types"
    assert {i["name"]: (i["dtype"], i["shape"][1]) for i in manifest["inputs"]} == {"numeric": ("float32", 4), "categorical": ("object", 2)}
    fp32 = onnx.load(str(types_run / "03-export" / "student-fp32.onnx"))
    assert not {n.op_type for n in fp32.graph.node} & {"Gather"}  # the one-hot slot selection folded into the first Gemm
    assert _metrics(types_run, "export")["parity"]["max_abs_error"] < 1e-3
    session = ort.InferenceSession(str(bundle / manifest["artifact"]["main"]))
    feed = {"numeric": np.array([[1.2, 1300.0, np.nan, 2.0]], dtype=np.float32), "categorical": np.array([["red", ""]])}
    assert session.run(None, feed)[0].shape == (1, 3)


@pytest.mark.parametrize("layout", ["columns", "types"])
def test_bench_of_a_table_bundle_without_torch_or_scikit_learn(layout, request, tmp_path):
    run = request.getfixturevalue("table_run")[0] if layout == "columns" else request.getfixturevalue("types_run")
    blocked = ("torch", "transformers", "sklearn", "pandas", "lightgbm", "xgboost", "skl2onnx", "onnxmltools")
    block = ("import sys\nfrom importlib.machinery import ModuleSpec\nclass Refuse:\n"
             "    def create_module(self, spec): raise ImportError(spec.name + ' is blocked: the device path must not import it')\n"
             "    def exec_module(self, module): pass\nclass Block:\n"
             "    def find_spec(self, name, path=None, target=None):\n"
             f"        if name.split('.')[0] in {blocked!r}: return ModuleSpec(name, Refuse(), origin=None)\n"
             "sys.meta_path.insert(0, Block())\nfrom edgekd.cli import main\nmain(sys.argv[1:])\n")
    out = tmp_path / "device"
    done = subprocess.run([sys.executable, "-c", block, "bench", str(run / "bundle" / "x86-cpu"), "--runs", "5", "--min-seconds", "0",
                           "--warmup-runs", "1", "--warmup-seconds", "0", "--rounds", "1", "--out", str(out)],
                          capture_output=True, text=True, timeout=300, env={**os.environ})
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    row = report["rows"][0]
    assert row["p50_ms"] > 0 and row["top1"] > 0
    # the shipped candidate is fp32 or int8 (whichever timed faster here): int8 may flip a few near-ties
    assert row["fidelity"]["top1_agreement"] >= (1.0 if row["precision"] == "fp32" else 0.9)


def test_table_configs_refuse_what_tables_do_not_take(tmp_path):
    from edgekd.pipeline.config import validate_config
    from edgekd.tasks.tabular import check_tabular_config

    table_rows().to_csv(tmp_path / "table.csv", index=False)
    config = table_config()
    config["teachers"].append({"arch": "mlp"})
    with pytest.raises(ConfigError, match=r"teachers\[3\].arch: a table's teachers are fitted or given as files"):
        check_tabular_config(validate_config(config), tmp_path)
    config = table_config()
    config["student"] = {"arch": "convnet"}
    with pytest.raises(ConfigError, match=r"student.arch: tables take mlp or resmlp"):
        check_tabular_config(validate_config(config), tmp_path)
    config = table_config()
    config["targets"] = ["arm64-cpu", "intel-cpu"]  # onnxruntime's (ort-arm64) passes, OpenVINO's is refused
    with pytest.raises(ConfigError, match=r"targets\[1\] 'intel-cpu': a table model takes string columns"):
        check_tabular_config(validate_config(config), tmp_path)
    assert yaml.safe_dump(table_config())  # the shared config stays untouched


def test_a_network_given_as_onnx_is_a_teacher_with_logits(table_run):
    """A third-party network as ONNX (here the run's own student: raw columns in, logits out) serves as a teacher; its
    outputs do not sum to 1, so they are taken as logits, as they are."""
    from edgekd.data.config import DataConfig
    from edgekd.data.tabular import load_tabular_dataset
    from edgekd.tabular.runtime import run_onnx
    from edgekd.train.config import TeacherConfig
    from edgekd.train.teacher_kinds import load_teacher

    run, folder = table_run
    data = load_tabular_dataset(DataConfig(source="csv", path="table.csv", target="grade"), 0, folder)
    from edgekd.pipeline.layout import RunLayout

    network = RunLayout(run).fp32_onnx
    teacher = load_teacher(TeacherConfig(onnx=str(network)), 0, 3, folder, data.schema)
    assert np.allclose(teacher.logits(data.val.x), run_onnx(str(network), data.val.x), atol=1e-6)
