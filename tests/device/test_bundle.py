"""Bundle integrity: every file the artifact loads lies inside the bundle and matches a listed sha256,
and a manifest of the wrong shape is one line, exit 2 (not a traceback that CI reads as a failed gate)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgekd.core.errors import ArtifactError
from edgekd.device.bundle import SEAL, verify_bundle
from tests.faults.helpers import assert_one_line_error, invoke

from .conftest import tiny_classifier

FAST = ("--runs", "2", "--min-seconds", "0", "--warmup-runs", "1", "--warmup-seconds", "0", "--rounds", "1",
        "--batch", "1", "--no-memory")


def _edit_manifest(bundle: Path, edit) -> None:
    """Edit manifest.json and drop its seal, as someone who knows to remove it would (or a bundle from before manifests
    were sealed): the checks below must hold without the seal."""
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest = edit(manifest) or manifest
    if isinstance(manifest, dict):
        manifest.pop(SEAL, None)
    (bundle / "manifest.json").write_text(json.dumps(manifest))


def test_a_hand_edited_gate_limit_is_refused_before_loading(tiny_bundle):
    """Loosening the gate in manifest.json (or changing its labels or preprocessing) would make the device's PASS mean
    something the build machine never checked: the seal names the file and says to copy the bundle again."""
    path = tiny_bundle / "manifest.json"
    manifest = json.loads(path.read_text())
    assert manifest[SEAL] and verify_bundle(tiny_bundle)
    manifest["gate"] = {**(manifest.get("gate") or {}), "max_drop": 50.0}
    path.write_text(json.dumps(manifest, indent=2))
    assert_one_line_error(invoke("bench", tiny_bundle, *FAST), str(path), "edited after the bundle was built",
                          "copy the whole bundle folder again", "edgekd gate REPORT")


def test_the_seal_ignores_how_the_manifest_is_indented(tiny_bundle):
    """Only the content counts: a manifest re-indented by an editor or a JSON tool with its content unchanged verifies."""
    path = tiny_bundle / "manifest.json"
    path.write_text(json.dumps(json.loads(path.read_text()), indent=None, sort_keys=True))
    assert verify_bundle(tiny_bundle)["artifact"]["main"] == "model.onnx"


def test_a_bundle_from_before_seals_still_verifies(tiny_bundle):
    _edit_manifest(tiny_bundle, lambda m: None)
    assert SEAL not in json.loads((tiny_bundle / "manifest.json").read_text())
    assert verify_bundle(tiny_bundle)["artifact"]["main"] == "model.onnx"


def test_model_dropped_from_the_hash_list_and_swapped_is_refused(tiny_bundle):
    _edit_manifest(tiny_bundle, lambda m: m.update(files=[f for f in m["files"] if f["path"] != "model.onnx"]))
    tiny_classifier(tiny_bundle / "model.onnx", seed=7)  # another valid model in its place
    assert_one_line_error(invoke("bench", tiny_bundle, *FAST), str(tiny_bundle / "manifest.json"), "'model.onnx'",
                          "not covered by the manifest's sha256 list", "bundle it again")


def test_main_pointing_outside_the_bundle_is_refused(tiny_bundle, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    tiny_classifier(elsewhere / "other.onnx", seed=7)
    _edit_manifest(tiny_bundle, lambda m: m["artifact"].update(main="../../elsewhere/other.onnx"))
    assert_one_line_error(invoke("bench", tiny_bundle, *FAST), "'../../elsewhere/other.onnx'", "escapes the bundle folder")


@pytest.mark.parametrize("name", ["/tmp/other.onnx", "sub/../../other.onnx"])
def test_artifact_files_outside_the_bundle_are_refused(tiny_bundle, name):
    _edit_manifest(tiny_bundle, lambda m: m["artifact"]["files"].append(name))
    with pytest.raises(ArtifactError, match="escapes the bundle folder"):
        verify_bundle(tiny_bundle)


def test_symlinked_model_leaving_the_bundle_is_refused(tiny_bundle, tmp_path):
    outside = tmp_path / "outside.onnx"
    outside.write_bytes((tiny_bundle / "model.onnx").read_bytes())  # same bytes: the sha256 still matches
    (tiny_bundle / "model.onnx").unlink()
    (tiny_bundle / "model.onnx").symlink_to(outside)
    with pytest.raises(ArtifactError, match="'model.onnx' escapes the bundle folder"):
        verify_bundle(tiny_bundle)


def test_a_bundle_copied_without_its_readme_still_verifies_but_an_edited_readme_does_not(tiny_bundle):
    """Trial defect (session 10): a bundle copied to the device without README.md (documentation nothing loads) was
    refused as 'missing'; an edited README is still a modified bundle."""
    readme = tiny_bundle / "README.md"
    text = readme.read_text()
    readme.unlink()
    assert verify_bundle(tiny_bundle)["artifact"]
    readme.write_text(text + "edited\n")
    with pytest.raises(ArtifactError, match="'README.md' does not match its recorded sha256"):
        verify_bundle(tiny_bundle)
    (tiny_bundle / "eval.npz").unlink()
    with pytest.raises(ArtifactError, match="'eval.npz' is listed in manifest.json but missing"):
        readme.write_text(text)
        verify_bundle(tiny_bundle)


def test_an_untouched_bundle_still_verifies(tiny_bundle):
    assert verify_bundle(tiny_bundle)["artifact"]["main"] == "model.onnx"


@pytest.mark.parametrize("edit", [lambda m: m.pop("artifact"), lambda m: [m], lambda m: m.update(artifact="model.onnx")],
                         ids=["missing-artifact", "a-list", "artifact-not-a-mapping"])
def test_malformed_manifest_is_one_line_exit_2(tiny_bundle, edit):
    _edit_manifest(tiny_bundle, edit)
    assert_one_line_error(invoke("bench", tiny_bundle, *FAST), f"{tiny_bundle}/manifest.json",
                          "not an edgekd bundle manifest (missing 'artifact'); bundle it again")


def test_manifest_files_entries_without_a_hash_are_one_line(tiny_bundle):
    _edit_manifest(tiny_bundle, lambda m: m.update(files=[{"path": "model.onnx"}]))
    assert_one_line_error(invoke("bench", tiny_bundle, *FAST), "'files' must list {path, sha256} entries")


def test_files_beside_the_model_are_hashed_checked_and_kept_by_a_rebuild(tmp_path):
    """A text model's tokenizer.json travels in the bundle: listed with its sha256, refused when edited, and still
    listed after `edgekd compile BUNDLE` rebuilds the artifact's own files."""
    import numpy as np

    from edgekd.device.bundle import rebuild_bundle, write_bundle
    from edgekd.runtimes.base import Artifact

    model_dir = tmp_path / "model"
    model_dir.mkdir()
    weight, bias = tiny_classifier(model_dir / "model.onnx")
    x = np.random.default_rng(0).normal(size=(8, 1, 8, 8)).astype(np.float32)
    reference = x.reshape(8, -1) @ weight + bias
    side = tmp_path / "tokenizer.json"
    side.write_text('{"model": "stand-in"}')
    artifact = Artifact("ort", "fp32", model_dir, "model.onnx", ["model.onnx"], runtime_options={"threads": 1})
    bundle = write_bundle(tmp_path / "bundle", artifact, x, reference.argmax(1), reference, {"target": "x86-cpu"},
                          extra_files={"tokenizer.json": side})
    listed = lambda: {f["path"] for f in json.loads((bundle / "manifest.json").read_text())["files"]}  # noqa: E731
    assert "tokenizer.json" in listed()
    rebuild_bundle(bundle)
    assert "tokenizer.json" in listed() and listed() >= {"model.onnx", "eval.npz", "README.md"}
    verify_bundle(bundle)
    (bundle / "tokenizer.json").write_text('{"model": "edited"}')
    with pytest.raises(ArtifactError, match="tokenizer.json"):
        verify_bundle(bundle)


