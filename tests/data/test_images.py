"""Image folders decoded on demand: shapes from the preprocessing steps, memory of a batch, errors that name the file."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from edgekd.core.errors import ConfigError, DataError
from edgekd.data import load_dataset
from edgekd.data.config import DataConfig
from edgekd.data.images import LazyImages, Preprocess


def _folder(root, sizes=((40, 30),), per_class=4, mode="RGB"):
    for label in ("a", "b"):
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            width, height = sizes[i % len(sizes)]
            value = (i * 30 + (label == "b") * 100) % 256
            Image.new(mode, (width, height), value if mode == "L" else (value, 255 - value, 7)).save(root / label / f"{i}.png")
    return root


def test_resize_keeps_the_aspect_ratio_then_crops_the_centre(tmp_path):
    file = _folder(tmp_path) / "a" / "0.png"
    x = Preprocess(resize=20, center_crop=16).load(file)
    assert x.shape == (3, 16, 16) and x.dtype == np.float32
    # 40x30 -> shorter side 20 -> 27x20 (aspect kept), then the centre 16x16
    assert Preprocess(resize=20).load(file).shape == (3, 20, 27)


def test_color_modes_and_normalisation(tmp_path):
    file = _folder(tmp_path, mode="L") / "b" / "1.png"
    gray = Preprocess(color="gray").load(file)
    assert gray.shape == (1, 30, 40) and np.allclose(gray, 130 / 255)
    three = Preprocess(color="gray3", mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)).load(file)
    assert three.shape == (3, 30, 40) and np.allclose(three, (130 / 255 - 0.5) / 0.25)
    rgb, bgr = Preprocess().load(tmp_path / "a" / "0.png"), Preprocess(color="bgr").load(tmp_path / "a" / "0.png")
    assert np.array_equal(rgb[::-1], bgr)


def test_only_the_indexed_files_are_decoded(tmp_path, monkeypatch):
    files = sorted(_folder(tmp_path, per_class=10).rglob("*.png"))
    decoded = []
    original = Preprocess.load
    monkeypatch.setattr(Preprocess, "load", lambda self, f: decoded.append(f) or original(self, f))
    images = LazyImages(files, Preprocess(resize=8, center_crop=8), sample_shape=(3, 8, 8))
    assert images.shape == (20, 3, 8, 8) and not decoded
    batch = images[2:5]
    assert batch.shape == (3, 3, 8, 8) and sorted(decoded) == sorted(files[2:5])
    picked = images.subset([7, 1])
    assert len(picked) == 2 and len(decoded) == 3  # a subset is still lazy
    assert np.array_equal(picked[:], np.stack([images[7], images[1]]))


def test_lazy_dataset_matches_the_decoded_one(tmp_path):
    _folder(tmp_path, per_class=12)
    cfg = DataConfig(source="imagefolder", path=str(tmp_path), resize=12, center_crop=10, color="rgb")
    lazy, eager = load_dataset(cfg, seed=0, lazy=True), load_dataset(cfg, seed=0)
    assert isinstance(lazy.val.x, LazyImages) and isinstance(eager.val.x, np.ndarray)
    assert np.allclose(lazy.val.x[:], eager.val.x) and np.array_equal(lazy.val.y, eager.val.y)
    assert lazy.input_shape == (3, 10, 10) and lazy.fingerprint != ""
    assert lazy.preprocessing()["image"] == {"color": "rgb", "resize_shorter_side": 12, "center_crop": 10,
                                             "resize_square": None, "interpolation": "bilinear (Pillow)"}


def test_images_of_several_sizes_need_a_crop(tmp_path):
    _folder(tmp_path, sizes=((40, 30), (30, 40)))
    with pytest.raises(DataError, match="different sizes.*data.resize and data.center_crop"):
        load_dataset(DataConfig(source="imagefolder", path=str(tmp_path)), seed=0)
    data = load_dataset(DataConfig(source="imagefolder", path=str(tmp_path), resize=16, center_crop=16), seed=0, lazy=True)
    assert data.test.x[:].shape[1:] == (3, 16, 16)


def test_image_steps_on_another_source_are_refused():
    from edgekd.pipeline.config import validate_config

    with pytest.raises(ConfigError, match="data.resize: applies to image files"):
        validate_config({"data": {"source": "digits", "resize": 32}, "student": {"onnx": "m.onnx"}})


def test_a_bundle_manifest_decodes_files_exactly_as_the_build_machine(tmp_path):
    """The device's decoder is built from the manifest's preprocessing alone and gives the pipeline's very arrays."""
    _folder(tmp_path, sizes=((40, 30), (30, 40)), per_class=6)
    cfg = DataConfig(source="imagefolder", path=str(tmp_path), resize=14, center_crop=12, color="bgr",
                     normalize={"mean": [0.4, 0.5, 0.6], "std": [0.2, 0.25, 0.3]})
    data = load_dataset(cfg, seed=0, lazy=True)
    recorded = data.preprocessing()
    assert recorded["mean"] == pytest.approx([0.4, 0.5, 0.6]) and recorded["std"] == pytest.approx([0.2, 0.25, 0.3])
    assert recorded["image"]["color"] == "bgr" and recorded["input_shape"] == [3, 12, 12]
    device = Preprocess.from_manifest(recorded, "manifest.json")
    assert np.array_equal(LazyImages(data.test.x.files, device)[:], data.test.x[:])


