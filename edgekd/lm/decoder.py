"""What every decoder runner shares (OnnxDecoder in generate.py, OpenVinoDecoder in openvino.py): the Decoder
interface, the ONNX metadata key of the context length, the empty KV cache and one step's inputs. numpy only, and
below both runners, so that each imports it rather than the other."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Protocol

import numpy as np

CONTEXT_KEY = "edgekd.lm.context"  # ONNX metadata: the longest sequence the model was built for


class Decoder(Protocol):
    """What generate(), bench and onnx_perplexity() need of a decoder: generate.OnnxDecoder, or
    edgekd.lm.openvino.OpenVinoDecoder for an OpenVINO IR."""

    path: Path
    context: Optional[int]  # the longest prompt + generation, or None when the file does not say

    def empty_cache(self) -> list[np.ndarray]: ...

    def step(self, new_ids: np.ndarray, cache: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]: ...


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
