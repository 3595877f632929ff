"""Image and npz data as new users hand it over (trial session 14): TIFF files, images one folder deeper than the
class folders, macOS's and notebooks' hidden files, zips and other files under an .npz name, sizes that data.resize
makes equal, one folder of unlabeled images, and 16-bit files that hold 8-bit values."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from PIL import Image

from edgekd.core.errors import DataError
from edgekd.data.config import DataConfig
from edgekd.data.datasets import load_dataset
from edgekd.data.sources import folder_by_labels, image_files


def _image(path, size=(8, 8), value=0, suffix=".png"):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(value)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0])).astype(np.uint8), mode="L").save(path.with_suffix(suffix))


def _class_folders(root, classes=("0", "1"), per_class=6, suffix=".png"):
    for c, name in enumerate(classes):
        for i in range(per_class):
            _image(root / name / f"img{i}", value=10 * c + i, suffix=suffix)
    return root


def _load(root, **extra):
    return load_dataset(DataConfig(source="imagefolder", path=str(root), color="gray", **extra), 0)


def _said(call):
    """`call`'s result and the warnings it gave (each as its text)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = call()
    return result, [str(w.message) for w in caught]


def test_tiff_images_are_read_and_files_of_other_suffixes_are_said(tmp_path):
    """Trial defect (session 14): .tif/.tiff files were skipped without a word (210 of 240 images read, and a class
    folder of TIFF only was "holds no image directly in it"); a file of any other suffix (.heic) was skipped silently."""
    root = _class_folders(tmp_path / "images")
    _class_folders(root, classes=("2",), suffix=".tif")
    _image(root / "1" / "scan", suffix=".tiff")
    (root / "1" / "phone.heic").write_bytes(b"\x00\x00\x00\x18ftypheic")
    dataset, said = _said(lambda: _load(root))
    assert dataset.classes == ["0", "1", "2"]
    assert sum(len(s.y) for s in (dataset.train, dataset.val, dataset.test)) == 6 + 7 + 6
    assert any("skipped 1 file(s) whose suffix is not an image's" in s and "phone.heic" in s for s in said), said
    files, said = _said(lambda: image_files(root, "--images"))
    assert len(files) == 19 and any("phone.heic" in s for s in said)
    with pytest.warns(UserWarning, match="phone.heic"):
        files, labels = folder_by_labels(root, ["0", "1", "2"], "--images")  # edgekd bench --images
    assert np.bincount(labels).tolist() == [6, 7, 6]


