"""The exported decoder (export.py) as OpenVINO IR, fp32 or with NNCF weight compression, and its runner.

Conversion: openvino.convert_model reads the ONNX file (input_ids, attention_mask, position_ids and
past_key_values.{i}.key/value in; logits and present.{i}.key/value out, names kept), so the IR runs the same
one-graph loop as onnxruntime: the cache stays explicit inputs and outputs (not OpenVINO's stateful form).
The context length, ONNX metadata in the export, goes into the IR's rt_info.

Compression: nncf.compress_weights, weight-only and data-free (ov_int8, ov_int4; edgekd/runtimes/openvino_convert.py,
which converts, compresses and saves: lm/ imports no runtime). The CPU plugin decompresses the weights inside its
FullyConnected kernels.

The runner (OpenVinoDecoder, edgekd/runtimes/openvino.py) has OnnxDecoder's interface (Decoder), so generate(), bench
and onnx_perplexity() run it unchanged; like OnnxDecoder it needs numpy and the runtime only, no torch.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Optional

from edgekd.core.errors import ArtifactError, ConfigError
from edgekd.runtimes.decoder import CONTEXT_INFO, CONTEXT_KEY
from edgekd.runtimes.openvino import OpenVinoBackend, OpenVinoDecoder  # noqa: F401  (edgekd.lm's name for it too)
from edgekd.runtimes.openvino_convert import Compression, compress_weights, convert_onnx, save_ir

OV_METHODS = OpenVinoBackend.decoder_methods  # ov_int8, ov_int4: the OpenVINO backend's
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
