"""Files from strangers never run code: checkpoints, npz data, bundles; and the source proves it stays so."""
from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from edgekd.core.fileio import write_json_atomic
from edgekd.device.bundle import sealed

from .helpers import REPO, assert_one_line_error, invoke, run_cli, subprocess_env, write_config


class _CreatesMarker:
    """Unpickling this calls open(marker, "w"): a harmless stand-in for any code a stranger could run."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _booby_trapped_checkpoint(path: Path, marker: Path) -> Path:
    from edgekd.train.models.zoo import MLP

    state = MLP(1, 10, 8, width=16).state_dict()
    state["features.1.bias"] = _CreatesMarker(marker)
    torch.save(state, path)
    return path


def test_checkpoint_carrying_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "code-ran.txt"
    _booby_trapped_checkpoint(tmp_path / "trap.pt", marker)
    config = write_config(tmp_path, teachers=[{"arch": "mlp", "width": 16, "checkpoint": "trap.pt"}])

    result = run_cli("run", config, "--out", tmp_path / "run")

    # what it wants to import, whole (torch's refusal was cut at 160 characters, mid-word), and what to save instead
    assert_one_line_error(result, "teachers[0].checkpoint", "trap.pt", "refused", "weights_only=True",
                          "it wants io.open", "torch.save(model.state_dict(), path)")
    assert not marker.exists()


def test_the_trap_is_real_when_loaded_unsafely(tmp_path):
    """Control: the same file does run its code under torch.load(weights_only=False)."""
    marker = tmp_path / "code-ran.txt"
    _booby_trapped_checkpoint(tmp_path / "trap.pt", marker)
    # A fresh interpreter, so this test's own class definition is not what makes the load work.
    code = f"import torch; torch.load({str(tmp_path / 'trap.pt')!r}, weights_only=False)"
    subprocess.run([sys.executable, "-c", code], check=True, env=subprocess_env(), capture_output=True, timeout=120)
    assert marker.exists()


@pytest.mark.parametrize("kind", ["pickle", "checkpoint", "garbage"])
def test_a_model_file_that_is_not_onnx_is_refused_at_the_door_without_loading_it(tmp_path, kind):
    """`edgekd ship` of a pickle, a PyTorch checkpoint or random bytes named .onnx: one line naming the file and what it
    looks like, before any stage runs (it used to reach the distill stage and end in 'internal error: DecodeError')."""
    import pickle

    marker, model = tmp_path / "code-ran.txt", tmp_path / "model.onnx"
    if kind == "pickle":
        model.write_bytes(pickle.dumps(_CreatesMarker(marker)))
    elif kind == "checkpoint":
        torch.save({"w": torch.zeros(2)}, model)
    else:
        model.write_bytes(bytes(range(7, 250)))
    np.savez(tmp_path / "data.npz", x=np.zeros((40, 1, 8, 8), np.float32), y=np.arange(40) % 4)
    result = run_cli("ship", model, "--data", tmp_path / "data.npz", "--out", tmp_path / "run")
    expected = {"pickle": "it is a Python pickle, which edgekd never loads", "checkpoint": "PyTorch .pt checkpoint",
                "garbage": "not a readable ONNX model"}[kind]
    assert_one_line_error(result, f"'{model}'", "not a readable ONNX model", expected)
    assert not marker.exists() and "[1/7" not in result.stderr  # refused before the first stage


def test_npz_with_pickled_objects_is_refused(tmp_path):
    x = np.empty(30, dtype=object)
    x[:] = [np.zeros((1, 8, 8))] * 30
    np.savez(tmp_path / "objects.npz", x=x, y=np.zeros(30, np.int64))
    config = write_config(tmp_path, data={"source": "npz", "path": str(tmp_path / "objects.npz")})
    assert_one_line_error(invoke("run", config, "--out", tmp_path / "run"), "objects.npz",
                          "array of Python objects, which edgekd does not unpickle")


def test_bundle_naming_a_code_reference_as_backend_is_refused(tmp_path, finished_run):
    """Bundles name their runtime from a fixed table; a `module:function` there imports nothing."""
    bundle = shutil.copytree(finished_run / "bundle" / "x86-cpu", tmp_path / "x86-cpu")
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["artifact"]["backend"] = "os:system"
    write_json_atomic(bundle / "manifest.json", sealed(manifest))
    assert_one_line_error(invoke("bench", bundle), "unknown backend 'os:system'")


# ---- the source itself ------------------------------------------------------------------------

_FORBIDDEN_CALLS = {"eval", "exec", "compile"}
_UNSAFE_ATTRS = {("yaml", "load"), ("yaml", "unsafe_load"), ("yaml", "full_load"), ("pickle", "load"),
                 ("pickle", "loads"), ("marshal", "loads"), ("dill", "load"), ("cloudpickle", "load")}


def _keyword(call: ast.Call, name: str):
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is_true(node) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def _problems(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call):
            continue
        where = f"{path.name}:{node.lineno}"
        func = node.func
        if isinstance(func, ast.Name) and func.id in _FORBIDDEN_CALLS:
            found.append(f"{where}: {func.id}()")
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            pair = (func.value.id, func.attr)
            if pair in _UNSAFE_ATTRS:
                found.append(f"{where}: {pair[0]}.{pair[1]}()")
            if pair == ("torch", "load") and not _is_true(_keyword(node, "weights_only")):
                found.append(f"{where}: torch.load without weights_only=True")
            if pair == ("np", "load") and _is_true(_keyword(node, "allow_pickle")):
                found.append(f"{where}: np.load(allow_pickle=True)")
    return found


def test_package_source_has_no_eval_exec_or_unsafe_loads():
    files = sorted((REPO / "edgekd").rglob("*.py"))
    assert len(files) > 20
    problems = [f"{f.relative_to(REPO)}: {p}" for f in files for p in _problems(f)]
    assert not problems, problems


def test_the_source_check_catches_what_it_should(tmp_path):
    """Control for the check above: each forbidden pattern in a scratch file is reported."""
    sample = tmp_path / "sample.py"
    sample.write_text("import torch, yaml, pickle\neval('1')\nexec('x = 1')\nyaml.load(s)\npickle.loads(b)\n"
                      "torch.load(p)\ntorch.load(p, weights_only=False)\nmodel.eval()\ntorch.load(p, weights_only=True)\n",
                      encoding="utf-8")
    found = _problems(sample)
    assert [f.split(": ", 1)[1] for f in found] == ["eval()", "exec()", "yaml.load()", "pickle.loads()",
                                                    "torch.load without weights_only=True",
                                                    "torch.load without weights_only=True"]


# ---- damaged files are not called code (issue 20, item 11) -------------------------------------------


@pytest.mark.parametrize("content", [bytes(range(256)) * 16, b"hello world" * 100, b"\x80\x04" + bytes(200)],
                         ids=["random", "text", "pickle-header"])
def test_a_damaged_checkpoint_is_called_damaged_not_code(tmp_path, content):
    (tmp_path / "noise.pt").write_bytes(content)
    config = write_config(tmp_path, teachers=[{"arch": "mlp", "width": 16, "checkpoint": "noise.pt"}])
    message = assert_one_line_error(invoke("run", config, "--out", tmp_path / "run"), "teachers[0].checkpoint", "noise.pt",
                                    "not a", "PyTorch checkpoint", "download it again")
    assert "pickled code" not in message
