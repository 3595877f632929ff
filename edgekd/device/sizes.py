"""Size on disk, gzip size and parameter count of an artifact. Lean: numpy and the artifact's own runtime."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from edgekd.core.errors import ArtifactError
from edgekd.runtimes.base import Artifact

# Files that hold the model; side files (README, build scripts, timing caches) do not count.
MODEL_SUFFIXES = (".onnx", ".ort", ".xml", ".bin", ".engine", ".plan")


# What each kind of file is, for the report's file-set column.
_ROLES = {".onnx": "ONNX model", ".ort": "ORT-format model (minimal onnxruntime builds)", ".xml": "OpenVINO IR graph",
          ".bin": "OpenVINO IR weights", ".engine": "TensorRT engine", ".plan": "TensorRT engine"}


def model_files(artifact: Artifact) -> list[Path]:
    return [artifact.root / name for name in artifact.files if name.endswith(MODEL_SUFFIXES)]


def loaded_files(artifact: Artifact) -> list[Path]:
    """The files the runtime session opens on the device: the main file, plus the weights of an OpenVINO IR.

    This is the size compared across targets. Other model files ride along (an arm64 bundle's .ort for
    minimal builds, a TensorRT bundle's ONNX before its engine is built) and are named apart.
    """
    main = artifact.root / artifact.main
    loaded = [main]
    if main.suffix == ".xml":
        loaded.append(main.with_suffix(".bin"))
    return [path for path in loaded if path.is_file()]


def file_set(artifact: Artifact) -> list[dict]:
    """Every model file of the artifact: name, bytes, what it is, and whether the device's session loads it."""
    loaded = set(loaded_files(artifact))
    return [{"name": path.name, "bytes": path.stat().st_size, "role": _ROLES.get(path.suffix, path.suffix),
             "loaded": path in loaded} for path in model_files(artifact)]


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
    this count, hence the graph walk.
    """
    main = artifact.root / artifact.main
    counters = {".onnx": onnx_parameters, ".xml": _openvino_parameters}
    if main.suffix not in counters:
        return None
    try:
        return counters[main.suffix](main)
    except ImportError:  # the `onnx` package is not on the device: the count is unknown, not an error
        return None
    except Exception as exc:  # protobuf DecodeError, OpenVINO's RuntimeError subclasses: a corrupt file
        raise ArtifactError(f"{main}: cannot read the model ({str(exc).splitlines()[0][:160]}); "
                            "the file is corrupt: export or bundle it again") from None


def onnx_parameters(path: Path) -> int:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    quant_params = {name for node in model.graph.node if node.op_type in ("QuantizeLinear", "DequantizeLinear")
                    for name in node.input[1:]}
    total = 0
    for tensor in model.graph.initializer:
        if tensor.data_type != onnx.TensorProto.INT64 and tensor.name not in quant_params:
            total += int(np.prod(tensor.dims, dtype=np.int64))
    return total


def _openvino_parameters(path: Path) -> int:
    import openvino as ov

    model = ov.Core().read_model(str(path))
    total = 0
    for op in model.get_ordered_ops():
        if op.get_type_name() == "Constant" and op.get_element_type().get_type_name() != "i64" \
                and not any(_is_quant_param(target) for target in op.output(0).get_target_inputs()):
            total += int(np.prod(list(op.get_output_shape(0)), dtype=np.int64))
    return total


def _is_quant_param(target) -> bool:
    """FakeQuantize ranges, and the scale / zero point of OpenVINO's int8 weight decompression
    pattern: Constant(int) -> Convert -> Subtract(zero point) -> Multiply(scale)."""
    node, index = target.get_node(), target.get_index()
    if node.get_type_name() == "FakeQuantize":
        return index > 0
    if node.get_type_name() in ("Multiply", "Subtract") and index == 1:
        source = node.input_value(0).get_node()
        return source.get_type_name() in ("Convert", "Subtract")
    return False
