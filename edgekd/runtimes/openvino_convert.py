"""OpenVINO's own model tools for the model families: ONNX to IR (openvino.convert_model), NNCF's data-free weight
compression of an IR, and saving it. Owned here so that lm/ never imports openvino or nncf
(tests/test_import_contracts.py); the language model chooses what to convert and how to compress (lm/openvino.py).

Compression methods (OpenVinoBackend.decoder_methods), weight-only (activations and the KV cache stay float):
* `ov_int8`: INT8_ASYM, per output channel, every linear layer and the embeddings (NNCF's default).
* `ov_int4`: INT4_SYM (or INT4_ASYM) in groups of `group_size` input channels for `ratio` of the linear
  layers; NNCF keeps the embeddings and the last linear layer (for a tied decoder, the output layer) at 8 bits.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

from edgekd.core.errors import ArtifactError, ConfigError, openvino_reason
from edgekd.core.fileio import atomic_files


@dataclass(frozen=True)
class Compression:
    """How ov_int4 compresses (ov_int8 has no options: INT8_ASYM per channel)."""

    int4_mode: Literal["sym", "asym"] = "sym"
    group_size: Optional[int] = None  # None: the caller's default for the model (lm/openvino.default_group_size)
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
