"""Device bundles as written for each target: every file hashed, eval.npz hashed, README, the
recorded session options, and `edgekd compile` refreshing an arm64 bundle's .ort file."""
from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from edgekd.cli import main as cli
from edgekd.core.errors import ArtifactError
from edgekd.core.fileio import sha256_of
from edgekd.device.bundle import verify_bundle, write_bundle
from edgekd.runtimes import get_backend, load_profile

INFO = {"target": "arm64-cpu", "edgekd_version": "test", "built_on": "test-cpu", "rebuild_on_device": False,
        "input": {"name": "input", "shape": ["batch", 1, 8, 8], "dtype": "float32"},
        "output": {"name": "logits", "shape": ["batch", 10], "dtype": "float32"},
        "preprocessing": {"layout": "NCHW", "mean": [0.3], "std": [0.2]}, "labels": [str(i) for i in range(10)]}


@pytest.fixture
def arm64_bundle(tiny_model, reference, tmp_path):
    artifact = get_backend("ort-arm64").compile(tiny_model.int8, "int8", load_profile("arm64-cpu"), tmp_path / "build",
                                                tiny_model.input_spec)
    return write_bundle(tmp_path / "bundle" / "arm64-cpu", artifact, tiny_model.eval_x[:50], tiny_model.eval_y[:50],
                        reference[:50], INFO)


def test_manifest_hashes_every_file_and_keeps_the_spec(arm64_bundle):
    manifest = verify_bundle(arm64_bundle)
    listed = {f["path"]: f for f in manifest["files"]}
    assert set(listed) == {"model.onnx", "model.ort", "eval.npz", "README.md"}
    for name, entry in listed.items():
        assert entry["sha256"] == sha256_of(arm64_bundle / name) and entry["bytes"] == (arm64_bundle / name).stat().st_size
    assert manifest["eval_set_sha256"] == listed["eval.npz"]["sha256"]
    assert manifest["input"]["shape"] == ["batch", 1, 8, 8] and manifest["labels"][9] == "9"
    options = manifest["artifact"]["runtime_options"]["session_options"]
    assert options["intra_op_num_threads"] == 4 and options["graph_optimization_level"] == "ORT_ENABLE_ALL"
    assert manifest["artifact"]["notes"]["ort_format"]["optimization_style"] == "runtime"


def test_eval_set_and_readme_are_usable_on_the_device(arm64_bundle, reference):
    with np.load(arm64_bundle / "eval.npz", allow_pickle=False) as data:
        assert data["x"].shape == (50, 1, 8, 8) and data["y"].dtype == np.int64
        np.testing.assert_array_equal(data["reference_logits"], reference[:50])
    readme = (arm64_bundle / "README.md").read_text()
    assert "edgekd bench ." in readme and "arm64-cpu" in readme


def test_edgekd_compile_rewrites_the_ort_file_and_its_hash(arm64_bundle):
    (arm64_bundle / "model.ort").unlink()
    with pytest.raises(ArtifactError, match="model.ort"):
        verify_bundle(arm64_bundle)
    result = CliRunner().invoke(cli, ["compile", str(arm64_bundle)])
    assert result.exit_code == 0, result.output
    manifest = verify_bundle(arm64_bundle)
    assert "onnxruntime" in manifest["artifact"]["notes"]["ort_format"] and manifest["rebuilt_with"]["onnxruntime"]


def test_edgekd_compile_for_another_profile_takes_its_name_and_threads(arm64_bundle, tmp_path):
    """Trial defect (session 11, carried): `edgekd compile BUNDLE --target pi5.yaml` recorded pi5's profile but kept
    arm64-cpu's name and its 4 threads, so the device ran and reported as the old target."""
    from edgekd.core.resources import builtin_dir

    profile = tmp_path / "pi5.yaml"
    text = (builtin_dir("targets") / "arm64-cpu.yaml").read_text(encoding="utf-8")
    text = text.replace("name: arm64-cpu", "name: pi5").replace("threads: 4", "threads: 2").replace("per_channel: true",
                                                                                                   "per_channel: false")
    profile.write_text(text + "gate: {max_drop: 50}\n", encoding="utf-8")
    before = verify_bundle(arm64_bundle).get("profile")
    result = CliRunner().invoke(cli, ["compile", str(arm64_bundle), "--target", str(profile)])
    assert result.exit_code == 0, result.output
    manifest = verify_bundle(arm64_bundle)
    options = manifest["artifact"]["runtime_options"]
    assert manifest["target"] == manifest["profile"]["name"] == "pi5"
    assert options["threads"] == 2 and options["session_options"]["intra_op_num_threads"] == 2
    # Trial defect (session 13): the new profile's recipe and looser gate were written in, though nothing was rebuilt
    # with them (a device gate FAIL became PASS).
    kept = {key: (before or {}).get(key) for key in ("quantization", "precisions", "gate")}
    assert {key: manifest["profile"].get(key) for key in kept} == kept and "stay those the bundle was built" in result.output


