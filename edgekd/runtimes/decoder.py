"""What a language model's decoder sessions share (ort.OnnxDecoder, openvino.OpenVinoDecoder, each opened by its
backend's Backend.decoder and stepped one token at a time with an explicit KV cache): the metadata keys of the
context length, the empty KV cache and one step's inputs. numpy only, below both runners. The interface they meet
is edgekd.lang.generate.Decoder, declared where it is used (the generation loop, which imports no runtime).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

CONTEXT_KEY = "edgekd.lm.context"  # ONNX metadata: the longest sequence the model was built for
CONTEXT_INFO = ["edgekd", "lm_context"]  # rt_info path of the context length in an OpenVINO IR (openvino_convert.py)


@dataclass(frozen=True)
class DecoderOptions:
    """How a decoder is quantized besides its method (Backend.quantize_decoder): onnxruntime's dynamic int8 with 7-bit
    weights where the host's int8 kernels saturate (quant/host.py decides), MatMulNBits' block size, ov_int4's
    settings (openvino_convert.Compression)."""

    reduce_range: bool = False
    block_size: int = 32
    int4_mode: str = "sym"
    group_size: Optional[int] = None
    ratio: float = 1.0


# What a decoder's quantize entry records of how its weights were quantized (Backend.quantize_decoder), as the reports
# and bundles show it beside the candidate's name: int8 names the quantized candidate whatever its bits.
QUANTIZATION_SETTINGS = ("weight_bits", "mode", "group_size", "ratio", "block_size")


def quantization_settings(entry: dict) -> dict:
    return {key: entry[key] for key in QUANTIZATION_SETTINGS if entry.get(key) is not None}


def empty_kv_cache(entries: int, heads: int, head_size: int) -> list[np.ndarray]:
    """A KV cache holding no tokens: `entries` arrays (a key and a value per layer) of shape (1, heads, 0, head_size)."""
    return [np.zeros((1, heads, 0, head_size), dtype=np.float32) for _ in range(entries)]


def step_inputs(new_ids: np.ndarray, cache: list[np.ndarray], past_names: list[str]) -> dict[str, np.ndarray]:
    """One decoding step's inputs at batch 1, the same for every runtime: the new tokens, a mask over the cached and
    new positions, their positions, and the cache under its input names."""
    past, seq = cache[0].shape[2], len(new_ids)
    return {"input_ids": np.asarray(new_ids, dtype=np.int64).reshape(1, seq),
            "attention_mask": np.ones((1, past + seq), dtype=np.int64),
            "position_ids": np.arange(past, past + seq, dtype=np.int64).reshape(1, seq),
            **dict(zip(past_names, cache))}