def test_a_manifest_without_image_steps_is_one_line():
    with pytest.raises(DataError, match=r"manifest.json: the model was built from arrays.*leave out --images"):
        Preprocess.from_manifest({"mean": [0.5], "std": [0.5]}, "manifest.json")
    with pytest.raises(DataError, match=r"manifest.json: preprocessing is incomplete or malformed \(KeyError"):
        Preprocess.from_manifest({"image": {"color": "rgb"}, "mean": [0.5, 0.5, 0.5]}, "manifest.json")


def test_a_folder_of_images_without_class_folders_is_unlabeled(tmp_path):
    _folder(tmp_path / "nested", per_class=5)  # images two levels down: still no class folders at the top
    for file in (tmp_path / "nested").rglob("*.png"):
        file.rename(tmp_path / f"{file.parent.name}-{file.name}")
    data = load_dataset(DataConfig(source="imagefolder", path=str(tmp_path)), seed=0, lazy=True)
    assert not data.labeled and data.classes == [] and (data.val.y == -1).all()
    assert len(data.train) + len(data.val) + len(data.test) == 10


def test_an_npz_without_labels_is_unlabeled(tmp_path):
    np.savez(tmp_path / "x.npz", x=np.random.default_rng(0).random((20, 1, 4, 4), dtype=np.float32))
    data = load_dataset(DataConfig(source="npz", path=str(tmp_path / "x.npz")), seed=0)
    assert not data.labeled and data.num_classes == 0 and len(data.test) == 4
    np.savez(tmp_path / "xy.npz", x=np.zeros((20, 1, 4, 4), np.float32), y=np.arange(20) % 2)
    ignored = load_dataset(DataConfig(source="npz", path=str(tmp_path / "xy.npz"), labels="none"), seed=0)
    assert not ignored.labeled and (ignored.val.y == -1).all()


def test_labels_none_reads_class_folders_as_plain_folders(tmp_path):
    _folder(tmp_path, per_class=5)
    data = load_dataset(DataConfig(source="imagefolder", path=str(tmp_path), labels="none"), seed=0, lazy=True)
    assert not data.labeled and len(data.train) + len(data.val) + len(data.test) == 10


def test_labels_none_applies_to_files_only():
    from edgekd.pipeline.config import validate_config

    with pytest.raises(ConfigError, match="data.labels: none applies to data.source imagefolder or npz, not to 'digits'"):
        validate_config({"data": {"source": "digits", "labels": "none"}, "student": {"onnx": "m.onnx"}})
