"""Size on disk, gzip size and parameter count of an artifact. Lean: numpy and the artifact's own runtime."""
from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

from edgekd.core.errors import ArtifactError
from edgekd.core.fileio import sha256_of
from edgekd.runtimes.base import Artifact
from edgekd.runtimes.registry import get_backend


def model_files(artifact: Artifact) -> list[Path]:
    """The files that hold the model (the backend's file_roles); README, build scripts and caches do not count."""
    roles = get_backend(artifact.backend).file_roles
    return [artifact.root / name for name in artifact.files if Path(name).suffix in roles]


def loaded_files(artifact: Artifact) -> list[Path]:
    """The files the runtime session opens on the device: the main file, plus the weights of an OpenVINO IR.

    This is the size compared across targets. Other model files ride along (an arm64 bundle's .ort for
    minimal builds, a TensorRT bundle's ONNX before its engine is built) and are named apart.
    """
    return [path for path in get_backend(artifact.backend).loaded_files(artifact) if path.is_file()]


def file_set(artifact: Artifact) -> list[dict]:
    """Every model file of the artifact: name, bytes, what it is, and whether the device's session loads it."""
    loaded, roles = set(loaded_files(artifact)), get_backend(artifact.backend).file_roles
    return [{"name": path.name, "bytes": path.stat().st_size, "role": roles.get(path.suffix, path.suffix),
             "loaded": path in loaded} for path in model_files(artifact)]


def model_digest(artifact: Artifact) -> str:
    """One sha256 over the model files the build machine wrote (not those built on the device: an engine, an .ort
    file): the same for a candidate in a run folder and its copy in a bundle, so a report says which model it measured."""
    built = set(get_backend(artifact.backend).built_files)
    digest = hashlib.sha256()
    for path in sorted(p for p in model_files(artifact) if p.name not in built and p.is_file()):
        digest.update(f"{path.name}:{sha256_of(path)};".encode())
    return digest.hexdigest()


def size_on_disk(artifact: Artifact) -> int:
    """Bytes the device loads (loaded_files): comparable across targets, whatever else a bundle carries."""
    return sum(path.stat().st_size for path in loaded_files(artifact))


def gzip_size(artifact: Artifact, level: int = 9) -> int:
    """What the loaded model costs to download or store compressed: int8 weights compress far less than fp32 zeros."""
    return sum(len(gzip.compress(path.read_bytes(), compresslevel=level, mtime=0)) for path in loaded_files(artifact))


def parameter_count(artifact: Artifact) -> int | None:
    """Number of stored weights and biases, where the format can be read without torch; None when unknown.

    Counted so that an int8 model and its fp32 source agree: shape tensors and quantization
    parameters (scales, zero points, FakeQuantize ranges) are not weights. No runtime API offers
    this count, hence the graph walk (each backend reads its own format).
    """
    main = artifact.root / artifact.main
    try:
        return get_backend(artifact.backend).parameter_count(main)
    except ImportError:  # the `onnx` package is not on the device: the count is unknown, not an error
        return None
    except Exception as exc:  # protobuf DecodeError, OpenVINO's RuntimeError subclasses: a corrupt file
        raise ArtifactError(f"{main}: cannot read the model ({str(exc).splitlines()[0][:160]}); "
                            "the file is corrupt: export or bundle it again") from None
