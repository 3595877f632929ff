"""NNCF's progress bars and INFO lines, and torch's `No CUDA runtime is found` (logged when NNCF imports torch's C++
extension builder), stay out of edgekd's output: checked in a fresh interpreter, where the import happens."""
from __future__ import annotations

import subprocess
import sys

import pytest

from tests.faults.helpers import subprocess_env

pytest.importorskip("nncf")
pytest.importorskip("onnx")

QUANTIZE = """
import logging, sys
from pathlib import Path
import numpy as np, onnx
from onnx import TensorProto, helper, numpy_helper
weights = numpy_helper.from_array(np.random.default_rng(0).normal(size=(8, 3, 3, 3)).astype(np.float32), "w")
graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"]), helper.make_node("Relu", ["y"], ["z"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                          [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 8, 6, 6])], [weights])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
model.ir_version = 9
folder = Path(sys.argv[1])
onnx.save(model, str(folder / "tiny.onnx"))
logging.basicConfig(level=logging.INFO)  # an application that logs at INFO: NNCF's lines would show
from edgekd.runtimes.nncf_ptq import quantize_nncf
from edgekd.runtimes.profiles import QuantRecipe
quantize_nncf(folder / "tiny.onnx", folder / "int8.onnx", QuantRecipe(name="t", tool="nncf"),
              np.random.default_rng(1).normal(size=(12, 3, 8, 8)))
import rich
print("quantized", (folder / "int8.onnx").is_file(), "console restored", not rich.get_console().quiet)
"""


def test_nncf_quantization_prints_nothing_of_its_own(tmp_path):
    # rich draws bars only on what it takes for a terminal; forcing one shows them as a user's terminal would
    done = subprocess.run([sys.executable, "-c", QUANTIZE, str(tmp_path)], capture_output=True, text=True, timeout=300,
                          env=subprocess_env(FORCE_COLOR="1", TTY_COMPATIBLE="1", COLUMNS="120"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "quantized True console restored True" in done.stdout
    everything = done.stdout + done.stderr
    for noise in ("Statistics collection", "Fast Bias correction", "No CUDA runtime is found", "INFO:nncf"):
        assert noise not in everything, everything[-3000:]
