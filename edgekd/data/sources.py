"""Raw dataset sources. Each returns RawData: images NCHW float32 in [0, 1], labels, class names,
and optionally an official test split."""
from __future__ import annotations

import gzip
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from edgekd.core.errors import DataError
from edgekd.core.fileio import read_npz, resolve_path, searched
from edgekd.core.user_code import call, is_reference
from edgekd.data.images import SIXTEEN_BIT_MODES, LazyImages, Preprocess, oversized_message, shorter_side_resized, shown_size, warn_eight_bit_in_sixteen_bit

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"]
FASHION_MNIST_INSTALL = "sudo apt-get update && sudo apt-get install -y dataset-fashion-mnist"
# What Pillow decodes that cameras, scanners and exports write. TIFF is a microscope's and a scanner's usual format:
# left out, a folder's .tif files were skipped without a word (a trial read 210 of 240 images and passed).
_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
IMAGE_SUFFIXES_SHOWN = ".png, .jpg, .jpeg, .bmp, .gif, .webp, .tif, .tiff"


@dataclass
class RawData:
    x: np.ndarray
    y: np.ndarray
    classes: list[str]
    test_x: Optional[np.ndarray] = None
    test_y: Optional[np.ndarray] = None
    # What the source's values were divided by to give x (1: taken as given), for the manifest's preprocessing, and
    # the line that says so when data.scale auto chose it (None: nothing to say).
    divisor: float = 255.0
    scale_note: Optional[str] = None

    @property
    def labeled(self) -> bool:
        """False for images without labels (a folder with no class sub-folders, an npz without y): every label is
        UNLABELED, and the pipeline judges candidates by fidelity to the fp32 model instead of accuracy."""
        return not (len(self.y) and (self.y == UNLABELED).all())


# The label of an image that has none. Never a class index, so an unlabeled image cannot count as a class.
UNLABELED = -1


def load_raw(source: str, path: Optional[str], preprocess: Preprocess, base_dir: Optional[Path],
             labeled: bool = True, scale: str = "auto") -> RawData:
    """`labeled` False (data.labels: none): an image folder's sub-folders and an npz's y are not read as labels.
    `scale` (data.scale: auto, 255 or none): what an npz's or a factory's image array is divided by (scale_array)."""
    if source == "digits":
        return _digits()
    if source == "fashion-mnist":
        return _fashion_mnist(resolve_path(path, base_dir) if path else FASHION_MNIST_DIR)
    if source == "npz":
        return _npz(data_path(source, path, base_dir), labeled, scale)
    if source == "imagefolder":
        return _imagefolder(data_path(source, path, base_dir), preprocess, labeled)
    if is_reference(source):
        return _factory(source, base_dir, scale)
    hint = "; a language model's corpus (code, folder) needs task: language-model" if source in ("code", "folder") else ""
    raise DataError(f"data.source '{source}': unknown; use digits, fashion-mnist, npz, imagefolder, csv, parquet, text or "
                    f"module:function{hint}")


def data_path(source: str, path: Optional[str], base_dir: Optional[Path]) -> Path:
    """data.path for the npz and imagefolder sources: as given, else beside the config file (as checkpoints are).
    The pipeline's preflight calls it too, so a wrong path stops the run before a run folder is made."""
    if not path:
        raise DataError(f"data.path: required for data.source '{source}'")
    found = resolve_path(path, base_dir)
    if not found.exists():
        raise DataError(f"data.path '{path}': not found ({searched(path, base_dir)}); give the {source} "
                        f"{'file' if source == 'npz' else 'folder'}'s path, absolute or relative to the config file")
    return found


DIGITS_SAMPLES = 1797  # scikit-learn's load_digits: 8x8 images, no official test split


def _digits() -> RawData:
    # scikit-learn ships this 8x8 dataset inside the wheel: no download, the embedded default.
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images.astype(np.float32) / 16.0)[:, None, :, :]  # its pixels are 0..16
    return RawData(x, bunch.target.astype(np.int64), [str(i) for i in range(10)], divisor=16.0)


