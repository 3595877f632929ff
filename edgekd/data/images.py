"""Image folders at any size: a file is decoded only when a batch that holds it is asked for.

`LazyImages` stands where the other sources hold an (N, C, H, W) float32 array: `x[a:b]`, `x[i]` and
`x[indices]` decode just those files (Pillow, in a small thread pool: Pillow releases the GIL while it
decodes and resizes), so evaluating or calibrating on 100,000 images needs the memory of one batch.
torchvision's transforms would do the same per image but pull in torch, which the device-side and
ONNX-only paths must not need; the few steps here are Pillow's and numpy's.
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Optional

import numpy as np

from edgekd.core.errors import DataError

COLORS = ("rgb", "bgr", "gray", "gray3")


@dataclass(frozen=True)
class Preprocess:
    """From an image file to model input: color, resize (shorter side), center crop, [0, 1], (x - mean) / std."""

    color: str = "rgb"
    resize: Optional[int] = None
    center_crop: Optional[int] = None
    square: Optional[int] = None  # data.image_size: squash to a square (the older, aspect-changing option)
    fit_height: Optional[tuple[int, int]] = None  # data.resize {height, max_width}: (height, max_width), padded right
    mean: Optional[tuple[float, ...]] = None
    std: Optional[tuple[float, ...]] = None

    @property
    def channels(self) -> int:
        return 1 if self.color == "gray" else 3

    def to_json(self) -> dict:
        steps = {"color": self.color, "resize_shorter_side": self.resize, "center_crop": self.center_crop,
                 "resize_square": self.square, "interpolation": "bilinear (Pillow)"}
        if self.fit_height:  # only when used: manifests without it keep the keys they always had
            steps["resize_height"] = {"height": self.fit_height[0], "max_width": self.fit_height[1], "pad": "right",
                                      "pad_value": "0 after normalisation"}
        return steps

    @classmethod
    def from_manifest(cls, preprocessing: Any, where: str) -> Preprocess:
        """The steps a bundle's manifest.json records (`preprocessing`: `image` steps, `mean`, `std`), so a device decodes
        image files exactly as the build machine did; one line when the manifest does not record them."""
        image = preprocessing.get("image") if isinstance(preprocessing, dict) else None
        if not isinstance(image, dict) and isinstance(preprocessing, dict) and preprocessing.get("text"):
            raise DataError(f"{where}: a text model's bundle, which takes text, not images; bench it on texts with "
                            "--texts FILE (.jsonl or .csv of text,label), or on its eval.npz (leave out --images)")
        if not isinstance(image, dict) and isinstance(preprocessing, dict) and preprocessing.get("tabular"):
            raise DataError(f"{where}: a table's bundle, which takes rows of columns, not images; bench it on its eval.npz "
                            "(leave out --images), or feed rows as its README says (model_feed)")
        if not isinstance(image, dict):
            raise DataError(f"{where}: the model was built from arrays, not image files, so the manifest records no image "
                            "decoding steps (preprocessing.image); bench it on its eval.npz (leave out --images)")
        try:
            mean, std = preprocessing["mean"], preprocessing["std"]
            fit = image.get("resize_height")
            made = cls(color=image["color"], resize=image.get("resize_shorter_side"), center_crop=image.get("center_crop"),
                       square=image.get("resize_square"), mean=tuple(float(m) for m in mean), std=tuple(float(s) for s in std),
                       fit_height=(int(fit["height"]), int(fit["max_width"])) if fit is not None else None)
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{where}: preprocessing is incomplete or malformed ({type(exc).__name__}: {exc}); "
                            "bundle it again") from None
        if made.color not in COLORS or len(made.mean) != made.channels or len(made.std) != made.channels:
            raise DataError(f"{where}: preprocessing.image.color {made.color!r} with {len(made.mean)} mean values; bundle it again")
        return made

    def load(self, file: Path) -> np.ndarray:
        """(C, H, W) float32 model input for one file."""
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(file) as img:
                x = self._pixels(img)
        except Image.DecompressionBombError as exc:
            raise DataError(oversized_message(file, exc)) from None
        except (OSError, UnidentifiedImageError, ValueError) as exc:
            raise DataError(f"{file}: not a readable image ({exc}); remove or replace it") from None
        x = x[None] if x.ndim == 2 else x.transpose(2, 0, 1)
        if self.color == "gray3":
            x = np.repeat(x, 3, axis=0)
        elif self.color == "bgr":
            x = x[::-1]
        if self.mean is not None:
            x = (x - np.asarray(self.mean, np.float32)[:, None, None]) / np.asarray(self.std, np.float32)[:, None, None]
        if self.fit_height:
            x = pad_right(x, self.fit_height[1])
        return np.ascontiguousarray(x, dtype=np.float32)

    def _pixels(self, img) -> np.ndarray:
        """(H, W) or (H, W, 3) float32 pixels in [0, 1], resized and cropped. 16-bit greyscale (a PNG's I;16 modes, or I)
        is kept at its depth: Pillow's convert("L"/"RGB") clips those values at 255 instead of scaling them. Pillow
        itself decodes 16-bit colour PNG files to 8-bit RGB (the high byte), which is scaled right already."""
        from PIL import Image, ImageOps

        img = ImageOps.exif_transpose(img)  # as viewers show it: a phone's JPEG is often stored sideways with a tag
        deep = img.mode in SIXTEEN_BIT_MODES
        if deep:  # Pillow resizes and crops 32-bit float images ("F") as it does 8-bit ones
            img = Image.fromarray(np.clip(np.asarray(img, np.float32) / 65535.0, 0.0, 1.0))  # float32: mode "F"
        else:
            img = img.convert("L" if self.color in ("gray", "gray3") else "RGB")
        if self.fit_height:
            img = resize_to_height(img, *self.fit_height)
        if self.square:
            img = img.resize((self.square, self.square), Image.BILINEAR)
        if self.resize:
            img = img.resize(shorter_side_resized(img.size, self.resize), Image.BILINEAR)
        if self.center_crop:
            img = _center_crop(img, self.center_crop)
        if not deep:
            return np.asarray(img).astype(np.float32) / 255.0
        grey = np.asarray(img, np.float32)
        return grey if self.color in ("gray", "gray3") else np.repeat(grey[:, :, None], 3, axis=2)


# Pillow's modes for 16-bit greyscale (little-, big-, native-endian) and its 32-bit integer mode, which is how it may
# open a 16-bit PNG too: values 0..65535, scaled by 65535 (a 32-bit image beyond that range is clipped at 1).
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def shorter_side_resized(size: tuple[int, int], resize: int) -> tuple[int, int]:
    """(width, height) after data.resize: the shorter side `resize`, the aspect kept (rounded). One function for the
    decoding and for the size check of the headers (sources.py), so both agree on which images end up alike."""
    width, height = size
    scale = resize / min(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def warn_eight_bit_in_sixteen_bit(files: list[Path], where: str, sample: int = 32) -> None:
    """One warning when 16-bit greyscale files hold 8-bit values (0..255, a common export mistake: uint8 pixels saved
    from a uint16 array): scaled by 65535 as their depth says, they decode almost black, and a model scores far below
    itself with no word why (a trial: top-1 100% -> 79%). Cheap: at most `sample` files, spread over the list, are
    opened, and only the 16-bit ones among them decoded."""
    from PIL import Image

    checked = files[::max(1, len(files) // sample)][:sample]
    deep, low = 0, []
    for file in checked:
        try:
            with Image.open(file) as img:
                if img.mode not in SIXTEEN_BIT_MODES:
                    continue
                deep += 1
                if int(np.asarray(img).max(initial=0)) <= 255:
                    low.append(file)
        except (OSError, ValueError, Image.DecompressionBombError):  # a damaged or huge file is named where it is decoded
            continue
    if low:
        warnings.warn(f"8-bit values in a 16-bit file: {where}: {len(low)} of {deep} 16-bit image(s) checked (of {len(files)} "
                      f"file(s); e.g. {low[0]}) hold values 0..255 only, which scaled by 65535 as 16-bit pixels decode almost black; save "
                      "them as 8-bit images (Image.fromarray(a.astype(numpy.uint8))), or scale them to 0..65535",
                      stacklevel=2)


def oversized_message(file: Path, exc: Exception) -> str:
    """The line for a file whose header claims more pixels than Pillow decodes safely (a decompression bomb, or a damaged
    header): Pillow refuses it before decoding, and the run must name the file rather than crash."""
    found = str(exc).split(",")[0].strip().rstrip(".")  # Pillow's "Image size (N pixels) exceeds limit of M pixels"
    return f"{file}: {found}, too large to decode safely (a decompression bomb or a damaged header); remove it or shrink it"


EXIF_ORIENTATION, SWAPPED = 0x0112, (5, 6, 7, 8)  # the EXIF tag, and its values that turn the image a quarter


def shown_size(img) -> tuple[int, int]:
    """(width, height) as viewers show the image (and Preprocess.load decodes it): with an EXIF orientation that turns
    it a quarter, the stored size swapped."""
    width, height = img.size
    return (height, width) if img.getexif().get(EXIF_ORIENTATION) in SWAPPED else (width, height)


def resize_to_height(img, height: int, max_width: int):
    """PaddleOCR's text-line resize (resize_norm_img): `height` rows, the width that keeps the aspect ratio rounded up,
    at most `max_width` (a longer line is squeezed, as PaddleOCR does)."""
    from PIL import Image

    width = min(max_width, max(1, int(np.ceil(height * img.size[0] / max(1, img.size[1])))))
    return img.resize((width, height), Image.BILINEAR)


def pad_right(x: np.ndarray, width: int) -> np.ndarray:
    """(C, H, w) model input padded with zeros on the right to (C, H, width): zeros of the normalised input, as
    PaddleOCR pads after (x / 255 - 0.5) / 0.5."""
    padded = np.zeros((*x.shape[:2], width), np.float32)
    padded[:, :, :x.shape[2]] = x
    return padded


def _center_crop(img, size: int):
    width, height = img.size
    if width < size or height < size:
        raise DataError(f"data.center_crop {size}: an image is only {width}x{height}; set data.resize to at least {size}")
    left, top = int(round((width - size) / 2)), int(round((height - size) / 2))
    return img.crop((left, top, left + size, top + size))


class LazyImages:
    """An (N, C, H, W) float32 array-like over image files, decoded on indexing."""

    ndim, dtype = 4, np.dtype(np.float32)

    def __init__(self, files: list[Path], preprocess: Preprocess, sample_shape: Optional[tuple[int, ...]] = None):
        self.files, self.preprocess = list(files), preprocess
        self._sample_shape = sample_shape

    @property
    def shape(self) -> tuple[int, ...]:
        if self._sample_shape is None:
            self._sample_shape = self.preprocess.load(self.files[0]).shape
        return (len(self.files), *self._sample_shape)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            return self.preprocess.load(self.files[key])
        chosen = self.files[key] if isinstance(key, slice) else [self.files[i] for i in np.asarray(key).reshape(-1)]
        return self._decode(chosen)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        array = self._decode(self.files)
        return array if dtype is None else array.astype(dtype)

    def subset(self, indices) -> LazyImages:
        return LazyImages([self.files[i] for i in np.asarray(indices).reshape(-1)], self.preprocess, self._sample_shape)

    def normalized(self, mean, std) -> LazyImages:
        preprocess = replace(self.preprocess, mean=tuple(float(m) for m in mean), std=tuple(float(s) for s in std))
        return LazyImages(self.files, preprocess, self._sample_shape)

    def fingerprint(self) -> str:
        """Names, sizes and modification times of the files, and the preprocessing: a stand-in for the pixels."""
        listing = [(str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in self.files]
        blob = json.dumps([listing, self.preprocess.to_json(), self.preprocess.mean, self.preprocess.std])
        return hashlib.sha256(blob.encode()).hexdigest()

    def _decode(self, files: list[Path]) -> np.ndarray:
        """The batch, written image by image into one array as the workers finish (no list of copies to stack)."""
        batch = np.empty((len(files), *self.shape[1:]), np.float32)
        for i, image in enumerate(decode_pool().map(self.preprocess.load, files)):
            if image.shape != batch.shape[1:]:
                raise DataError(f"images have different sizes ({tuple(batch.shape[1:])} and {image.shape} after preprocessing, "
                                f"e.g. {files[i]}); set data.resize and data.center_crop (or data.image_size)")
            batch[i] = image
        return batch


def decode_workers() -> int:
    return max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)))


_POOL: Optional[ThreadPoolExecutor] = None


def decode_pool() -> ThreadPoolExecutor:
    """One pool of decoding threads for the process. A fresh pool per batch started new threads each time, and glibc
    gave them malloc arenas that kept freed image buffers: one 60,000-image pass peaked at 9.4 GB instead of ~200 MB.
    Long-lived threads reuse their own arena's buffers, so memory stays at a few batches whatever the folder holds."""
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=decode_workers(), thread_name_prefix="edgekd-decode")
    return _POOL


