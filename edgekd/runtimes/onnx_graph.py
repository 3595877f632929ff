"""Reading an ONNX graph without torch or a runtime (the `onnx` package only)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edgekd.core.errors import ArtifactError, clip_words


class UnreadableOnnx(ArtifactError):
    """The file does not parse as ONNX: a given model is refused with it; copy_onnx copies such a file as it is and
    leaves the judgement to the runtime that loads it."""


def read_onnx_header(path: Path, field: str = "model"):
    """The ModelProto of a user's file, weights left where they are (external data not loaded): a file that is not
    ONNX (a pickle, a truncated download, a .pt renamed) is one line naming it, never protobuf's DecodeError."""
    import onnx

    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # google.protobuf's DecodeError and friends: not an ONNX file
        raise UnreadableOnnx(f"{field} '{path}': not a readable ONNX model ({_looks_like(path) or clip_words(str(exc), 120)}); "
                            "give the .onnx file the exporter wrote (torch.onnx.export, tf2onnx, skl2onnx, paddle2onnx), "
                            "or export it again") from None


def _looks_like(path: Path) -> str | None:
    """What a file that failed to parse as ONNX starts like, from its first bytes (nothing is loaded): the two
    mistakes people make most are a pickle and a PyTorch checkpoint (a zip) given where an .onnx belongs."""
    with open(path, "rb") as handle:
        head = handle.read(4)
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return "it is a Python pickle, which edgekd never loads"
    if head == b"PK\x03\x04":
        return "it is a zip archive, such as a PyTorch .pt checkpoint; export the model to ONNX first"
    return None


def onnx_parameters(path: Path) -> int:
    """Stored weights and biases, counted so that an int8 model and its fp32 source agree: shape tensors and
    quantization parameters (scales, zero points) are not weights. No runtime API offers this count."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    graphs = list(_graphs(model.graph))
    quant_params = {name for graph in graphs for node in graph.node if node.op_type in ("QuantizeLinear", "DequantizeLinear")
                    for name in node.input[1:]}
    # Paddle2ONNX and recurrent exports keep weights in Constant nodes and in If/Loop branches, not as initializers:
    # counted too (a PP-OCR detector read 0 parameters). A QAT export keeps its scales in Constant nodes: left out by
    # their output's name (telling them apart by id() of protobuf wrappers, which are made afresh on each access,
    # counted 439 of a QAT model's 1,158 weights).
    tensors = [t for graph in graphs for t in graph.initializer if t.name not in quant_params]
    tensors += [t for graph in graphs for node in graph.node if not (node.op_type == "Constant" and node.output[0] in quant_params)
                for attr in node.attribute for t in ([attr.t] if attr.type == onnx.AttributeProto.TENSOR else
                                                     attr.tensors if attr.type == onnx.AttributeProto.TENSORS else [])]
    return sum(int(np.prod(t.dims, dtype=np.int64)) for t in tensors if t.data_type != onnx.TensorProto.INT64)


def _graphs(graph):
    """The graph and every subgraph of its nodes (If, Loop, Scan branches), at any depth."""
    import onnx

    yield graph
    for node in graph.node:
        for attr in node.attribute:
            for sub in ([attr.g] if attr.type == onnx.AttributeProto.GRAPH else
                        attr.graphs if attr.type == onnx.AttributeProto.GRAPHS else []):
                yield from _graphs(sub)


# The lowest opset of the default domain whose QuantizeLinear/DequantizeLinear take the `axis` attribute that
# per-channel int8 needs: onnxruntime's quantizer (QDQ) and NNCF write it whatever the model's opset says.
MIN_QUANT_OPSET = 13


def dedupe_opset_imports(path: Path, field: str = "model") -> list[dict] | None:
    """Rewrite the model at `path` in place with one opset_import per domain when it lists one twice at the same
    version (onnx.compose.merge_models writes the default domain once per merged model): onnxruntime runs such a file,
    but its quantizer stops at "Failed to find proper ai.onnx domain". Returns the entries removed (None: none), for
    the manifest; two versions of one domain are one line naming them, as no tool can tell which one the graph needs."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)  # external data stays where it is, referenced as before
    seen: dict[str, int] = {}
    removed = []
    for entry in model.opset_import:
        domain = "" if entry.domain == "ai.onnx" else entry.domain
        if domain in seen and seen[domain] != entry.version:
            raise ArtifactError(f"{field} '{path}': it imports domain '{entry.domain or 'ai.onnx'}' at two opsets "
                                f"({seen[domain]} and {entry.version}); export or merge it again with one opset per domain")
        if domain in seen:
            removed.append({"domain": entry.domain or "ai.onnx", "version": entry.version})
        seen[domain] = entry.version
    if not removed:
        return None
    del model.opset_import[:]
    model.opset_import.extend(onnx.helper.make_opsetid(domain, version) for domain, version in seen.items())
    onnx.save(model, str(path))
    return removed


