"""Running the teacher once over the training blocks to fill the top-k cache (cache.py)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from edgekd.lm.cache import TopKEntry, TopKLogitCache, cache_key
from edgekd.train.distill.cache import weights_digest  # the teacher's identity in the cache key, as for images


@torch.no_grad()
def teacher_topk(model: torch.nn.Module, ids: torch.Tensor, k: int, temperature: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The k largest next-token logits per position, their ids, and log sum exp(z / T) over the whole vocabulary."""
    logits = model(input_ids=ids).logits.float()
    values, indices = logits.topk(k, dim=-1)
    return values, indices, torch.logsumexp(logits / temperature, dim=-1)


def cached_targets(model: torch.nn.Module, blocks: np.ndarray, root: str | Path, k: int, temperature: float,
                   batch_size: int = 16, max_bytes: int | None = None) -> TopKEntry:
    """The teacher's top-k targets for `blocks` from the cache, computing and storing them on a miss."""
    cache = TopKLogitCache(root) if max_bytes is None else TopKLogitCache(root, max_bytes)
    key = cache_key(weights_digest(model), blocks, k, temperature)
    found = cache.open(key)
    if found is not None:
        return found
    entry = cache.create(key, len(blocks), blocks.shape[1], k, temperature, {"teacher_parameters": sum(p.numel() for p in model.parameters())})
    model.eval()
    for start in range(0, len(blocks), batch_size):
        ids = torch.from_numpy(np.asarray(blocks[start:start + batch_size], dtype=np.int64))
        values, indices, lse = teacher_topk(model, ids, k, temperature)
        entry.write(start, values.numpy().astype(np.float16), indices.numpy().astype(np.int32), lse.numpy())
    entry.finish()
    return cache.open(key)
