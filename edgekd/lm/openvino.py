"""The exported decoder (export.py) as OpenVINO IR, fp32 or with NNCF weight compression, and its runner.

Conversion: openvino.convert_model reads the ONNX file (input_ids, attention_mask, position_ids and
past_key_values.{i}.key/value in; logits and present.{i}.key/value out, names kept), so the IR runs the same
one-graph loop as onnxruntime: the cache stays explicit inputs and outputs (not OpenVINO's stateful form).
The context length, ONNX metadata in the export, goes into the IR's rt_info.

Compression: nncf.compress_weights, weight-only and data-free (ov_int8, ov_int4; edgekd/runtimes/openvino_convert.py,
which converts, compresses and saves: lm/ imports no runtime). The CPU plugin decompresses the weights inside its
FullyConnected kernels.

The runner (OpenVinoDecoder) has OnnxDecoder's interface (decoder.Decoder), so generate(), bench and
onnx_perplexity() run it unchanged; like OnnxDecoder it needs numpy and the runtime only, no torch.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Optional

import numpy as np

from edgekd.core.errors import ArtifactError, ConfigError, openvino_reason
from edgekd.lm.decoder import CONTEXT_KEY, empty_kv_cache, step_inputs
from edgekd.runtimes.openvino import OpenVinoBackend
from edgekd.runtimes.openvino_convert import Compression, compress_weights, convert_onnx, save_ir

OV_METHODS = OpenVinoBackend.decoder_methods  # ov_int8, ov_int4: the OpenVINO backend's
CONTEXT_INFO = ["edgekd", "lm_context"]  # rt_info path of the context length in the IR
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


class OpenVinoDecoder:
    """One step of an IR decoder on OpenVINO's CPU plugin, with OnnxDecoder's interface (decoder.Decoder).

    INFERENCE_PRECISION_HINT f32 is set explicitly: on CPUs with AMX or AVX512-BF16 OpenVINO otherwise runs
    float layers in bf16 (edgekd/runtimes/openvino.py), and the fp32 candidate would not be fp32."""

    def __init__(self, path: str | Path, threads: Optional[int] = None):
        from edgekd.runtimes.openvino import openvino_core

        self.path = Path(path)
        if not self.path.is_file() or not self.path.with_suffix(".bin").is_file():
            raise ArtifactError(f"{self.path}: OpenVINO IR (.xml with its .bin beside it) not found; make one with "
                                "edgekd.lm.openvino.convert_decoder")
        config = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        core = openvino_core()
        try:
            model = core.read_model(str(self.path))
            compiled = core.compile_model(model, "CPU", config)
        except Exception as exc:  # OpenVINO raises RuntimeErrors for damaged IR and for missing kernels alike
            raise ArtifactError(f"{self.path}: OpenVINO cannot load it ({openvino_reason(exc)})") from None
        inputs = {port.get_any_name(): port for port in model.inputs}
        past = sorted(name for name in inputs if name.startswith("past_key_values."))
        if "input_ids" not in inputs or not past:
            raise ArtifactError(f"{self.path}: not a decoder with a KV cache (needs input_ids and past_key_values.N.key/value inputs)")
        self.past_names = [f"past_key_values.{i}.{kv}" for i in range(len(past) // 2) for kv in ("key", "value")]
        shape = inputs[self.past_names[0]].get_partial_shape()
        self.heads, self.head_size = shape[1].get_length(), shape[3].get_length()
        self.context = int(model.get_rt_info(CONTEXT_INFO).astype(int)) if model.has_rt_info(CONTEXT_INFO) else None
        self.output_names = [port.get_any_name() for port in compiled.outputs]
        self._request = compiled.create_infer_request()

    def empty_cache(self) -> list[np.ndarray]:
        return empty_kv_cache(len(self.past_names), self.heads, self.head_size)

    def step(self, new_ids: np.ndarray, cache: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        """Logits for each new token (batch 1) and the cache grown by them."""
        feed = step_inputs(new_ids, cache, self.past_names)
        # share_inputs: no copy of the cache going in; outputs are copied (the default), since the request
        # reuses its output buffers on the next step while the caller still holds this step's cache.
        result = self._request.infer(feed, share_inputs=True)
        logits, *present = (result[name] for name in self.output_names)
        return logits[0], present
