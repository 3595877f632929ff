"""A language model's bundle is the image pipeline's (edgekd.bundle/1, device/bundle.py): sha256 of every file, no path
outside the folder, held-out blocks (eval.npz's input_ids) read without pickle and checked against the model's
vocabulary and context. Bundles written before (edgekd.lm-bundle/1) verify and read the same way through
device/lm_legacy.py. No model is loaded here, so placeholder files stand in for the decoder and the tokenizer."""
from __future__ import annotations

import numpy as np
import pytest

from edgekd.core.errors import ArtifactError
from edgekd.core.fileio import read_json, sha256_of, write_json_atomic
from edgekd.device.bench import bundle_task
from edgekd.device.bundle import sealed, verify_bundle
from edgekd.device.lm_bench import _eval_blocks
from tests.device.tiny_lm import write_lm_bundle, write_old_lm_bundle

INFO = {"task": "language-model", "target": "x86-cpu", "precision": "fp32", "context": 16, "vocab_size": 50}
BLOCKS = np.arange(48, dtype=np.int64).reshape(3, 16)


@pytest.fixture(params=["new", "old"])
def bundle(request, tmp_path):
    (tmp_path / "decoder.onnx").write_bytes(b"onnx bytes")
    (tmp_path / "tok.json").write_text("{}")
    write = write_lm_bundle if request.param == "new" else write_old_lm_bundle
    write(tmp_path / "bundle", tmp_path / "decoder.onnx", tmp_path / "tok.json", INFO, BLOCKS)
    return tmp_path / "bundle"


def test_written_bundles_verify_and_give_their_blocks_back(bundle):
    manifest = verify_bundle(bundle)
    assert bundle_task(bundle) == "language-model" and manifest["schema"] == "edgekd.bundle/1" and manifest["task_metric"] == "perplexity"
    assert manifest["artifact"] == {**manifest["artifact"], "backend": "ort", "main": "model.onnx", "files": ["model.onnx"]}
    listed = {entry["path"]: entry["sha256"] for entry in manifest["files"]}
    assert {"model.onnx", "tokenizer.json"} <= set(listed) and all(sha256_of(bundle / n) == d for n, d in listed.items())
    assert np.array_equal(_eval_blocks(bundle, manifest), BLOCKS)


def test_a_bundle_without_blocks_reads_none(tmp_path):
    (tmp_path / "m.onnx").write_bytes(b"x")
    (tmp_path / "t.json").write_text("{}")
    for write, name in ((write_lm_bundle, "new"), (write_old_lm_bundle, "old")):
        write(tmp_path / name, tmp_path / "m.onnx", tmp_path / "t.json", INFO)
        assert _eval_blocks(tmp_path / name, verify_bundle(tmp_path / name)) is None


def _edit(bundle, change):
    manifest = read_json(bundle / "manifest.json")
    change(manifest)
    # a bundle as the compile stage would have written it (sealed: device/bundle.SEAL); an old one as it was
    write_json_atomic(bundle / "manifest.json", sealed(manifest) if manifest.get("schema") else manifest)


def _list(manifest, name, digest):
    if isinstance(manifest["files"], dict):  # edgekd.lm-bundle/1
        manifest["files"][name] = digest
    else:
        manifest["files"] = [e for e in manifest["files"] if e["path"] != name] + [{"path": name, "sha256": digest}]


def test_a_path_outside_the_bundle_is_refused(bundle):
    _edit(bundle, lambda m: _list(m, "../secret", "0" * 64))
    with pytest.raises(ArtifactError, match="escapes the bundle folder"):
        verify_bundle(bundle)


def test_an_old_bundles_files_must_map_names_to_digests(tmp_path):
    (tmp_path / "m.onnx").write_bytes(b"x")
    (tmp_path / "t.json").write_text("{}")
    write_old_lm_bundle(tmp_path / "b", tmp_path / "m.onnx", tmp_path / "t.json", INFO)
    _edit(tmp_path / "b", lambda m: m.update(files=[{"path": "model.onnx"}]))
    with pytest.raises(ArtifactError, match="'files' must map each file name to its sha256"):
        verify_bundle(tmp_path / "b")


@pytest.mark.parametrize("blocks, message", [
    (np.full((2, 16), 50), r"outside 0..49"),
    (np.zeros((2, 20), dtype=np.int64), "exceed the model's context 16"),
    (np.zeros((4,), dtype=np.int64), "expected"),
    (np.zeros((2, 16), dtype=np.float32), "expected"),
])
def test_blocks_that_do_not_fit_the_model_are_refused(bundle, blocks, message):
    name = "eval_blocks.npy" if (bundle / "eval_blocks.npy").exists() else "eval.npz"
    if name == "eval.npz":
        np.savez_compressed(bundle / name, input_ids=blocks, y=blocks)
    else:
        np.save(bundle / name, blocks, allow_pickle=False)
    _edit(bundle, lambda m: _list(m, name, sha256_of(bundle / name)))
    with pytest.raises(ArtifactError, match=message):
        _eval_blocks(bundle, verify_bundle(bundle))


def test_other_folders_are_not_lm_bundles(tmp_path, tiny_bundle):
    assert bundle_task(tiny_bundle) != "language-model"  # an image bundle
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "manifest.json").write_text("{not json")
    assert bundle_task(tmp_path / "broken") is None
