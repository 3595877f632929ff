"""OpenVINO's own model tools for the model families: ONNX to IR (openvino.convert_model), NNCF's data-free weight
compression of an IR, and saving it; and with them a language model's exported decoder (edgekd.lm.export) as IR, fp32
or compressed (convert_decoder: the OpenVINO backend's decoder quantizer, OpenVinoBackend.quantize_decoder). Owned
here so that lm/ never imports openvino or nncf (tests/test_import_contracts.py, issue 33).

Conversion: openvino.convert_model reads the ONNX file (input_ids, attention_mask, position_ids and
past_key_values.{i}.key/value in; logits and present.{i}.key/value out, names kept), so the IR runs the same
one-graph loop as onnxruntime: the cache stays explicit inputs and outputs (not OpenVINO's stateful form).
The context length, ONNX metadata in the export, goes into the IR's rt_info. The CPU plugin decompresses
compressed weights inside its FullyConnected kernels.

Compression methods (OpenVinoBackend.decoder_methods), weight-only (activations and the KV cache stay float):
* `ov_int8`: INT8_ASYM, per output channel, every linear layer and the embeddings (NNCF's default).
* `ov_int4`: INT4_SYM (or INT4_ASYM) in groups of `group_size` input channels for `ratio` of the linear
  layers; NNCF keeps the embeddings and the last linear layer (for a tied decoder, the output layer) at 8 bits.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, Optional

from edgekd.core.errors import ArtifactError, ConfigError, openvino_reason
from edgekd.core.fileio import atomic_files
from edgekd.runtimes.decoder import CONTEXT_INFO, CONTEXT_KEY


@dataclass(frozen=True)
class Compression:
    """How ov_int4 compresses (ov_int8 has no options: INT8_ASYM per channel)."""

    int4_mode: Literal["sym", "asym"] = "sym"
    group_size: Optional[int] = None  # None: the caller's default for the model (default_group_size)
    ratio: float = 1.0  # the share of linear layers at 4 bits; the rest at 8


def convert_onnx(source: Path):
    """The openvino.Model of ONNX file `source` (input and output names kept)."""
    import openvino as ov

    try:
        return ov.convert_model(str(source))
    except Exception as exc:  # OpenVINO's frontend raises plain RuntimeErrors (GeneralFailure, OpConversionFailure)
        raise ArtifactError(f"{source}: OpenVINO cannot convert it ({openvino_reason(exc)})") from None


def compress_weights(model, method: str, compression: Compression):
    """`model` with its weights compressed by NNCF by `method` (ov_int8 / ov_int4, see the module's docstring)."""
    import nncf

    from edgekd.core.quiet import quiet_nncf

    if method == "ov_int8":
        with quiet_nncf():  # NNCF's progress bars and INFO lines stay out of edgekd's log
            return nncf.compress_weights(model, mode=nncf.CompressWeightsMode.INT8_ASYM)
    mode = nncf.CompressWeightsMode.INT4_SYM if compression.int4_mode == "sym" else nncf.CompressWeightsMode.INT4_ASYM
    try:
        with quiet_nncf():
            return nncf.compress_weights(model, mode=mode, group_size=compression.group_size, ratio=compression.ratio)
    except nncf.errors.InvalidGroupSizeError as exc:  # a width the group size does not divide
        raise ConfigError(f"quantize.openvino.group_size {compression.group_size}: NNCF cannot group this model's "
                          f"weights by it ({str(exc).splitlines()[0][:160]}); use a divisor of the model's width") from None


def save_ir(model, target: Path) -> Path:
    """`model` as IR `target` (.xml, its weights beside it as .bin), fp32 kept fp32; both files appear only when both
    are written."""
    import openvino as ov

    with atomic_files(target.parent) as scratch:
        ov.save_model(model, str(scratch / target.name), compress_to_fp16=False)  # fp32 stays fp32
    return target


OV_METHODS = ("ov_int8", "ov_int4")  # OpenVinoBackend.decoder_methods
GROUP_SIZES = (128, 64, 32, 16)  # NNCF's usual int4 group sizes, largest (fewest scales) first


def convert_decoder(source: str | Path, target: str | Path, method: Optional[str] = None,
                    compression: Compression = Compression()) -> Path:
    """Write `source` (an exported decoder .onnx) as IR `target` (.xml, with the .bin beside it), fp32 when
    `method` is None, else compressed with `method` (OV_METHODS). Both files appear only when both are written."""
    source, target = Path(source), Path(target)
    if method is not None and method not in OV_METHODS:
        raise ConfigError(f"lm openvino: unknown method {method!r}; use one of {', '.join(OV_METHODS)}")
    if target.suffix != ".xml":
        raise ConfigError(f"{target}: an OpenVINO IR is named .xml (its weights go beside it as .bin); give a .xml path")
    if not source.is_file():
        raise ArtifactError(f"{source}: decoder ONNX file not found; export one with edgekd.lm.export.export_decoder")
    model = convert_onnx(source)
    _check_decoder_inputs(model, source)
    context = _onnx_context(source)
    if context is not None:
        model.set_rt_info(str(context), CONTEXT_INFO)
    if method is not None:
        if compression.group_size is None:
            compression = replace(compression, group_size=default_group_size(source))
        model = compress_weights(model, method, compression)
    return save_ir(model, target)


def default_group_size(source: Path) -> int:
    """The largest of GROUP_SIZES that divides the decoder's width (the position embedding's second dimension):
    every weight's input channels are the width or 4 x the width, so a divisor of the width divides all."""
    import onnx

    graph = onnx.load(str(source), load_external_data=False).graph
    widths = [int(i.dims[1]) for i in graph.initializer if i.name.endswith("wpe.weight") and len(i.dims) == 2]
    if not widths:
        raise ArtifactError(f"{source}: no position embedding (wpe.weight) to read the width from; set quantize.openvino.group_size")
    return next((size for size in GROUP_SIZES if widths[0] % size == 0), 8)


def _check_decoder_inputs(model, source: Path) -> None:
    names = {name for port in model.inputs for name in port.get_names()}
    if "input_ids" not in names or not any(name.startswith("past_key_values.") for name in names):
        raise ArtifactError(f"{source}: not a decoder with a KV cache (needs input_ids and past_key_values.N.key/value "
                            "inputs); export it with edgekd.lm.export.export_decoder")


def _onnx_context(source: Path) -> Optional[int]:
    """The context length export.py recorded in the ONNX metadata (load_external_data=False: only the header is needed)."""
    import onnx

    props = {p.key: p.value for p in onnx.load(str(source), load_external_data=False).metadata_props}
    return int(props[CONTEXT_KEY]) if CONTEXT_KEY in props else None