def _fashion_mnist(folder: Path) -> RawData:
    if not folder.is_dir():
        raise DataError(f"data.path '{folder}': Fashion-MNIST folder not found; install it with: {FASHION_MNIST_INSTALL}")
    x = _read_idx(_idx_file(folder, "train-images-idx3-ubyte"))
    y = _read_idx(_idx_file(folder, "train-labels-idx1-ubyte"))
    tx = _read_idx(_idx_file(folder, "t10k-images-idx3-ubyte"))
    ty = _read_idx(_idx_file(folder, "t10k-labels-idx1-ubyte"))
    as_images = lambda a: (a.astype(np.float32) / 255.0)[:, None, :, :]  # noqa: E731
    return RawData(as_images(x), y.astype(np.int64), FASHION_MNIST_CLASSES, as_images(tx), ty.astype(np.int64))


def _idx_file(folder: Path, stem: str) -> Path:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    raise DataError(f"data.path '{folder}': missing {stem}[.gz]; install it with: {FASHION_MNIST_INSTALL}")


def _read_idx(path: Path) -> np.ndarray:
    # IDX is four header bytes, big-endian dims, then raw bytes; numpy reads it directly.
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            data = handle.read()
        ndim = data[3]
        dims = np.frombuffer(data, dtype=">u4", count=ndim, offset=4)
        return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(tuple(int(d) for d in dims))
    except (OSError, ValueError, IndexError, EOFError) as exc:
        raise DataError(f"{path}: not a valid IDX file ({exc})") from None


def _npz(path: Path, labeled: bool = True, scale: str = "auto") -> RawData:
    if path.is_dir():  # data_path found it: "not found" sent the user looking for a file that is there
        raise DataError(f"data.path '{path}': a folder, but data.source npz reads one .npz file (numpy.savez(x=..., y=...)); "
                        "for a folder of images set data.source: imagefolder")
    if not path.is_file():
        raise DataError(f"data.path '{path}': npz file not found")
    found = read_npz(path, "save it with numpy.savez(x=..., y=...)", DataError)
    # input.NAME: the input called NAME where NAME is one of NPZ_KEYS (a feature model's one input named x)
    named = {k.removeprefix(INPUT_PREFIX): v for k, v in found.items() if k not in NPZ_KEYS}
    if "x" not in found and named:  # a model with several inputs: one array per input, named as the input
        return _named_inputs(path, named, None if not labeled else found.get("y"), found.get("classes"))
    if "x" not in found:
        raise DataError(f"{path}: npz needs arrays 'x' (N,C,H,W or N,H,W) and 'y' (N,), or 'x' alone for unlabeled "
                        f"images (judged by fidelity to the fp32 model); found {sorted(found)}")
    if not labeled:
        for key in ("y", "test_y"):
            found.pop(key, None)
    if "y" not in found:  # unlabeled images (and an unlabeled test split, when there is one)
        found["y"] = np.full(len(found["x"]), UNLABELED, np.int64)
        if "test_x" in found and "test_y" not in found:
            found["test_y"] = np.full(len(found["test_x"]), UNLABELED, np.int64)
    return _from_arrays(found["x"], found["y"], found.get("test_x"), found.get("test_y"), str(path), found.get("classes"),
                        scale, f"data.path '{path}'")


# The arrays an npz of images holds; any other name is a model input's (several inputs, no 'x'), and input.NAME is the
# input NAME where that is one of these (as in a bundle's eval.npz, device/bundle.eval_key).
NPZ_KEYS = ("x", "y", "test_x", "test_y", "classes")
INPUT_PREFIX = "input."


