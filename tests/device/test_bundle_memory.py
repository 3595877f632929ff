"""A bundle's eval.npz is written from the evaluation images as they are: float32 images are not copied first
(500 images at 3x224x224 are 300 MB, and the compile stage writes one bundle per target)."""
from __future__ import annotations

import numpy as np

from edgekd.device import bundle as bundle_module
from edgekd.device.bundle import write_bundle
from edgekd.runtimes.base import Artifact

from .conftest import tiny_classifier


def test_float32_eval_images_are_written_without_a_copy(tmp_path, monkeypatch):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    weight, bias = tiny_classifier(model_dir / "model.onnx")
    x = np.random.default_rng(0).normal(size=(8, 1, 8, 8)).astype(np.float32)
    reference = x.reshape(8, -1) @ weight + bias
    written = {}
    savez = np.savez_compressed

    def spy(path, **arrays):
        written.update(arrays)
        return savez(path, **arrays)

    monkeypatch.setattr(bundle_module.np, "savez_compressed", spy)
    artifact = Artifact("ort", "fp32", model_dir, "model.onnx", ["model.onnx"], runtime_options={"threads": 1})

    write_bundle(tmp_path / "bundle", artifact, x, reference.argmax(1), reference, {"target": "x86-cpu"})

    assert np.shares_memory(written["x"], x)
    with np.load(tmp_path / "bundle" / "eval.npz", allow_pickle=False) as saved:
        np.testing.assert_array_equal(saved["x"], x)