def _forget_pool_in_child() -> None:
    global _POOL
    _POOL = None  # a forked child (DataLoader workers, torchrun) has the pool object but none of its threads


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_in_child)


def channel_stats(images: LazyImages, limit: int = 2048, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std of the [0, 1] pixels over at most `limit` images drawn without replacement:
    a few thousand images pin the statistics to well under 1%, and decoding them all would not."""
    raw = LazyImages(images.files, replace(images.preprocess, mean=None, std=None), images._sample_shape)
    picked = np.sort(np.random.default_rng(seed).choice(len(raw), size=min(limit, len(raw)), replace=False))
    total = np.zeros(raw.shape[1]), np.zeros(raw.shape[1])
    for start in range(0, len(picked), 32):  # small batches: the memory of 32 images, whatever the folder holds
        batch = raw[picked[start:start + 32]]
        total = (total[0] + batch.sum(axis=(0, 2, 3), dtype=np.float64),
                 total[1] + np.square(batch).sum(axis=(0, 2, 3), dtype=np.float64))
    count = len(picked) * raw.shape[2] * raw.shape[3]
    mean = total[0] / count
    std = np.sqrt(np.maximum(total[1] / count - mean ** 2, 1e-12))
    return mean.astype(np.float32), std.astype(np.float32)
