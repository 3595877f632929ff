"""Perplexity over held-out blocks: exp(mean next-token cross-entropy), the issue's gate metric.

The ONNX version needs numpy and onnxruntime only (a device measures its own int8 file); the PyTorch version is
the reference for the fp32 model. Each block is scored on its own, from an empty cache, so both see the same
contexts.
"""
from __future__ import annotations

import math

import numpy as np

from edgekd.core.errors import DataError


def onnx_perplexity(decoder, blocks: np.ndarray) -> float:
    """Perplexity of a decoder (decoder.Decoder: OnnxDecoder, or OpenVinoDecoder) over (n, length) token blocks."""
    total, count = 0.0, 0
    for block in _checked(blocks):
        logits, _ = decoder.step(block, decoder.empty_cache())
        total += float(next_token_nll(logits, block).sum())
        count += len(block) - 1
    return math.exp(total / count)


def torch_perplexity(model, blocks: np.ndarray, batch_size: int = 16) -> float:
    """Perplexity of a PyTorch causal LM over the same blocks (batched: each row is independent)."""
    import torch
    import torch.nn.functional as F

    blocks = _checked(blocks)
    total = 0.0
    with torch.no_grad():
        for start in range(0, len(blocks), batch_size):
            ids = torch.from_numpy(blocks[start:start + batch_size].astype(np.int64))
            logits = model(input_ids=ids).logits[:, :-1].double()
            total += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), reduction="sum"))
    return math.exp(total / (blocks.shape[0] * (blocks.shape[1] - 1)))


def next_token_nll(logits: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """The cross-entropy (float64) of each next token: logits (..., length, vocab) computed from token ids (...,
    length) score tokens[..., 1:] from positions [..., :-1], giving (..., length - 1). The one definition of
    perplexity, exp(mean), on the device (onnx_perplexity) and in the pipeline's task (pipeline/task.py)."""
    shifted = np.asarray(logits, dtype=np.float64)[..., :-1, :]
    shifted = shifted - shifted.max(axis=-1, keepdims=True)
    targets = np.asarray(tokens)[..., 1:, None]
    return np.log(np.exp(shifted).sum(axis=-1)) - np.take_along_axis(shifted, targets, axis=-1)[..., 0]


def _checked(blocks: np.ndarray) -> np.ndarray:
    blocks = np.asarray(blocks)
    if blocks.ndim != 2 or blocks.shape[0] == 0 or blocks.shape[1] < 2:
        raise DataError(f"perplexity: blocks of shape {blocks.shape}; give (n >= 1, length >= 2) token ids")
    return blocks