def _named_inputs(path: Path, named: dict[str, np.ndarray], y, classes) -> RawData:
    """{input name: array}, each fed to the model as it is (its own dtype, no scaling); the ONNX file's inputs are
    checked against them by name, dtype and fixed dimensions when the model is read (pipeline/given_model.py)."""
    lengths = {name: len(array) if array.ndim else 0 for name, array in named.items()}
    if len(set(lengths.values())) != 1 or not next(iter(lengths.values())):
        raise DataError(f"{path}: the arrays {', '.join(f'{n} ({c} rows)' for n, c in lengths.items())} must have one row "
                        "per sample each, the same number; save one array per model input, samples first")
    for name, array in named.items():
        if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
            raise DataError(f"{path}: array '{name}' is {array.dtype}; model inputs are numeric arrays")
    count = next(iter(lengths.values()))
    labels = _as_labels(y, str(path)) if y is not None else np.full(count, UNLABELED, np.int64)
    if len(labels) != count:
        raise DataError(f"{path}: {count} samples but {len(labels)} labels in y; give one label per sample")
    n_classes = int(labels.max(initial=-1)) + 1
    names = [str(c) for c in classes] if classes is not None else [str(i) for i in range(n_classes)]
    return RawData(dict(named), labels, names)


def _from_arrays(x, y, tx, ty, where: str, classes=None, scale: str = "auto", named: str = "") -> RawData:
    """`named`: how a log line names the source (data.path '...', data.source '...')."""
    if x is None or y is None:
        raise DataError(f"{where}: needs both images 'x' and labels 'y'")
    x, y = _as_images(x, where), _as_labels(y, where)
    if tx is not None:
        tx, ty = _as_images(tx, where), _as_labels(ty if ty is not None else [], where)
    divisor, note = scale_array([x] if tx is None else [x, tx], scale, named or where,
                                ["x"] if tx is None else ["x", "test_x"])
    if divisor != 1:
        x, tx = x / divisor, None if tx is None else tx / divisor
    if len(x) != len(y):
        raise DataError(f"{where}: {len(x)} images but {len(y)} labels; give one label per image")
    if tx is not None and (ty is None or len(tx) != len(ty) or tx.shape[1:] != x.shape[1:]):
        raise DataError(f"{where}: test_x must have one label in test_y per image and the shape of x "
                        f"(x {x.shape[1:]}, test_x {tx.shape[1:]})")
    n_classes = int(max(y.max(initial=0), ty.max(initial=0) if ty is not None else 0)) + 1
    if (y == UNLABELED).all() and (ty is None or (ty == UNLABELED).all()):
        n_classes = 0  # unlabeled: the model's outputs will say how many classes there are
    names = [str(c) for c in classes] if classes is not None else [str(i) for i in range(n_classes)]
    return RawData(x, y, names, tx, ty, divisor=divisor, scale_note=note)


PIXEL_MAX = 255.0  # an 8-bit pixel's largest value


def scale_array(arrays: list[np.ndarray], scale: str, named: str,
                names: Optional[list[str]] = None) -> tuple[float, Optional[str]]:
    """What data.scale divides the image arrays by (one divisor for x and test_x alike), and, for auto, the line that
    says what it chose. auto divides by 255 only values that look like 8-bit pixels (0..255, some above 1): values
    already in [0, 1] are pixels as they are, and negative or larger values (an array normalised before saving, 16-bit
    or raw sensor values) are not 8-bit pixels, which a division by 255 would only shrink. `names`: the arrays' names
    (x, test_x), for the refusal of arrays saved at different scales."""
    _refuse_mixed_scales(arrays, names or [f"array {i}" for i in range(len(arrays))], named)
    if scale == "none":
        return 1.0, None
    if scale == "255":
        _warn_divided_again(arrays, named)
        return PIXEL_MAX, None
    low = min(float(a.min(initial=0)) for a in arrays)
    high = max(float(a.max(initial=0)) for a in arrays)
    if high <= 1.0 and low >= 0.0:
        return 1.0, None
    if low >= 0.0 and high <= PIXEL_MAX and _whole_numbers(arrays):
        return PIXEL_MAX, (f"{named}: values 0..{high:g} read as 8-bit pixels and divided by 255 (data.scale: auto); "
                           "set data.scale: none to feed the values as given")
    return 1.0, (f"{named}: values {low:.3g}..{high:.3g} are not 8-bit pixels: taken as given, not divided by 255 "
                 "(data.scale: auto); set data.scale: 255 to divide them")


