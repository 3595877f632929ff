"""Running the teacher once over the training blocks to fill the top-k cache (cache.py)."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from edgekd.lm.cache import TopKEntry, TopKLogitCache, cache_key


def weights_digest(model: torch.nn.Module) -> str:
    """sha256 of every parameter and buffer (name, dtype, shape, bytes): the teacher's identity in the cache key.

    The same as edgekd/distill/cache.py's weights_digest; repeated here because edgekd.lm stays independent of
    the image pipeline's modules while the package layout is being reorganised."""
    digest = hashlib.sha256(type(model).__qualname__.encode())
    for name, tensor in sorted(model.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


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