def test_hidden_files_and_macos_folders_are_skipped_everywhere(tmp_path):
    """Trial defect (session 14): a macOS AppleDouble ._img0.png in a class folder stopped the run ("not a readable
    image"), and unlabeled reading (--no-labels, --calibration, bench --images) walked __MACOSX/ and .ipynb_checkpoints/,
    adding their files: the README says hidden and __MACOSX folders are not read."""
    root = _class_folders(tmp_path / "images")
    (root / "1" / "._img0.png").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        ")
    (root / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (root / "0" / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0" * 8)
    _image(root / "__MACOSX" / "0" / "img0")
    _image(root / "0" / ".ipynb_checkpoints" / "img0-checkpoint")
    _image(root / "._stray")  # hidden beside the class folders: not a loose image
    dataset, said = _said(lambda: _load(root))
    assert dataset.classes == ["0", "1"] and said == []
    assert sum(len(s.y) for s in (dataset.train, dataset.val, dataset.test)) == 12
    files, said = _said(lambda: image_files(root, "quantize.calibration_images"))
    assert len(files) == 12 and said == []
    unlabeled = _load(root, labels="none")
    assert sum(len(s.y) for s in (unlabeled.train, unlabeled.val, unlabeled.test)) == 12


def test_images_in_sub_folders_of_a_class_folder_are_that_class(tmp_path):
    """Trial defect (session 14): a class folder's sub-folders were skipped silently (1/ with 2 images directly and 4
    in 1/more/ gave 2), and class folders holding only batch sub-folders (<class>/batchN/*.png) were "no images found"."""
    root = _class_folders(tmp_path / "images", per_class=2)
    _class_folders(root / "1" / "more", classes=("a", "b"), per_class=2)
    dataset = _load(root)
    assert dataset.classes == ["0", "1"]
    assert np.bincount(np.concatenate([s.y for s in (dataset.train, dataset.val, dataset.test)])).tolist() == [2, 6]
    _files, labels = folder_by_labels(root, ["0", "1"], "--images")  # edgekd bench --images reads them alike
    assert np.bincount(labels).tolist() == [2, 6]
    batches = tmp_path / "batches"
    for name in ("0-upright", "1-rot180"):
        _class_folders(batches / name, classes=("batch0", "batch1"), per_class=3)
    assert _load(batches).classes == ["0-upright", "1-rot180"]


def _npz(path):
    return load_dataset(DataConfig(source="npz", path=str(path)), 0)


def test_a_zip_of_images_under_an_npz_name_is_one_line_naming_its_members(tmp_path):
    """Trial defect (session 14): a zip of images renamed .npz (or given to data.source npz) crashed with exit 3,
    "internal error: AttributeError: 'bytes' object has no attribute 'ndim'": numpy hands non-.npy members back as bytes."""
    import shutil

    root = _class_folders(tmp_path / "images", per_class=2)
    archive = shutil.make_archive(str(tmp_path / "images"), "zip", root)
    for path in (archive, shutil.copy(archive, tmp_path / "images.npz")):
        with pytest.raises(DataError, match=r"a zip whose 4 member\(s\) 0/img0.png, 0/img1.png, 1/img0.png, \.\.\. are not "
                                            r"numpy arrays \(\.npy\), so not an \.npz; .*unzip it and give the folder"):
            _npz(path)


def test_a_path_of_the_wrong_kind_says_what_it_is_and_what_the_source_needs(tmp_path):
    """Trial defect (session 14): a PNG or a text file under an .npz name "holds an array of Python objects, which edgekd
    does not unpickle"; data.source imagefolder given an existing zip, PNG or .npz said "imagefolder not found", and
    data.source npz given a folder "npz file not found"."""
    root = _class_folders(tmp_path / "images", per_class=2)
    (tmp_path / "png.npz").write_bytes((root / "0" / "img0.png").read_bytes())
    (tmp_path / "notes.npz").write_text("x,y\n1,2\n")
    for name, kind in (("png.npz", "a PNG image"), ("notes.npz", "a text file")):
        with pytest.raises(DataError, match=rf"{name}: not an \.npz file \(numpy\.savez writes a zip of \.npy arrays\) "
                                            rf"but {kind}; save it with numpy\.savez"):
            _npz(tmp_path / name)
    with pytest.raises(DataError, match=r"'.*images': a folder, but data.source npz reads one \.npz file.*"
                                        r"set data.source: imagefolder"):
        _npz(root)
    np.savez(tmp_path / "arrays.npz", x=np.zeros((4, 8, 8)), y=np.arange(4) % 2)
    for path, fix in ((tmp_path / "arrays.npz", "set data.source: npz"), (root / "0" / "img0.png", "give the folder that holds"),
                      (tmp_path / "png.npz", "set data.source: npz")):
        with pytest.raises(DataError, match=rf"a file, but data.source imagefolder reads a folder .*{fix}"):
            _load(path)


def test_data_resize_alone_accepts_images_it_makes_the_same_size(tmp_path):
    """Trial defect (session 14): 16x16 and 32x32 images with data.resize 16 were refused ("images have different
    sizes"): the header check ignored data.resize, which scales the shorter side and so makes them alike."""
    root = _class_folders(tmp_path / "images", per_class=3)
    _image(root / "0" / "big", size=(32, 32), value=99)
    dataset = _load(root, resize=4)
    assert dataset.input_shape == (1, 4, 4)
    assert sum(len(s.y) for s in (dataset.train, dataset.val, dataset.test)) == 7
    with pytest.raises(DataError, match=r"images have different sizes: 32x32 \(1 image"):
        _load(root)  # without data.resize, still refused
    _image(root / "1" / "wide", size=(16, 8), value=98)
    with pytest.raises(DataError, match=r"different sizes \(data.resize 4 keeps each aspect ratio, so they still differ\): "
                                        r"16x8 \(1 image"):
        _load(root, resize=4)


def test_one_sub_folder_of_unlabeled_images_points_to_no_labels(tmp_path):
    """Trial defect (session 14): a folder whose only sub-folder holds the images (unl/day1/*.png) said "every image has
    label 0: ... add images of the other classes" and never named --no-labels (data.labels: none), the fix."""
    root = _class_folders(tmp_path / "unl", classes=("day1",))
    with pytest.raises(DataError, match=r"data.path '.*unl': its only sub-folder 'day1' was read as the one class of every "
                                        r"image.*add a sub-folder per class; .*--no-labels \(data.labels: none\)"):
        _load(root)
    assert _load(root, labels="none").labeled is False
    np.savez(tmp_path / "one.npz", x=np.zeros((12, 8, 8), np.uint8), y=np.zeros(12, np.int64))
    with pytest.raises(DataError, match=r"every image has label 0: .*--no-labels \(data.labels: none\)"):
        _npz(tmp_path / "one.npz")


def test_sixteen_bit_files_holding_eight_bit_values_are_warned_once(tmp_path):
    """Trial defect (session 14): 16-bit PNGs (I;16) holding values 0..255 decoded almost black (scaled by 65535, as
    their depth says) without a word, and the model's top-1 fell from 100% to 79%."""
    root = _class_folders(tmp_path / "images")
    for file in sorted((root / "0").iterdir()):
        Image.fromarray(np.asarray(Image.open(file)).astype(np.uint16)).save(file)  # uint8 values in a 16-bit file
    assert Image.open(root / "0" / "img0.png").mode.startswith("I;16")
    _dataset, said = _said(lambda: _load(root))
    eight_bit = [s for s in said if s.startswith("8-bit values in a 16-bit file")]
    assert len(eight_bit) == 1 and "6 of 6 16-bit image(s) checked" in eight_bit[0] and "img0.png" in eight_bit[0], said
    for file in sorted((root / "0").iterdir()):  # true 16-bit values: nothing to say
        Image.fromarray(np.asarray(Image.open(file)).astype(np.uint16) * 257).save(file)
    _dataset, said = _said(lambda: _load(root))
    assert not [s for s in said if "16-bit" in s]


def test_bench_images_warns_of_eight_bit_values_in_sixteen_bit_files(tmp_path):
    """Trial defect (session 14): `edgekd bench --images` on 16-bit PNGs that hold 0..255 scored them almost black,
    without a word, as the build machine did."""
    from tests.faults.helpers import invoke
    from tests.faults.test_image_files import BENCH, _image_bundle

    bundle = _image_bundle(tmp_path)
    for i in range(4):
        _image(tmp_path / "photos" / f"img{i}", value=i)
        file = tmp_path / "photos" / f"img{i}.png"
        Image.fromarray(np.asarray(Image.open(file)).astype(np.uint16)).save(file)
    result = invoke("bench", str(bundle), "--images", str(tmp_path / "photos"), *BENCH)
    assert result.exit_code == 0, result.output[-3000:]
    assert "edgekd: warning: 8-bit values in a 16-bit file: --images" in result.stderr, result.stderr[-3000:]
