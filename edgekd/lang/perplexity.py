"""Perplexity over held-out blocks: exp(mean next-token cross-entropy), the issue's gate metric.

The ONNX version needs numpy and onnxruntime only (a device measures its own int8 file), and so does this module
(the device imports it): the PyTorch version, the reference for the fp32 model, is lm/training.torch_perplexity.
Each block is scored on its own, from an empty cache, so both see the same contexts.
"""
from __future__ import annotations

import math

import numpy as np

from edgekd.core.errors import DataError


def onnx_perplexity(decoder, blocks: np.ndarray) -> float:
    """Perplexity of a decoder (decoder.Decoder: OnnxDecoder, or OpenVinoDecoder) over (n, length) token blocks."""
    total, count = 0.0, 0
    for block in checked_blocks(blocks):
        logits, _ = decoder.step(block, decoder.empty_cache())
        total += float(next_token_nll(logits, block).sum())
        count += len(block) - 1
    return math.exp(total / count)


def next_token_nll(logits: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """The cross-entropy (float64) of each next token: logits (..., length, vocab) computed from token ids (...,
    length) score tokens[..., 1:] from positions [..., :-1], giving (..., length - 1). The one definition of
    perplexity, exp(mean), on the device (onnx_perplexity) and in the pipeline's task (pipeline/task.py)."""
    shifted = np.asarray(logits, dtype=np.float64)[..., :-1, :]
    shifted = shifted - shifted.max(axis=-1, keepdims=True)
    targets = np.asarray(tokens)[..., 1:, None]
    return np.log(np.exp(shifted).sum(axis=-1)) - np.take_along_axis(shifted, targets, axis=-1)[..., 0]


def checked_blocks(blocks: np.ndarray) -> np.ndarray:
    """(n >= 1, length >= 2) token ids, or one line saying what was given."""
    blocks = np.asarray(blocks)
    if blocks.ndim != 2 or blocks.shape[0] == 0 or blocks.shape[1] < 2:
        raise DataError(f"perplexity: blocks of shape {blocks.shape}; give (n >= 1, length >= 2) token ids")
    return blocks