def _value_range(array: np.ndarray) -> str:
    """How an array's values look: 'unit' (already in [0, 1]), 'pixels' (whole numbers 0..255, some above 1: 8-bit
    pixels), or 'other' (normalised, 16-bit or raw values), judged on that array alone."""
    low, high = float(array.min(initial=0)), float(array.max(initial=0))
    if low >= 0.0 and high <= 1.0:
        return "unit"
    if low >= 0.0 and high <= PIXEL_MAX and _whole_numbers([array]):
        return "pixels"
    return "other"


def _pixel_range(array: np.ndarray) -> bool:
    """Values within 0..255 reaching well above 1 (over 2): the range of pixels, whole or not."""
    low, high = float(array.min(initial=0)), float(array.max(initial=0))
    return low >= 0.0 and 2.0 < high <= PIXEL_MAX


def _refuse_mixed_scales(arrays: list[np.ndarray], names: list[str], named: str) -> None:
    """One array already in [0, 1] beside another of 8-bit pixels (x saved divided by 255, test_x not): whatever one
    divisor edgekd chose, one of them would reach the model 255 times off, and a gate whose reference is measured on
    the wrongly scaled test split passes a model at chance (33% on four classes, PASS)."""
    kinds = {name: _value_range(array) for name, array in zip(names, arrays)}
    unit = [name for name, kind in kinds.items() if kind == "unit"]
    # pixels, or 0..255 with fractions (x * 255 saved unrounded): beside an array in [0, 1], 255 times off just the same
    pixels = [name for (name, kind), array in zip(kinds.items(), arrays)
              if kind == "pixels" or (kind == "other" and _pixel_range(array))]
    if unit and pixels:
        highs = {name: float(array.max(initial=0)) for name, array in zip(names, arrays)}
        raise DataError(f"{named}: {', '.join(unit)} holds values in [0, 1] but {', '.join(pixels)} holds 8-bit pixels "
                        f"(0..{max(highs[n] for n in pixels):g}): the arrays are scaled differently; save them alike "
                        f"(divide {', '.join(pixels)} by 255, or save every array as 0..255 pixels)")


def _warn_divided_again(arrays: list[np.ndarray], named: str) -> None:
    """data.scale 255 on values already in [0, 1]: they reach the model 255 times smaller than pixels in [0, 1], and a
    bundle's formula (pixel / 255 ...) then tells a device feeding 8-bit pixels the wrong scale. Warned, not refused:
    a model trained on such values would still be fed as it was trained."""
    if all(_value_range(array) == "unit" for array in arrays) and any(float(a.max(initial=0)) > 0 for a in arrays):
        warnings.warn(f"{named}: values already within [0, 1] are divided by 255 again (data.scale: 255): the model sees "
                      "them in [0, 0.004]; unless it was trained so, set data.scale: auto or none (edgekd ship: --scale auto)",
                      stacklevel=2)


def _whole_numbers(arrays: list[np.ndarray], probe: int = 1_000_000) -> bool:
    """Whether the values are whole numbers, as 8-bit pixels are (0..2.83 with fractions is an array scaled before
    saving, which a division by 255 would only shrink); checked on the first `probe` values of each array."""
    return all(a.dtype.kind in "biu" or bool(np.all(np.mod(a.reshape(-1)[:probe], 1) == 0)) for a in arrays)