def test_images_on_a_device_without_pillow_is_one_line(tiny_bundle, tmp_path):
    """A device install (edgekd, numpy, onnxruntime) has no Pillow: --images said "internal error: ModuleNotFoundError".
    Trial defect (session 13): a bundle built from arrays was told to install Pillow first, and only then that it takes
    no image files."""
    import json
    import shutil
    import subprocess
    import sys

    from edgekd.device.bundle import sealed
    from tests.blocking import BLOCK_TORCH
    from tests.faults.helpers import subprocess_env

    without_pillow = BLOCK_TORCH.replace('("torch", "transformers")', '("torch", "transformers", "PIL")')
    assert without_pillow != BLOCK_TORCH
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.png").write_bytes(b"not decoded: refused before")

    def bench_images(bundle):
        return subprocess.run([sys.executable, "-c", without_pillow + "\nfrom edgekd.cli import main\nmain(sys.argv[1:])",
                               "bench", str(bundle), "--images", str(tmp_path / "photos"), *FAST], capture_output=True,
                              text=True, env=subprocess_env(), timeout=300)

    assert_one_line_error(bench_images(tiny_bundle), "built from arrays, not image files", "leave out --images")
    images = shutil.copytree(tiny_bundle, tmp_path / "images")
    manifest = json.loads((images / "manifest.json").read_text())
    manifest["preprocessing"] = {"mean": [0.5], "std": [0.5], "image": {"color": "gray", "resize_shorter_side": 8, "center_crop": 8}}
    (images / "manifest.json").write_text(json.dumps(sealed({k: v for k, v in manifest.items() if k != "manifest_sha256"})))
    assert_one_line_error(bench_images(images), "--images", "needs Pillow", "pip install pillow")


