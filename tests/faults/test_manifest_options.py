"""A bundle's runtime options are data from a stranger: a fixed list of keys and typed values, no paths
(issue 20, items 4 and 11)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from edgekd.core.fileio import write_json_atomic
from edgekd.device.bundle import sealed

from .helpers import assert_one_line_error, invoke


def _edited_bundle(finished_run: Path, tmp_path: Path, target: str, edit) -> Path:
    bundle = shutil.copytree(finished_run / "bundle" / target, tmp_path / target)
    manifest = json.loads((bundle / "manifest.json").read_text())
    edit(manifest["artifact"]["runtime_options"])
    write_json_atomic(bundle / "manifest.json", sealed(manifest))
    return bundle


def test_openvino_cache_dir_from_a_manifest_is_refused_and_nothing_written(tmp_path, finished_run):
    elsewhere = tmp_path / "elsewhere"
    bundle = _edited_bundle(finished_run, tmp_path, "intel-cpu",
                            lambda options: options["config"].update(CACHE_DIR=str(elsewhere)))
    before = sorted(p.name for p in bundle.iterdir())
    assert_one_line_error(invoke("bench", bundle, "--no-memory", "--runs", "1", "--min-seconds", "0"),
                          "manifest.json", "runtime_options.config.CACHE_DIR", "not an option edgekd sets for openvino")
    assert not elsewhere.exists()
    assert sorted(p.name for p in bundle.iterdir()) == before


@pytest.mark.parametrize("target, edit, fragments", [
    ("x86-cpu", lambda o: o.update(threads="two"), ["runtime_options.threads", "'two'", "integer"]),
    ("x86-cpu", lambda o: o.update(providers=["TensorrtExecutionProvider"]), ["runtime_options.providers.0"]),
    ("x86-cpu", lambda o: o["session_options"].update(optimized_model_filepath="/tmp/x.onnx"),
     ["runtime_options.session_options.optimized_model_filepath"]),
    ("intel-cpu", lambda o: o.update(device="HETERO:CPU"), ["runtime_options.device", "HETERO:CPU"]),
    ("intel-cpu", lambda o: o["config"].update(INFERENCE_NUM_THREADS="2"), ["INFERENCE_NUM_THREADS", "'2'"]),
])
def test_bad_runtime_options_are_one_line_naming_the_key(tmp_path, finished_run, target, edit, fragments):
    bundle = _edited_bundle(finished_run, tmp_path, target, edit)
    assert_one_line_error(invoke("bench", bundle, "--no-memory", "--runs", "1", "--min-seconds", "0"),
                          "manifest.json", *fragments)


def test_tensorrt_timing_cache_must_be_a_name_in_the_bundle():
    from edgekd.core.errors import ArtifactError
    from edgekd.runtimes.runtime_options import checked_runtime_options

    settings = {"input_name": "input", "input_shape": [1, 8, 8], "min_batch": 1, "opt_batch": 1, "max_batch": 8,
                "fp16": True, "int8": True, "flags": ["FP16", "INT8"]}
    assert checked_runtime_options("tensorrt", {"build_settings": settings}, "m.json")
    for bad in ("../outside.cache", "/tmp/t.cache", "a/b.cache"):
        with pytest.raises(ArtifactError, match="timing_cache"):
            checked_runtime_options("tensorrt", {"build_settings": {**settings, "timing_cache": bad}}, "m.json")
