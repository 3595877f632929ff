"""Image files through the commands that decode them (issue 32). A PNG whose header claims 20000x20000 pixels (item 5)
is one line naming the file, exit 2, in `edgekd ship`, `edgekd run` with data.resize, and `edgekd bench --images`: it
used to be Pillow's DecompressionBombError as an internal error (exit 3) without the file's name. And `edgekd bench
--images` scores a folder of 16-bit PNG files as their 8-bit twins (item 3)."""
from __future__ import annotations

import json

import numpy as np
import yaml
from PIL import Image

from edgekd.device.bundle import write_bundle
from edgekd.runtimes.base import Artifact
from tests.data.test_image_depth import bomb
from tests.device.conftest import tiny_classifier

from .helpers import assert_one_line_error, invoke


def _folder_with_a_bomb(root):
    """Two class folders of 8x8 grey PNG files, one of which claims 20000x20000."""
    rng = np.random.default_rng(0)
    for label in ("0", "1"):
        (root / label).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(rng.integers(0, 256, (8, 8)).astype(np.uint8), mode="L").save(root / label / f"{i}.png")
    return bomb(root / "1" / "huge.png")


def test_ship_names_the_oversized_file(tmp_path):
    huge = _folder_with_a_bomb(tmp_path / "images")
    tiny_classifier(tmp_path / "model.onnx")
    result = invoke("ship", str(tmp_path / "model.onnx"), "--data", str(tmp_path / "images"), "--out", str(tmp_path / "run"))
    assert_one_line_error(result, f"{huge}: Image size (400000000 pixels) exceeds limit", "decompression bomb",
                          "remove it or shrink it")


def test_run_with_resize_names_the_oversized_file(tmp_path):
    huge = _folder_with_a_bomb(tmp_path / "images")
    tiny_classifier(tmp_path / "model.onnx")
    config = tmp_path / "ship.yaml"
    config.write_text(yaml.safe_dump({"name": "big", "student": {"onnx": "model.onnx"}, "targets": ["x86-cpu"],
                                      "data": {"source": "imagefolder", "path": "images", "resize": 8, "center_crop": 8,
                                               "color": "gray"}}))
    assert_one_line_error(invoke("run", str(config), "--out", str(tmp_path / "run")), f"{huge}: Image size", "decompression bomb")


def _image_bundle(tmp_path):
    """A tiny fp32 bundle (8x8 grey inputs, labels 0..9) whose manifest records image decoding steps."""
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    weight, bias = tiny_classifier(model_dir / "model.onnx")
    x = np.random.default_rng(1).normal(size=(16, 1, 8, 8)).astype(np.float32)
    logits = x.reshape(16, -1) @ weight + bias
    info = {"target": "x86-cpu", "run": "images", "labels": [str(i) for i in range(10)],
            "preprocessing": {"mean": [0.5], "std": [0.25], "input_shape": [1, 8, 8],
                              "image": {"color": "gray", "resize_shorter_side": None, "center_crop": None, "resize_square": None}}}
    return write_bundle(tmp_path / "bundle" / "x86-cpu", Artifact("ort", "fp32", model_dir, "model.onnx", ["model.onnx"]),
                        x, logits.argmax(1), logits, info)


BENCH = ("--runs", "2", "--min-seconds", "0", "--no-memory")


def test_bench_images_names_the_oversized_file(tmp_path):
    bundle = _image_bundle(tmp_path)
    huge = _folder_with_a_bomb(tmp_path / "images")
    result = invoke("bench", str(bundle), "--images", str(tmp_path / "images"), *BENCH)
    assert_one_line_error(result, f"{huge}: Image size (400000000 pixels) exceeds limit", "decompression bomb")


def test_bench_images_scores_16_bit_pngs_as_their_8_bit_twins(tmp_path):
    """The same 200 images at 8 and at 16 bits, labelled by what the model says on the 8-bit ones: top-1 1.0 on both."""
    from edgekd.data.images import Preprocess

    bundle = _image_bundle(tmp_path)
    weight, bias = tiny_classifier(tmp_path / "same.onnx")
    steps = Preprocess(color="gray", mean=(0.5,), std=(0.25,))
    pixels = np.random.default_rng(2).integers(0, 256, (200, 8, 8)).astype(np.uint8)
    for i, image in enumerate(pixels):
        Image.fromarray(image, mode="L").save(tmp_path / "tmp.png")
        label = str(int((steps.load(tmp_path / "tmp.png").reshape(1, -1) @ weight + bias).argmax()))
        for depth, folder in ((8, tmp_path / "eight" / label), (16, tmp_path / "sixteen" / label)):
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image if depth == 8 else image.astype(np.uint16) * 257).save(folder / f"{i}.png")
    for folder in ("eight", "sixteen"):
        result = invoke("bench", str(bundle), "--images", str(tmp_path / folder), *BENCH, "--json", str(tmp_path / f"{folder}.json"))
        assert result.exit_code == 0, result.output[-3000:]
        report = json.loads((tmp_path / f"{folder}.json").read_text())
        assert report["references"]["student_fp32"]["top1"] == 1.0, folder
