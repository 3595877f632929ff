"""Image files are decoded at their depth (issue 32, item 3): a 16-bit PNG gives the tensor its 8-bit twin gives, where
Pillow's convert() used to clip every value above 255; and a file whose header claims a huge size is one line naming
it (item 5), not Pillow's DecompressionBombError escaping as an internal error."""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgekd.core.errors import DataError
from edgekd.data.images import Preprocess
from edgekd.data.sources import load_raw


def write_png(path: Path, pixels: np.ndarray, bit_depth: int = 16, size: tuple[int, int] | None = None) -> Path:
    """A PNG written by hand: 16-bit colour (Pillow cannot write it), or only a header claiming `size` (width, height)
    over a few bytes of pixels, the cheap way to make a decompression bomb."""
    color_type = 2 if pixels.ndim == 3 else 0
    height, width = pixels.shape[:2]
    rows = b"".join(b"\x00" + pixels[i].astype(">u2" if bit_depth == 16 else "u1").tobytes() for i in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    width, height = size or (width, height)
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
    return path


def bomb(path: Path) -> Path:
    """A PNG whose header says 20000x20000 (400 million pixels, over Pillow's limit), a few hundred bytes on disk."""
    return write_png(path, np.zeros((2, 2), np.uint8), bit_depth=8, size=(20000, 20000))


def _grey(seed: int = 0, shape=(24, 31)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape).astype(np.uint8)


STEPS = [{}, {"resize": 12, "center_crop": 10}, {"square": 16}]


@pytest.mark.parametrize("color", ["rgb", "bgr", "gray", "gray3"])
@pytest.mark.parametrize("steps", STEPS)
def test_a_16_bit_grey_png_decodes_as_its_8_bit_twin(tmp_path, color, steps):
    pixels = _grey()
    eight = tmp_path / "8.png"
    Image.fromarray(pixels, mode="L").save(eight)
    sixteen = tmp_path / "16.png"
    Image.fromarray(pixels.astype(np.uint16) * 257).save(sixteen)  # 257 * v / 65535 == v / 255 exactly
    assert Image.open(sixteen).mode == "I;16"
    preprocess = Preprocess(color=color, mean=(0.5,) * (1 if color == "gray" else 3), std=(0.25,) * (1 if color == "gray" else 3),
                            **steps)
    a, b = preprocess.load(eight), preprocess.load(sixteen)
    assert a.shape == b.shape and a.dtype == b.dtype == np.float32
    # Unresized, identical; resized, Pillow's 8-bit resampling (fixed-point weights, rounded to whole levels) is within
    # one level of the 16-bit one (/ std 0.25), and equal on average.
    np.testing.assert_allclose(b, a, atol=1e-6 if not steps else 1 / 255 / 0.25)
    assert abs(float(b.mean() - a.mean())) < 0.25 / 255 / 0.25  # a quarter of a level on average


@pytest.mark.parametrize("mode", ["I;16B", "I"])
def test_other_16_bit_modes_are_scaled_by_65535(tmp_path, mode):
    """Big-endian 16-bit and Pillow's 32-bit integer mode (how it may open a 16-bit file) hold 0..65535 too."""
    pixels = _grey(1)
    Image.fromarray(pixels, mode="L").save(tmp_path / "8.png")
    deep = Image.fromarray(pixels.astype(np.int32) * 257).convert(mode)
    deep.save(tmp_path / "16.tif")  # PNG cannot hold these modes; the decoder is the same function
    assert Image.open(tmp_path / "16.tif").mode == mode
    preprocess = Preprocess(color="gray")
    np.testing.assert_allclose(preprocess.load(tmp_path / "16.tif"), preprocess.load(tmp_path / "8.png"), atol=1e-6)


def test_a_16_bit_colour_png_decodes_as_its_8_bit_twin(tmp_path):
    rgb = np.stack([_grey(2), _grey(3), _grey(4)], axis=2)
    Image.fromarray(rgb, mode="RGB").save(tmp_path / "8.png")
    write_png(tmp_path / "16.png", rgb.astype(np.uint16) * 257)
    preprocess = Preprocess(color="rgb")
    np.testing.assert_allclose(preprocess.load(tmp_path / "16.png"), preprocess.load(tmp_path / "8.png"), atol=1e-6)


def test_the_16_bit_tensor_is_not_clipped(tmp_path):
    """The old decoding clipped at 255 of 65535: nearly every pixel became 1.0."""
    Image.fromarray(np.full((8, 8), 32768, np.uint16)).save(tmp_path / "half.png")
    x = Preprocess(color="gray").load(tmp_path / "half.png")
    np.testing.assert_allclose(x, 32768 / 65535, atol=1e-6)


def test_an_oversized_image_is_one_line_naming_the_file(tmp_path):
    big = bomb(tmp_path / "big.png")
    with pytest.raises(DataError, match=rf"^{big}: Image size \(400000000 pixels\) exceeds limit .*decompression bomb"):
        Preprocess().load(big)
    folder = tmp_path / "images" / "cat"
    folder.mkdir(parents=True)
    Image.fromarray(_grey(), mode="L").save(folder / "a.png")
    bomb(folder / "b.png")
    with pytest.raises(DataError, match=rf"^{folder / 'b.png'}: .*decompression bomb"):
        load_raw("imagefolder", str(tmp_path / "images"), Preprocess(), None)
