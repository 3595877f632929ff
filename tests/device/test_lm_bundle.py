"""A language model's bundle written and verified (device/lm_bundle.py): sha256 of every file, no path outside the
folder, held-out blocks read without pickle and checked against the model's vocabulary and context. No model is
loaded here, so placeholder files stand in for the decoder and the tokenizer."""
from __future__ import annotations

import numpy as np
import pytest

from edgekd.core.errors import ArtifactError
from edgekd.core.fileio import read_json, sha256_of, write_json_atomic
from edgekd.device.lm_bundle import is_lm_bundle, read_eval_blocks, verify_lm_bundle, write_lm_bundle

INFO = {"task": "language-model", "target": "x86-cpu", "precision": "fp32", "context": 16, "vocab_size": 50}


@pytest.fixture
def bundle(tmp_path):
    (tmp_path / "decoder.onnx").write_bytes(b"onnx bytes")
    (tmp_path / "tok.json").write_text("{}")
    blocks = np.arange(48, dtype=np.int64).reshape(3, 16)
    write_lm_bundle(tmp_path / "bundle", tmp_path / "decoder.onnx", tmp_path / "tok.json", INFO, blocks)
    return tmp_path / "bundle"


def test_written_bundles_verify_and_give_their_blocks_back(bundle):
    manifest = verify_lm_bundle(bundle)
    assert is_lm_bundle(bundle) and manifest["model"] == "model.onnx"
    assert manifest["files"] == {name: sha256_of(bundle / name) for name in ("model.onnx", "tokenizer.json", "eval_blocks.npy")}
    assert np.load(bundle / "eval_blocks.npy", allow_pickle=False).dtype == np.int32
    assert np.array_equal(read_eval_blocks(bundle, manifest), np.arange(48).reshape(3, 16))


def test_a_bundle_without_blocks_reads_none(tmp_path):
    (tmp_path / "m.onnx").write_bytes(b"x")
    (tmp_path / "t.json").write_text("{}")
    write_lm_bundle(tmp_path / "b", tmp_path / "m.onnx", tmp_path / "t.json", INFO)
    assert read_eval_blocks(tmp_path / "b", verify_lm_bundle(tmp_path / "b")) is None


def _edit(bundle, change):
    manifest = read_json(bundle / "manifest.json")
    change(manifest)
    write_json_atomic(bundle / "manifest.json", manifest)


def test_a_path_outside_the_bundle_is_refused(bundle):
    _edit(bundle, lambda m: m["files"].update({"../secret": "0" * 64}))
    with pytest.raises(ArtifactError, match="escapes the bundle folder"):
        verify_lm_bundle(bundle)


def test_files_must_map_names_to_digests(bundle):
    _edit(bundle, lambda m: m.update(files=[{"path": "model.onnx"}]))
    with pytest.raises(ArtifactError, match="'files' must map each file name to its sha256"):
        verify_lm_bundle(bundle)


@pytest.mark.parametrize("blocks, message", [
    (np.full((2, 16), 50), r"outside 0..49"),
    (np.zeros((2, 20), dtype=np.int64), "exceed the model's context 16"),
    (np.zeros((4,), dtype=np.int64), "expected"),
    (np.zeros((2, 16), dtype=np.float32), "expected"),
])
def test_blocks_that_do_not_fit_the_model_are_refused(bundle, blocks, message):
    np.save(bundle / "eval_blocks.npy", blocks, allow_pickle=False)
    _edit(bundle, lambda m: m["files"].update({"eval_blocks.npy": sha256_of(bundle / "eval_blocks.npy")}))
    with pytest.raises(ArtifactError, match=message):
        read_eval_blocks(bundle, verify_lm_bundle(bundle))


def test_other_folders_are_not_lm_bundles(tmp_path, tiny_bundle):
    assert not is_lm_bundle(tiny_bundle)  # an image bundle
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "manifest.json").write_text("{not json")
    assert not is_lm_bundle(tmp_path / "broken")
