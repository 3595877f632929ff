"""Atomic file writes and hashing. Lean: no torch, so the device bench path can use it."""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from edgekd.core.errors import OutputError

_UMASK = os.umask(0)
os.umask(_UMASK)


def sha256_of(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def resolve_path(path: str | Path, base_dir: str | Path | None) -> Path:
    """A path from the config: relative to the config file's folder, as `edgekd keys` says; as given (from the
    working directory) only where the config's folder has no such path. The config's folder first: the same file run
    from another folder must not quietly read that folder's `img/` (a trial found exactly that)."""
    candidate = Path(path)
    if candidate.is_absolute() or base_dir is None:
        return candidate
    beside_config = Path(base_dir) / candidate
    return beside_config if beside_config.exists() or not candidate.exists() else candidate


def searched(path: str | Path, base_dir: str | Path | None) -> str:
    """Where resolve_path looked, for a 'not found' message."""
    places = []
    if base_dir is not None and not Path(path).is_absolute():
        places.append(str(Path(base_dir).resolve()))
    if not Path(path).is_absolute() and str(Path.cwd()) not in places:
        places.append(str(Path.cwd()))
    return f"looked in {' and '.join(places)}" if places else "absolute path"


def file_record(path: str | Path, root: str | Path | None = None) -> dict[str, Any]:
    """Path (relative to root when given), sha256 and size: how every artifact is recorded."""
    path = Path(path)
    shown = str(path)
    if root:
        try:
            shown = path.resolve().relative_to(Path(root).resolve()).as_posix()
        except ValueError:  # an input from outside the run folder (the user's checkpoint): where it is
            shown = str(path.resolve())
    return {"path": shown, "sha256": sha256_of(path), "bytes": path.stat().st_size}


@contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `target`; rename it into place only if the block succeeds.

    A crash or Ctrl-C mid-write leaves the previous file (if any) untouched.
    """
    target = Path(target)
    with _naming(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; artifacts should be readable like any other
    try:
        yield tmp
        with _naming(target):
            os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


# atomic_path's temporary names: `.` + the target's name + `.` + mkstemp's 8 characters + `.tmp`
_TEMPORARY = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$")


def remove_stray_temporaries(folder: str | Path) -> list[Path]:
    """atomic_path's temporary files a killed process left in `folder` (kill -9 skips the cleanup): removed by the
    next run while it holds the folder's lock, so no writer of its own is mid-write, in the run's own folders only
    (pipeline/runner.py). The files they were to replace were never touched."""
    stray = [p for p in Path(folder).rglob(".*.tmp") if p.is_file() and _TEMPORARY.match(p.name)]
    for path in stray:
        path.unlink(missing_ok=True)
    return stray


@contextmanager
def _naming(target: Path, what: str = "cannot write") -> Iterator[None]:
    """An OSError while creating or placing `target` as one line naming it. Only around edgekd's own
    file operations: an OSError from the caller's block (a missing input) is about another file."""
    try:
        yield
    except OSError as exc:
        raise OutputError(f"{target}: {what} ({exc.strerror or exc}); pick a writable location") from None


def refuse_overwriting_inputs(who: str, outputs: dict[str, str | Path | None], inputs: dict[str, str | Path | None]) -> None:
    """An output path that is one of the inputs, or another output, by resolved path (`./r.json`, a symlink to it):
    one OutputError line before any work, never an input silently replaced (`edgekd gate r.json --summary r.json`).
    The keys name each path as the caller takes it (`--summary`, `REPORT`; or the API's `summary`, `report`)."""
    def resolved(path):
        return Path(os.path.abspath(Path(path).expanduser())).resolve()

    seen = {resolved(path): name for name, path in inputs.items() if path is not None}
    for name, path in outputs.items():
        if path is None:
            continue
        key = resolved(path)
        if key in seen:
            raise OutputError(f"{who}: {name} {path} is {seen[key]}, which it would overwrite; give {name} another path")
        seen[key] = name


def writable_folder(folder: str | Path, option: str) -> Path:
    """Create `folder` and prove a file can be made in it, before the work whose results go there:
    a benchmark that ends in a failed write loses its numbers."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".edgekd-write-test-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputError(f"{folder}: output folder is not writable ({exc.strerror or exc}); "
                          f"choose another with {option}") from None
    return folder


def writable_file(path: str | Path, option: str) -> Path:
    """Check that `path` can be written later: its folder is created and writable, it is not a folder."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path}: is a folder; give {option} a file path")
    writable_folder(path.parent, option)
    return path