def test_bench_out_never_replaces_a_users_own_report_or_writes_into_the_bundle(tiny_bundle, tmp_path):
    """--out into a folder of the user's (their own report.md) replaced it without a word, and --out BUNDLE wrote the
    reports among the model's files; a folder of an earlier bench's reports is still rewritten, as a rerun expects."""
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "report.md").write_text("my own notes")
    assert_one_line_error(invoke("bench", tiny_bundle, *FAST, "--out", notes), f"--out {notes}", "report.md",
                          "an edgekd bench did not write", "give a new or empty folder")
    assert (notes / "report.md").read_text() == "my own notes" and not (notes / "report.json").exists()
    assert_one_line_error(invoke("bench", tiny_bundle, *FAST, "--out", tiny_bundle), "is a bundle folder", "-report")
    assert not (tiny_bundle / "report.json").exists()
    again = tmp_path / "device"
    for _ in range(2):
        done = invoke("bench", tiny_bundle, *FAST, "--out", again)
        assert done.exit_code == 0, done.output
    assert json.loads((again / "report.json").read_text())["schema"] == "edgekd.report/1"


def test_more_threads_than_cores_is_a_host_warning(tiny_bundle):
    """--threads 64 on a 2-core machine: host_warnings was [] (it read the profile's threads), and the only hint was
    "the machine was noisy", which blames the machine for the flag."""
    import os

    from edgekd import api

    many = 8 * (os.cpu_count() or 1)
    report = api.bench(tiny_bundle, threads=many, runs=2, min_seconds=0, warmup_runs=1, warmup_seconds=0, rounds=1, memory=False)
    assert any(f"--threads asks for {many} threads" in warning for warning in report["host_warnings"]), report["host_warnings"]


def test_the_api_gates_what_its_bench_returns_and_writes_where_out_says(tiny_bundle, tmp_path):
    """api.gate(api.bench(...)) raised a raw TypeError, and api.bench had no `out` though the CLI has --out."""
    from edgekd import api
    from edgekd.core.errors import ConfigError

    report = api.bench(tiny_bundle, runs=2, min_seconds=0, warmup_runs=1, warmup_seconds=0, rounds=1, memory=False,
                       out=tmp_path / "device")
    written = json.loads((tmp_path / "device" / "report.json").read_text())
    assert written["rows"][0]["top1"] == report["rows"][0]["top1"] and (tmp_path / "device" / "report.html").is_file()
    from_dict, from_file = api.gate(report), api.gate(tmp_path / "device" / "report.json")
    assert from_dict.passed == from_file.passed and from_dict.summary == from_file.summary
    with pytest.raises(ConfigError, match="report must be a report.json path or the dict bench"):
        api.gate(42)


def test_bench_json_never_replaces_a_file_that_is_not_a_report(tiny_bundle, tmp_path):
    """--json FILE replaced whatever FILE was: the --texts file being read, or the bundle's own manifest.json."""
    before = (tiny_bundle / "manifest.json").read_bytes()
    assert_one_line_error(invoke("bench", tiny_bundle, *FAST, "--json", tiny_bundle / "manifest.json"),
                          "manifest.json: exists and is not an edgekd report", "give a new file name")
    assert (tiny_bundle / "manifest.json").read_bytes() == before
    texts = tmp_path / "texts.jsonl"
    texts.write_text('{"text": "a", "label": "b"}\n')
    assert_one_line_error(invoke("bench", tiny_bundle, *FAST, "--texts", texts, "--json", texts), "--json", "is --texts")
    report = tmp_path / "r.json"
    for _ in range(2):  # an earlier report is replaced, as a rerun expects
        done = invoke("bench", tiny_bundle, *FAST, "--json", report)
        assert done.exit_code == 0, done.output


def test_two_bundles_of_one_target_get_a_row_each_timed_on_its_own(tmp_path):
    """A run folder holding a copy of a target's bundle beside it (bundle/x86-cpu and bundle/x86-cpu-old): both rows
    were named x86-cpu/fp32, and one name keyed both latencies and verdicts (one bundle's timing shown for both)."""
    import shutil

    from edgekd.device.bench import bench_bundles
    from edgekd.device.latency import LatencySpec

    from .conftest import make_bundle

    source = make_bundle(tmp_path / "built")
    for name in ("x86-cpu", "x86-cpu-old"):
        shutil.copytree(source, tmp_path / "run" / "bundle" / name)
    report = bench_bundles(tmp_path / "run", LatencySpec(warmup_runs=1, warmup_seconds=0, runs=5, min_seconds=0, rounds=2), memory=False)
    rows = {row["artifact"]: row for row in report["rows"]}
    assert set(rows) == {"x86-cpu/fp32", "x86-cpu-old/fp32"}
    assert rows["x86-cpu/fp32"]["latency"]["batch1"] is not rows["x86-cpu-old/fp32"]["latency"]["batch1"]
    assert all(row["latency"]["batch1"]["p50_ms"] > 0 for row in rows.values())