def opset_of(path: Path) -> int | None:
    """The model's opset for the default ONNX domain, None when it imports none."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)


def external_data_files(path: Path, field: str) -> list[str]:
    """The files (relative to the model's folder) holding the weights of an ONNX file saved with external data
    (torch.onnx.export's default from torch 2.14: model.onnx + model.onnx.data), each checked to exist inside the
    model's folder. A location that leaves that folder (absolute, `..`, a link out of it) is refused, as onnxruntime
    refuses it, but in one line naming the file."""
    import onnx
    from onnx.external_data_helper import ExternalDataInfo, _get_all_tensors


    model = read_onnx_header(path, field)  # the first read of a given model: a file that is not ONNX stops here
    folder = path.resolve().parent
    found: list[str] = []
    # _get_all_tensors: onnx's own walk over initializers and attribute tensors (subgraphs included), the one that
    # load_external_data_for_model uses; onnx exports no public name for it.
    for tensor in _get_all_tensors(model):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = ExternalDataInfo(tensor).location
        resolved = (folder / location).resolve()
        if Path(location).is_absolute() or folder not in resolved.parents:
            raise ArtifactError(f"{field} '{path}': weight '{tensor.name}' is stored at '{location}', outside the model's "
                                "folder; refused: save the model with its external data beside it (a relative file name)")
        if not resolved.is_file():
            raise ArtifactError(f"{field} '{path}': weight '{tensor.name}' is stored in '{location}', which is not in "
                                f"{folder}; copy the model's .data file(s) beside the .onnx")
        info = ExternalDataInfo(tensor)
        end = (info.offset or 0) + (info.length or 0)
        if info.length and resolved.stat().st_size < end:  # a copy cut short: onnxruntime names only the weight
            raise ArtifactError(f"{field} '{path}': its data file '{location}' holds {resolved.stat().st_size:,} bytes, but "
                                f"weight '{tensor.name}' ends at byte {end:,}: the file is truncated; copy it again")
        if location not in found:
            found.append(location)
    return found


def copy_onnx(source: Path, target: Path, field: str = "model") -> list[Path]:
    """Copy an ONNX file with its external-data files (kept at their relative locations beside `target`), each
    written atomically; the paths written, the model first. Without external data this is one file copy."""
    import shutil

    from edgekd.core.fileio import atomic_path

    locations = _external_locations(source, field)
    if target.name in locations:
        raise ArtifactError(f"{field} '{source}': its external data is named '{target.name}', as the model copy must be; "
                            "save the weights under another name (e.g. model.onnx.data)")
    written = [target]
    for location in locations:
        destination = target.parent / location
        destination.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(destination) as tmp:
            shutil.copyfile(source.parent / location, tmp)
        written.append(destination)
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)
    return written


def _external_locations(source: Path, field: str) -> list[str]:
    """external_data_files, or none for a file the onnx package cannot parse (or without the package): the file is
    copied as it is, and the runtime that loads it says what is wrong. A location that escapes is still refused."""
    from edgekd.core.errors import EdgeKDError

    try:
        return external_data_files(source, field)
    except UnreadableOnnx:  # not ours to judge here
        return []
    except EdgeKDError:
        raise
    except Exception:  # ImportError: not ours to judge here
        return []


def upgrade_opset(source: Path, target: Path, opset: int = MIN_QUANT_OPSET) -> list[Path]:
    """`source` converted to `opset` by onnx's version converter, saved at `target` (weights beside it in
    `<target>.data` when the source keeps them outside); the paths written, the model first."""
    import onnx
    from onnx import version_converter

    from edgekd.core.fileio import atomic_path

    model = version_converter.convert_version(onnx.load(str(source)), opset)
    has_external = bool(external_data_files(source, "model"))
    data = target.with_name(f"{target.name}.data")
    with atomic_path(target) as tmp:
        if has_external:
            onnx.save_model(model, str(tmp), save_as_external_data=True, all_tensors_to_one_file=True,
                            location=data.name)
        else:
            onnx.save_model(model, str(tmp))
    return [target, data] if has_external else [target]


# Operators that only a quantized model has: Q/DQ pairs, onnxruntime's QOperator and integer kernels, n-bit weights.
QUANTIZED_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "QLinearConv", "QLinearMatMul",
                           "MatMulInteger", "ConvInteger", "MatMulNBits", "QLinearAdd", "QLinearMul", "QGemm",
                           "QLinearGlobalAveragePool", "QLinearConcat", "QLinearSigmoid", "QLinearLeakyRelu"})


def op_counts(path: Path, op_types: frozenset[str] | set[str]) -> dict[str, int]:
    """How many nodes of each of `op_types` the model has, subgraphs (If, Loop, Scan branches) included."""
    import onnx

    counts: dict[str, int] = {}
    for graph in _graphs(onnx.load(str(path), load_external_data=False).graph):
        for node in graph.node:
            if node.op_type in op_types:
                counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts
