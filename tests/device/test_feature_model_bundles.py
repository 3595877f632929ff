"""A model whose one input is a feature vector (not an image), shipped with `edgekd ship --data` and benched from its
bundle. Before: a single input given by its own name (`features=...`) shipped with a PASS, then `edgekd bench` refused
its bundle on every machine (`eval.npz: no array x`); and an input named x fed (N, 64) was told to "save each array
under the name of the input it feeds", which it already was."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
sklearn_datasets = pytest.importorskip("sklearn.datasets")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from tests.faults.helpers import assert_one_line_error, invoke  # noqa: E402

pytestmark = pytest.mark.slow  # two ships (int8, compile, bench) on 2 cores: ~20 s each


def _digits_features() -> tuple[np.ndarray, np.ndarray]:
    digits = sklearn_datasets.load_digits()
    return (digits.data / 16.0).astype(np.float32), digits.target.astype(np.int64)


def _linear_classifier(path: Path, input_name: str, x: np.ndarray, y: np.ndarray) -> None:
    """features [batch, 64] -> Gemm -> logits [batch, 10], fitted by least squares on one-hot labels (about 90%)."""
    design = np.hstack([x, np.ones((len(x), 1), np.float32)])
    solution = np.linalg.lstsq(design, np.eye(10, dtype=np.float32)[y], rcond=None)[0].astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Gemm", [input_name, "W", "b"], ["logits"])], "features",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["batch", 64])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
        initializer=[numpy_helper.from_array(solution[:-1], "W"), numpy_helper.from_array(solution[-1], "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def _ship_and_bench(tmp_path: Path, model: Path, data: Path) -> dict:
    shipped = invoke("ship", model, "--data", data, "--targets", "x86-cpu", "--out", tmp_path / "run")
    assert shipped.exit_code == 0, shipped.output[-3000:]
    built = json.loads((tmp_path / "run" / "report.json").read_text())
    benched = invoke("bench", tmp_path / "run" / "bundle" / "x86-cpu", "--runs", "3", "--min-seconds", "0", "--warmup-runs", "1",
                     "--warmup-seconds", "0", "--rounds", "1", "--no-memory", "--json", tmp_path / "device.json")
    assert benched.exit_code == 0, benched.output[-3000:]
    device = json.loads((tmp_path / "device.json").read_text())
    shipped_row = next(row for row in built["rows"] if row.get("shipped"))
    device_row = device["rows"][0]
    assert device_row["top1"] == pytest.approx(shipped_row["top1"], abs=0.02)  # same eval set, same model
    return device_row


def test_one_input_given_by_its_own_name_ships_and_benches(tmp_path):
    x, y = _digits_features()
    _linear_classifier(tmp_path / "model.onnx", "features", x, y)
    np.savez(tmp_path / "data.npz", features=x, y=y)
    assert _ship_and_bench(tmp_path, tmp_path / "model.onnx", tmp_path / "data.npz")["top1"] > 0.8


def test_an_input_named_x_takes_its_features_as_input_dot_x(tmp_path):
    x, y = _digits_features()
    _linear_classifier(tmp_path / "model.onnx", "x", x, y)
    np.savez(tmp_path / "as-x.npz", x=x, y=y)
    assert_one_line_error(invoke("ship", tmp_path / "model.onnx", "--data", tmp_path / "as-x.npz", "--targets", "x86-cpu",
                                 "--out", tmp_path / "refused"), "got shape (1797, 64)", "input.x for an input named x")
    np.savez(tmp_path / "data.npz", **{"input.x": x, "y": y})
    assert _ship_and_bench(tmp_path, tmp_path / "model.onnx", tmp_path / "data.npz")["top1"] > 0.8