def test_bench_of_a_runs_bundle_folder_benches_its_bundles(tmp_path):
    """Trial defect (session 11): `edgekd bench RUN/bundle`, the obvious folder to give, was refused: no bundle here."""
    import shutil

    from edgekd.device.bench import bundle_paths

    from .conftest import make_bundle

    source = make_bundle(tmp_path / "built")
    for name in ("x86-cpu", "intel-cpu"):
        shutil.copytree(source, tmp_path / "run" / "bundle" / name)
    assert [p.name for p in bundle_paths(tmp_path / "run" / "bundle")] == ["intel-cpu", "x86-cpu"]
    # Trial defect (session 13): that folder copied to the device as ~/models was refused as holding no bundle.
    shutil.copytree(tmp_path / "run" / "bundle", tmp_path / "models")
    assert [p.name for p in bundle_paths(tmp_path / "models")] == ["intel-cpu", "x86-cpu"]


def test_a_bundle_carrying_its_fp32_model_shows_its_speedup_on_the_device(tmp_path):
    """Trial defect (session 13): gate.min_speedup (a profile's, carried in the bundle) failed every int8 bundle's
    device report with "no fp32 latency ...; bench fp32 too", which a bundle holding one model cannot do. A bundle whose
    gate asks a speed-up now carries the fp32 model, timed beside the shipped one and never gated itself."""
    import numpy as np

    from edgekd import api
    from edgekd.device.bundle import SPEED_REFERENCE, SPEED_REFERENCE_FOLDER, write_bundle
    from edgekd.runtimes.base import Artifact

    from .conftest import tiny_classifier

    for name in ("int8", "fp32"):
        (tmp_path / name).mkdir()
        tiny_classifier(tmp_path / name / "model.onnx")
    x = np.random.default_rng(0).normal(size=(32, 1, 8, 8)).astype(np.float32)
    shipped = Artifact("ort", "int8", tmp_path / "int8", "model.onnx", ["model.onnx"], runtime_options={"threads": 1})
    fp32 = Artifact("ort", "fp32", tmp_path / "fp32", "model.onnx", ["model.onnx"], runtime_options={"threads": 1})
    info = {"target": "x86-cpu", "run": "tiny", "gate": {"max_drop": 100, "min_speedup": 0.01},
            SPEED_REFERENCE: {**fp32.to_json(), "folder": SPEED_REFERENCE_FOLDER}}
    bundle = write_bundle(tmp_path / "bundle" / "x86-cpu", shipped, x, np.zeros(32, np.int64), np.zeros((32, 10), np.float32),
                          info, extra_files={f"{SPEED_REFERENCE_FOLDER}/model.onnx": fp32.root / "model.onnx"})
    report = api.bench(bundle, runs=2, min_seconds=0, warmup_runs=0, warmup_seconds=0, rounds=1, memory=False, batch_sizes=[1])
    rows = {row["artifact"]: row for row in report["rows"]}
    assert rows["x86-cpu/int8"]["shipped"] and not rows["x86-cpu/fp32"]["shipped"]
    checks = api.gate(report)
    speedup = next(c for c in checks if c.threshold == "min_speedup")
    assert speedup.artifact == "x86-cpu/int8" and speedup.passed and "over fp32" in speedup.reason
    assert all(c.artifact == "x86-cpu/int8" for c in checks)

    # Review (session 13): `edgekd compile --target` gave the shipped model the new profile's threads and left the fp32
    # reference at the old ones, so the speed-up compared two thread counts.
    from edgekd.core.resources import builtin_dir
    from edgekd.device.bundle import load_bundle

    profile = tmp_path / "three.yaml"
    profile.write_text((builtin_dir("targets") / "x86-cpu.yaml").read_text(encoding="utf-8").replace(
        "name: x86-cpu", "name: three").replace("threads: 2", "threads: 3"), encoding="utf-8")
    assert "threads: 3" in profile.read_text()
    api.compile(bundle, str(profile))
    manifest, artifact = load_bundle(bundle)
    assert artifact.runtime_options["threads"] == manifest[SPEED_REFERENCE]["runtime_options"]["threads"] == 3
    (bundle / SPEED_REFERENCE_FOLDER / "model.onnx").write_bytes(b"tampered")
    with pytest.raises(ArtifactError, match="fp32-reference/model.onnx"):
        api.bench(bundle, runs=2, min_seconds=0, warmup_runs=0, warmup_seconds=0, rounds=1, memory=False)
