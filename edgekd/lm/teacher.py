"""Running the teacher once to fill the distillation caches: its top-k logits over the training blocks (cache.py)
and its own continuations of prompts for sequence-level KD (sequences.py)."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from edgekd.core.progress import progress
from edgekd.lm.cache import TopKEntry, TopKLogitCache, cache_key
from edgekd.lm.sequences import Decoding, SequenceCache, SequenceEntry, sequence_key
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


@torch.no_grad()
def teacher_continuations(model: torch.nn.Module, prompts: torch.Tensor, decoding: Decoding) -> torch.Tensor:
    """(batch, prompt + new_tokens) ids: `prompts` continued by the teacher with transformers' generate (the
    model's KV cache), for exactly decoding.new_tokens tokens.

    The end-of-text id is not a stop here: training blocks run across document boundaries, so the teacher
    continues past it as torch_greedy does. generate's defaults come from a neutral GenerationConfig, not the
    model's own (a checkpoint's generation_config.json could add a repetition penalty or top-p), and sampling
    draws from torch's generator seeded inside fork_rng, leaving the caller's random state as it was."""
    from transformers import GenerationConfig

    settings = {"do_sample": False} if decoding.greedy else {"do_sample": True, "top_k": decoding.top_k,
                                                               "temperature": decoding.temperature}
    own, model.generation_config = model.generation_config, GenerationConfig()
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(decoding.seed)
            return model.generate(input_ids=prompts, attention_mask=torch.ones_like(prompts), max_new_tokens=decoding.new_tokens,
                                  eos_token_id=None, pad_token_id=model.config.eos_token_id, **settings)
    finally:
        model.generation_config = own


def cached_sequences(model: torch.nn.Module, prompts: np.ndarray, root: str | Path, decoding: Decoding,
                     max_bytes: int | None = None) -> SequenceEntry:
    """The teacher's continuations of `prompts` from the cache, generated in batches and stored on a miss."""
    cache = SequenceCache(root) if max_bytes is None else SequenceCache(root, max_bytes)
    key = sequence_key(weights_digest(model), prompts, decoding)
    found = cache.open(key)
    if found is not None:
        return found
    entry = cache.create(key, len(prompts), prompts.shape[1], decoding.new_tokens, decoding.describe())
    model.eval()
    bar = progress(total=len(prompts), desc="teacher sequences", unit="prompt")  # minutes for a large teacher on a CPU
    for start in range(0, len(prompts), decoding.batch_size):
        ids = torch.from_numpy(np.asarray(prompts[start:start + decoding.batch_size], dtype=np.int64))
        # Each batch its own seed: a row's tokens depend on its own batch only, not on the draws before it.
        batch = replace(decoding, seed=decoding.seed + start)
        entry.write(start, teacher_continuations(model, ids, batch).numpy().astype(np.int32))
        bar.update(len(ids))
    bar.close()
    entry.finish()
    return cache.open(key)
