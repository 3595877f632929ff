"""data.resize {height, max_width, pad: right}: images of any aspect (text lines) at a fixed height, the aspect ratio
kept, the width capped and zero-padded after normalisation, as PaddleOCR feeds its direction classifier."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from edgekd.core.errors import ConfigError
from edgekd.data import load_dataset
from edgekd.data.config import DataConfig
from edgekd.data.images import Preprocess

OCR = {"height": 48, "max_width": 192, "pad": "right"}


def _line(path, width, height, value=200):
    Image.new("RGB", (width, height), (value, value, value)).save(path)
    return path


def test_a_short_line_keeps_its_aspect_and_is_padded_with_normalised_zeros(tmp_path):
    file = _line(tmp_path / "short.png", 60, 30)  # 2:1 -> 96x48, then 96 columns of padding
    x = Preprocess(fit_height=(48, 192), mean=(0.5,) * 3, std=(0.5,) * 3).load(file)
    assert x.shape == (3, 48, 192)
    np.testing.assert_allclose(x[:, :, :96], (200 / 255 - 0.5) / 0.5, atol=1e-6)  # PaddleOCR's (x/255 - 0.5)/0.5
    assert not x[:, :, 96:].any()  # the padding is 0 of the model's input, after normalisation


def test_a_long_line_is_capped_at_max_width(tmp_path):
    file = _line(tmp_path / "long.png", 1000, 40)
    x = Preprocess(fit_height=(48, 192)).load(file)
    assert x.shape == (3, 48, 192) and np.allclose(x, 200 / 255, atol=1e-6)  # squeezed to the cap, no padding


def test_a_folder_of_lines_of_every_width_is_one_shape_and_the_manifest_records_the_recipe(tmp_path):
    for label, widths in (("0", (50, 120, 400)), ("180", (70, 90, 300))):
        (tmp_path / label).mkdir()
        for i, width in enumerate(widths):
            _line(tmp_path / label / f"{i}.png", width, 20 + 7 * i, 40 + 60 * i)
    data = load_dataset(DataConfig(source="imagefolder", path=str(tmp_path), resize=OCR, val_fraction=0.2,
                                   test_fraction=0.2, normalize={"mean": [0.5] * 3, "std": [0.5] * 3}), 0, None, lazy=True)
    assert data.input_shape == (3, 48, 192)
    steps = data.preprocessing()["image"]
    assert steps["resize_height"] == {"height": 48, "max_width": 192, "pad": "right", "pad_value": "0 after normalisation"}
    device = Preprocess.from_manifest(data.preprocessing(), "manifest.json")  # what `edgekd bench --images` decodes with
    file = tmp_path / "0" / "1.png"
    np.testing.assert_array_equal(device.load(file), data.train.x.preprocess.load(file))


@pytest.mark.parametrize("data, message", [
    ({"resize": {"height": 48}}, "max_width"),
    ({"resize": {"height": 48, "max_width": 192, "pad": "left"}}, "pad"),
    ({"resize": dict(OCR), "center_crop": 32}, "data.center_crop: not with data.resize {height, max_width}"),
    ({"resize": 2}, "give the shorter side's size in pixels"),
])
def test_a_wrong_resize_recipe_is_one_line(data, message):
    from edgekd.pipeline.config import validate_config

    with pytest.raises(ConfigError, match=message.replace("{", r"\{").replace("}", r"\}")) as error:
        validate_config({"data": {"source": "imagefolder", "path": "x", **data}, "student": {"onnx": "m.onnx"}})
    assert "\n" not in str(error.value)


def test_the_shorter_side_resize_is_unchanged(tmp_path):
    config = DataConfig(source="imagefolder", path="x", resize=20)
    assert config.resize == 20
    assert "resize_height" not in Preprocess(resize=20).to_json()