@contextmanager
def atomic_files(folder: str | Path) -> Iterator[Path]:
    """Yield a scratch folder inside `folder` for a tool that writes several files (OpenVINO's .xml
    and .bin); if the block succeeds, rename each into `folder`, so none is ever seen half-written.

    The renames are atomic one by one, not as a set: a crash between them leaves a new file beside
    an old one, which the manifest's sha256 check then reports as modified and the stage reruns.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".staging-", dir=folder))
    try:
        yield scratch
        for path in sorted(scratch.iterdir()):
            os.replace(path, folder / path.name)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def write_text_atomic(target: str | Path, text: str) -> Path:
    with atomic_path(target) as tmp, _naming(Path(target)):  # a full disk: name the file being written
        tmp.write_text(text, encoding="utf-8")
    return Path(target)


def write_json_atomic(target: str | Path, payload: Any) -> Path:
    # allow_nan=False: Python would write bare NaN/Infinity, which JSON does not have; jq, browsers'
    # JSON.parse and CI tools reject the whole file. _finite turns them into null ("no value") first.
    text = json.dumps(_finite(payload), indent=2, sort_keys=False, default=str, allow_nan=False)
    return write_text_atomic(target, text + "\n")


def json_digest(payload: Any) -> str:
    """sha256 of `payload` as write_json_atomic writes it, in one canonical form (keys sorted, no spaces), so the same
    content read back from the file gives the same digest however it was indented."""
    as_written = json.loads(json.dumps(_finite(payload), default=str, allow_nan=False))
    canonical = json.dumps(as_written, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def _finite(value: Any) -> Any:
    """`value` with every NaN or infinite float (at any depth) replaced by None, and numpy scalars and arrays
    as plain Python values (default=str would write a float32 as the string "0.5")."""
    if isinstance(value, (np.generic, np.ndarray)):
        return _finite(value.tolist())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def read_json(path: str | Path) -> Any:
    from edgekd.core.errors import ArtifactError

    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ArtifactError(f"{path}: file not found") from exc
    except IsADirectoryError as exc:
        raise ArtifactError(f"{path}: is a folder, not a JSON file") from exc
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno}): cut short or edited; copy it again "
                            "from where it was made, or regenerate it") from exc
    except UnicodeDecodeError:  # a picture, a UTF-16 file: not a JSON file edgekd wrote
        raise ArtifactError(f"{path}: not a UTF-8 text file, so not JSON edgekd wrote; give the report.json (or "
                            "manifest.json) edgekd wrote") from None


def read_npz(path: Path, fix: str, error: type[Exception]) -> dict[str, np.ndarray]:
    """Every array of an .npz file (allow_pickle=False), or `error` with one line: truncated or damaged zips,
    a plain .npy file under an .npz name, a zip of other files, another kind of file, pickled objects."""
    kind = _not_numpy_file(path)
    if kind:
        raise error(f"{path}: not an .npz file (numpy.savez writes a zip of .npy arrays) but {kind}; {fix}")
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):  # a bare ndarray: a .npy file under another name
            raise error(f"{path}: a single .npy array, not an .npz archive of named arrays; {fix}")
        with loaded:
            _refuse_other_members(path, loaded.zip.namelist(), fix, error)
            return dict(loaded)
    except ValueError as exc:
        if "allow_pickle" in str(exc):  # an array of Python objects (a list of arrays of several shapes, strings...)
            raise error(f"{path}: holds an array of Python objects, which edgekd does not unpickle; save numeric arrays "
                        "(numpy.stack the samples into one array of one dtype)") from None
        raise error(f"{path}: cannot read npz ({type(exc).__name__}: {str(exc)[:120]}); the file is damaged or "
                    f"not an npz: {fix}") from None
    except (OSError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
        raise error(f"{path}: cannot read npz ({type(exc).__name__}: {str(exc)[:120]}); the file is damaged or "
                    f"not an npz: {fix}") from None


# The first bytes of the files most often given where an .npz belongs, and what to call them.
_MAGIC = ((b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
          (b"\x80", "a Python pickle"), (b"\x1f\x8b", "a gzip file"))


def _not_numpy_file(path: Path) -> str | None:
    """What the file is, when its first bytes are neither a zip's (an .npz) nor a .npy's: numpy reads anything else as
    a pickle, so a PNG or a text file under an .npz name was "an array of Python objects". None when it may be one
    (or cannot be read: np.load then says why)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(512)
    except OSError:
        return None
    if not head or head.startswith((b"PK", b"\x93NUMPY")):
        return None
    named = next((name for magic, name in _MAGIC if head.startswith(magic)), None)
    if named:
        return named
    try:
        head.decode("utf-8")
        return "a text file"
    except UnicodeDecodeError:
        return "neither a zip nor a .npy file"


def _refuse_other_members(path: Path, members: list[str], fix: str, error: type[Exception]) -> None:
    """A zip whose files are not all .npy arrays (a zip of images renamed .npz): numpy hands those back as bytes, which
    then crashed as an array. Named, with the way to use a zip of images."""
    others = sorted(name for name in members if not name.endswith(".npy") and not name.endswith("/"))  # folders: empty
    if others:
        shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
        images = any(Path(name).suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
                     for name in others)
        hint = "; to use its images, unzip it and give the folder (--data FOLDER, data.source imagefolder)" if images else ""
        raise error(f"{path}: a zip whose {len(others)} member(s) {shown} are not numpy arrays (.npy), so not an .npz; "
                    f"{fix}{hint}")