def test_rewriting_a_bundle_replaces_it_whole(arm64_bundle, tiny_model, reference, tmp_path):
    (arm64_bundle / "stale.txt").write_text("left from an older bundle")
    artifact = get_backend("ort").compile(tiny_model.fp32, "fp32", load_profile("x86-cpu"), tmp_path / "fp32",
                                          tiny_model.input_spec)
    write_bundle(arm64_bundle, artifact, tiny_model.eval_x[:10], tiny_model.eval_y[:10], reference[:10], INFO)
    assert not (arm64_bundle / "stale.txt").exists() and not (arm64_bundle / "model.ort").exists()
    assert verify_bundle(arm64_bundle)["artifact"]["precision"] == "fp32"


def test_an_openvino_artifact_retargeted_takes_the_profiles_threads_and_hints(tmp_path):
    from edgekd.runtimes.base import Artifact

    profile = load_profile("intel-cpu").model_copy(update={"threads": 3})
    artifact = Artifact("openvino", "int8", tmp_path, "model.xml", ["model.xml", "model.bin"],
                        runtime_options={"device": "CPU", "config": {"INFERENCE_NUM_THREADS": 8}, "compress_to_fp16": False})
    config = get_backend("openvino").retarget(artifact, profile).runtime_options["config"]
    assert config["INFERENCE_NUM_THREADS"] == 3 and config["PERFORMANCE_HINT"] == "LATENCY"
    assert "INFERENCE_PRECISION_HINT" in config


def test_bench_times_the_batch_sizes_of_the_bundles_profile(tiny_model, reference, tmp_path):
    """Trial defect (session 11, carried): `edgekd bench` timed batch 8 on an arm64-cpu bundle whose profile says 1 and 4."""
    from edgekd import api

    profile = load_profile("arm64-cpu")
    artifact = get_backend("ort-arm64").compile(tiny_model.int8, "int8", profile, tmp_path / "build", tiny_model.input_spec)
    arm64_bundle = write_bundle(tmp_path / "bundle" / "arm64-cpu", artifact, tiny_model.eval_x[:50], tiny_model.eval_y[:50],
                                reference[:50], {**INFO, "profile": profile.model_dump(mode="json")})
    report = api.bench(arm64_bundle, runs=2, min_seconds=0, warmup_runs=0, warmup_seconds=0, rounds=1, memory=False)
    assert report["bench"]["batch_sizes"] == [1, 4]
    assert api.bench(arm64_bundle, runs=2, min_seconds=0, warmup_runs=0, warmup_seconds=0, rounds=1, memory=False,
                     batch_sizes=[2])["bench"]["batch_sizes"] == [1, 2]


def test_the_bundle_readme_says_how_this_model_is_fed():
    """Trial defect (session 13): the README of a bundle built with data.scale none said "pixels scaled to [0, 1]", and
    a text bundle's said neither tokenizer.json nor tokenizers."""
    from edgekd.device.bundle import _device_packages, _feed_note

    as_given = {"layout": "NCHW", "scale": "none (the values as given, not divided)", "normalize": "none",
                "formula": "(x - mean[c]) / std[c]", "mean": [0.0], "std": [1.0]}
    note = _feed_note(as_given)
    assert "none (the values as given, not divided)" in note and "[0, 1]" not in note
    divided = {**as_given, "scale": "divide by 255 (pixel values in [0, 1])", "formula": "(pixel / 255 - mean[c]) / std[c]",
               "mean": [0.5], "std": [0.25]}
    assert "divide by 255" in _feed_note(divided) and "(pixel / 255 - mean[c]) / std[c]" in _feed_note(divided)
    text = {"text": {"tokenizer": "tokenizer.json", "max_length": 16, "inputs": ["input_ids", "attention_mask"]}}
    assert "`tokenizer.json`" in _feed_note(text) and "pip install tokenizers" in _feed_note(text)
    assert "input_ids and attention_mask" in _feed_note(text) and "--texts" in _feed_note(text)
    assert _device_packages("onnxruntime", text) == "onnxruntime tokenizers"
    assert _device_packages("onnxruntime", as_given) == "onnxruntime"
