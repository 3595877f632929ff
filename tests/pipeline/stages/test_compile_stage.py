"""The compile stage in a real (tiny) run: candidates per target with a verdict each, the shipped
one never slower than fp32, and bundles that carry what a device needs, TensorRT's included."""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import yaml

from edgekd.device.bundle import verify_bundle
from tests.conftest import TINY_CONFIG, run_cli

pytestmark = pytest.mark.slow

MY_BOARD = """
name: my-board
backend: ort
precisions: [int8, fp32]
quantization: {name: my-u8s8, activation_type: uint8, weight_type: int8, reduce_range: true}
batch_sizes: [1]
threads: 1
latency_measurable_off_device: false
gate: {max_drop: 50.0}
"""


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("compile")
    config = yaml.safe_load(yaml.safe_dump(TINY_CONFIG))
    config["targets"] = ["x86-cpu", "intel-cpu", "jetson-orin", "boards/my-board.yaml"]
    (folder / "boards").mkdir()
    (folder / "boards" / "my-board.yaml").write_text(MY_BOARD)  # a user's own profile, relative to the config
    (folder / "tiny.yaml").write_text(yaml.safe_dump(config))
    result = run_cli("run", str(folder / "tiny.yaml"), "--out", str(folder / "run"), "--only", "teachers",
                     "--only", "distill", "--only", "export", "--only", "quantize", "--only", "compile")
    assert result.returncode == 0, result.stderr[-2000:]
    return folder / "run"


def _compile_metrics(run_dir):
    return json.loads((run_dir / "manifest.json").read_text())["stages"]["compile"]["metrics"]


def test_every_candidate_has_a_verdict_and_the_shipped_one_is_not_slower_than_fp32(run_dir):
    targets = _compile_metrics(run_dir)["targets"]
    names = [c["name"] for c in targets["intel-cpu"]["candidates"]]
    assert names[:2] == ["fp32", "bf16"] and names[2].startswith("int8") and len(names) == 3
    for name in ("x86-cpu", "intel-cpu"):
        rows = targets[name]["candidates"]
        chosen = next(r for r in rows if r["verdict"].startswith("chosen"))
        fp32 = next(r for r in rows if r["name"] == "fp32")
        assert chosen["name"] == targets[name]["chosen"] and chosen["p50_ms"] <= fp32["p50_ms"]
        assert all(r["verdict"] for r in rows) and all("val_top1" in r for r in rows)
        assert next(r for r in rows if r["name"] == "fp32")["val_agreement"] >= 0.99  # ONNX fp32 = the student


def test_bundle_manifest_says_why_each_other_candidate_lost(run_dir):
    manifest = verify_bundle(run_dir / "bundle" / "intel-cpu")
    selection = manifest["selection"]
    assert [s["name"] for s in selection][:2] == ["fp32", "bf16"] and selection[2]["precision"] == "int8"
    assert sum(s["verdict"].startswith("chosen") for s in selection) == 1
    config = manifest["runtime_options"]["config"]
    assert config["PERFORMANCE_HINT"] == "LATENCY" and config["INFERENCE_PRECISION_HINT"]
    assert manifest["input"]["name"] == "input" and manifest["labels"] and manifest["library_versions"]["openvino"]
    if manifest["artifact"]["precision"] == "int8":
        assert manifest["quantization"]["recipe"]["name"] == "openvino-nncf"


def test_tensorrt_bundle_is_ready_to_build_on_the_device(run_dir):
    import onnx

    bundle = run_dir / "bundle" / "jetson-orin"
    manifest = verify_bundle(bundle)
    assert manifest["rebuild_on_device"] is True and manifest["artifact"]["precision"] == "int8"
    assert {"model.onnx", "build_settings.json", "build_engine.sh"} <= {f["path"] for f in manifest["files"]}
    assert manifest["selection"][0]["verdict"].startswith("chosen (first in profile order")
    model = onnx.load(str(bundle / "model.onnx"))
    assert any(n.op_type == "QuantizeLinear" for n in model.graph.node)  # explicit quantization
    int32 = {i.name for i in model.graph.initializer if i.data_type == onnx.TensorProto.INT32}
    assert not [n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in int32]


def test_exported_onnx_carries_preprocessing_labels_and_source_hashes(run_dir):
    from edgekd.core.fileio import sha256_of
    from edgekd.train.onnx_export import read_metadata

    meta = read_metadata(run_dir / "03-export" / "student-fp32.onnx")
    assert meta["preprocessing"]["layout"] == "NCHW" and len(meta["preprocessing"]["mean"]) == 1
    assert meta["labels"] == [str(i) for i in range(10)] and meta["edgekd_version"]
    assert meta["source_sha256"]["student.pt"] == sha256_of(run_dir / "02-distill" / "student.pt")
    assert meta["config_digest"] and meta["dataset_fingerprint"]
    export = json.loads((run_dir / "manifest.json").read_text())["stages"]["export"]["metrics"]
    assert export["parity"]["top1_agreement"] >= 0.99 and export["opset"] >= 17


def test_users_own_profile_gets_a_bundle_with_its_recipe(run_dir):
    manifest = verify_bundle(run_dir / "bundle" / "my-board")
    assert manifest["profile"]["name"] == "my-board" and manifest["profile"]["threads"] == 1
    assert manifest["artifact"]["precision"] == "int8"  # first in its profile order, within its gate
    assert manifest["quantization"]["recipe"]["name"] == "my-u8s8" and manifest["quantization"]["recipe"]["reduce_range"]


def test_a_profile_file_named_as_another_target_is_refused(tmp_path):
    """A trial: targets [x86-cpu, prof/samename.yaml] (a profile file whose name is x86-cpu) ran, and one bundle
    silently replaced the other."""
    import shutil

    from edgekd.core.errors import TargetError
    from edgekd.core.resources import builtin_dir
    from edgekd.pipeline.stages.compile import CompileStage

    shutil.copyfile(builtin_dir("targets") / "x86-cpu.yaml", tmp_path / "mine.yaml")
    config = SimpleNamespace(targets=["x86-cpu", "mine.yaml"], quantize=SimpleNamespace(method="ptq"))
    with pytest.raises(TargetError, match=r"targets\[1\] 'mine.yaml': its profile is named 'x86-cpu', as targets\[0\] is"):
        CompileStage.check(config, tmp_path)