def _as_labels(y, where: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or not (np.issubdtype(y.dtype, np.integer) or y.size == 0):
        raise DataError(f"{where}: labels must be a 1-D integer array (class indices), got {y.dtype} of shape {y.shape}")
    return y.astype(np.int64)


def _as_images(x, where: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4:
        raise DataError(f"{where}: x holds images, which must be (N,C,H,W) or (N,H,W), got shape {x.shape}; for a model "
                        "whose input is not an image, save each array under the name of the input it feeds (input.x for an input named x)")
    try:
        x = x.astype(np.float32)
    except (TypeError, ValueError):
        raise DataError(f"{where}: images must be numeric arrays, got dtype {x.dtype}") from None
    if not np.isfinite(x).all():  # before data.scale judges the values' range, whose note NaN would make nonsense of
        raise DataError(f"{where}: images contain NaN or Inf values; clean the data first")
    return x


def _imagefolder(folder: Path, preprocess: Preprocess, labeled: bool = True) -> RawData:
    """Files and labels only: pixels are decoded when a batch is asked for (data/images.py). Every file's header
    is read now, so a file that is not an image stops the run before any work. A folder of class sub-folders is
    labeled by them (each one's images at any depth below it); a folder holding image files itself, or any folder with data.labels none, is unlabeled (its files
    at any depth)."""
    if folder.is_file():  # data_path found it: "not found" sent the user looking for a folder when the source is wrong
        raise DataError(f"data.path '{folder}': {_file_source_fix(folder)}")
    if not folder.is_dir():
        raise DataError(f"data.path '{folder}': imagefolder not found (expected one sub-folder per class, or images)")
    classes = class_folders(folder)
    if _images_in(folder) and labeled and any(_holds_images(folder / name) for name in classes):
        loose = [f.name for f in _listing(folder)[0]]
        raise DataError(f"data.path '{folder}': holds images ({', '.join(loose[:3])}{', ...' if len(loose) > 3 else ''}) beside "
                        f"class sub-folders ({', '.join(classes[:5])}); move each loose image into its class folder or out, "
                        "or read every image as unlabeled with --no-labels (data.labels: none)")
    if _images_in(folder) or not labeled:
        files = image_files(folder, "data.path")
        _check_headers(files, preprocess)
        return RawData(LazyImages(files, preprocess), np.full(len(files), UNLABELED, np.int64), [])
    files, labels, skipped = [], [], []
    for label, name in enumerate(classes):
        # at any depth: a class's images sorted into batch1/, day2/... are its images, as in torchvision's ImageFolder
        found, others = _listing(folder / name, recursive=True)
        skipped += others
        if not found and any(_holds_images(folder / other) for other in classes):
            raise DataError(f"data.path '{folder}': class folder '{name}' holds no image ({IMAGE_SUFFIXES_SHOWN}, at any "
                            "depth); fill it, or remove it if it is not a class of the model")
        files += found
        labels += [label] * len(found)
    warn_skipped(skipped, f"data.path '{folder}'")
    if not files:
        raise DataError(f"data.path '{folder}': no images found (expected {folder}/<class>/<image>.png, or images "
                        "without labels directly in it)")
    _check_headers(files, preprocess)
    return RawData(LazyImages(files, preprocess), np.asarray(labels, dtype=np.int64), classes)


def _file_source_fix(file: Path) -> str:
    """What to do with a file given to data.source imagefolder, which reads a folder."""
    needs = "a file, but data.source imagefolder reads a folder (one sub-folder per class, or images)"
    suffix = file.suffix.lower()
    if suffix == ".npz":
        return f"{needs}; for an .npz of arrays set data.source: npz"
    if suffix == ".zip":
        return f"{needs}; unzip it and give the folder"
    if suffix in _IMAGE_SUFFIXES:
        return f"{needs}; give the folder that holds this image and the others"
    return f"{needs}; give the folder of images"


def class_folders(folder: Path) -> list[str]:
    """The sub-folders that name classes, sorted: hidden ones (.ipynb_checkpoints, .git) and macOS's __MACOSX are not."""
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not hidden(p.name))


def hidden(name: str) -> bool:
    """A name that no image folder's reader takes: a dot file or folder (.DS_Store, macOS's AppleDouble ._img.png,
    .ipynb_checkpoints' copies, .git) or macOS's __MACOSX folder of a zip. A ._img.png is not an image, and a notebook's
    checkpoint copies would count each image twice. Windows's thumbnail cache and folder settings are not images either."""
    return name.startswith(".") or name == "__MACOSX" or name.lower() in ("thumbs.db", "desktop.ini")


def _listing(folder: Path, recursive: bool = False) -> tuple[list[Path], list[Path]]:
    """(image files, other files) in `folder`, at any depth when `recursive`, each sorted. A folder (even one named
    album.png) or a broken link is neither, and hidden names (and whatever is below a hidden folder) are left out."""
    images, others = [], []
    for path in folder.rglob("*") if recursive else folder.iterdir():
        if path.is_file() and not any(hidden(part) for part in path.relative_to(folder).parts):
            (images if path.suffix.lower() in _IMAGE_SUFFIXES else others).append(path)
    return sorted(images), sorted(others)


def warn_skipped(others: list[Path], where: str) -> None:
    """Files that are not read, said with their count and a few names: a class's .heic photos (or any format outside
    _IMAGE_SUFFIXES) once went unread without a word, and the gate passed on the rest."""
    if others:
        shown = ", ".join(str(f) for f in others[:3]) + (", ..." if len(others) > 3 else "")
        warnings.warn(f"{where}: skipped {len(others)} file(s) whose suffix is not an image's ({shown}); edgekd reads "
                      f"{IMAGE_SUFFIXES_SHOWN} files: convert any images among them to one of these", stacklevel=2)


def _holds_images(folder: Path) -> bool:
    """Whether a class folder holds an image at any depth."""
    return bool(_listing(folder, recursive=True)[0])


def _images_in(folder: Path) -> bool:
    return any(f.is_file() and f.suffix.lower() in _IMAGE_SUFFIXES and not hidden(f.name) for f in folder.iterdir())


def folder_by_labels(folder: Path, labels: list[str], field: str) -> tuple[list[Path], Optional[np.ndarray]]:
    """A device's image folder: (files, labels) with class sub-folders named as the model's labels (a bundle's `labels`;
    their images at any depth),
    or (files, None) for images without labels: files in the folder itself, or sub-folders none of which is named as a
    label (a camera's folders by day), at any depth. Some sub-folders named as labels and some not is refused."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{field} '{folder}': not a folder; give a folder of images (class sub-folders, or unlabeled images)")
    classes = class_folders(folder)
    named = [name for name in classes if name in labels]
    if named and _images_in(folder):  # as the build machine refuses it (data/datasets.py): not quietly unlabeled
        raise DataError(f"{field} '{folder}': holds images beside class sub-folders named as the model's labels "
                        f"({', '.join(named[:5])}); move the loose images into their class folders, or give unlabeled "
                        "images in a folder of their own")
    if not named:
        alike = _like_labels(classes, labels)
        if alike:  # misnamed class folders, not a camera's folders by day: top-1 would quietly become fidelity
            raise DataError(f"{field} '{folder}': sub-folder(s) {', '.join(alike[:5])} look like the model's labels "
                            f"({', '.join(labels[:12])}) but are not named as them; name the class folders exactly as the "
                            "labels for top-1, or give the images without class folders to measure fidelity to fp32")
        return image_files(folder, field), None
    unknown = [name for name in classes if name not in labels]
    if unknown:
        raise DataError(f"{field} '{folder}': sub-folder(s) {', '.join(unknown[:5])} are not among the model's labels "
                        f"({', '.join(labels[:12])}); name class folders by label, or give unlabeled images directly in it")
    files, y = [], []
    skipped = []
    for name in classes:
        found, others = _listing(folder / name, recursive=True)  # at any depth, as the build machine reads them
        skipped += others
        files += found
        y += [labels.index(name)] * len(found)
    warn_skipped(skipped, f"{field} '{folder}'")
    if not files:
        raise DataError(f"{field} '{folder}': no images found in its class sub-folders")
    return files, np.asarray(y, np.int64)


def _like_labels(folders: list[str], labels: list[str]) -> list[str]:
    """The sub-folders named like one of the labels, but for case, spaces, a prefix or a typo ('bag' for '8-bag'),
    when at least half of them are: a model's classes misnamed rather than unlabeled folders of images."""
    import difflib

    def like(name: str) -> bool:
        key, keys = name.strip().lower(), [label.strip().lower() for label in labels]
        # a substring of three characters or more ('bag' in '8-bag'), never a short one ('0' in a date's '2024-05-01')
        return any((key in k or k in key) and min(len(key), len(k)) >= 3 for k in keys) or \
            bool(difflib.get_close_matches(key, keys, n=1, cutoff=0.75))

    alike = [name for name in folders if like(name)]
    return alike if folders and 2 * len(alike) >= len(folders) else []


def image_files(folder: Path, field: str) -> list[Path]:
    """Every image file below `folder`, at any depth, in a fixed order; one line when there is none."""
    try:
        files, others = _listing(Path(folder), recursive=True)
    except OSError as exc:
        raise DataError(f"{field} '{folder}': cannot be read ({exc.strerror}); check the path and its permissions") from None
    if not files:
        raise DataError(f"{field} '{folder}': no images found ({IMAGE_SUFFIXES_SHOWN} at any depth); "
                        "give a folder of images")
    warn_skipped(others, f"{field} '{folder}'")
    return files


def _check_headers(files: list[Path], preprocess: Preprocess) -> None:
    from PIL import Image, UnidentifiedImageError

    sizes: dict[tuple, Path] = {}  # each size with the first file of that size
    deep = []  # 16-bit greyscale files, from their headers: checked below for 8-bit values
    for file in files:
        try:
            with Image.open(file) as img:
                img.verify()  # the header and, for PNG, the chunk checksums, without decoding the pixels
            with Image.open(file) as img:  # verify() must come first and leaves the image unusable: opened again
                sizes.setdefault(shown_size(img), file)
                if img.mode in SIXTEEN_BIT_MODES:
                    deep.append(file)
        except Image.DecompressionBombError as exc:
            raise DataError(oversized_message(file, exc)) from None
        except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as exc:
            raise DataError(f"{file}: not a readable image ({exc}); remove or replace it") from None
    warn_eight_bit_in_sixteen_bit(deep, "data.path")
    if len(sizes) > 1 and not (preprocess.square or preprocess.center_crop or preprocess.fit_height) \
            and len({_decoded_size(size, preprocess) for size in sizes}) > 1:
        counts = {size: 0 for size in sizes}
        for file in files:  # headers only: cheap beside the decoding to come
            with Image.open(file) as img:
                counts[shown_size(img)] += 1
        alike = {}  # how many images decode to each size: with data.resize, 8x8 and 32x32 are one group
        for size, count in counts.items():
            alike[_decoded_size(size, preprocess)] = alike.get(_decoded_size(size, preprocess), 0) + count
        # the rarest sizes once decoded first: likely the strays
        odd = sorted(sizes, key=lambda size: (alike[_decoded_size(size, preprocess)], counts[size]))[:3]
        shown = ", ".join(f"{w}x{h} ({counts[(w, h)]} image(s), e.g. {sizes[(w, h)]})" for w, h in odd)
        after = f" (data.resize {preprocess.resize} keeps each aspect ratio, so they still differ)" if preprocess.resize else ""
        raise DataError(f"data.path: images have different sizes{after}: {shown}; resize or remove the odd ones, or set data.resize "
                        "and data.center_crop (or data.image_size) in the run's edgekd.yaml and rerun it with edgekd run, so "
                        "that every image becomes the same shape")


def _decoded_size(size: tuple[int, int], preprocess: Preprocess) -> tuple[int, int]:
    """An image's size once decoded: data.resize alone makes 16x16 and 32x32 alike (the shorter side scaled, the
    aspect kept), but not 16x16 and 16x24; without it, the size as shown."""
    return shorter_side_resized(size, preprocess.resize) if preprocess.resize else size


def _factory(reference: str, base_dir: Optional[Path], scale: str = "auto") -> RawData:
    result = call(reference, base_dir, what="data.source")
    named = f"data.source '{reference}'"
    if isinstance(result, dict):
        return _from_arrays(result.get("x"), result.get("y"), result.get("test_x"), result.get("test_y"), reference,
                            result.get("classes"), scale, named)
    if isinstance(result, (tuple, list)) and len(result) == 2:
        return _from_arrays(result[0], result[1], None, None, reference, scale=scale, named=named)
    raise DataError(f"data.source '{reference}': the factory must return (x, y) or a dict with x, y[, test_x, test_y, classes]")
