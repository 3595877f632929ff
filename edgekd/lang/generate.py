"""Text generation from an exported decoder with numpy only: what a device runs. The decoder sessions are the
backends' (Backend.decoder, opened by edgekd.runtimes.registry.load_decoder: runtimes/ort.py, openvino.py); this
module declares the interface it steps (Decoder) and imports no runtime, so the torch-free task code stands on
core/ alone and device/ above it.

One step feeds the new tokens and the cache of everything before them, and gets the next-token logits and
the grown cache back: the prompt in one step, then one token per step. Timing per call: the time to the first
token (prompt step plus choosing the token) and each later token's time, from which per-token p50 / p99 and
tokens per second (decode rate, first token excluded, as llama.cpp and onnxruntime-genai report it) follow.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Protocol

import numpy as np

from edgekd.core.errors import ConfigError


class Decoder(Protocol):
    """What generate(), generation_bench and perplexity.onnx_perplexity need of a decoder: runtimes.ort.OnnxDecoder,
    or runtimes.openvino.OpenVinoDecoder for an OpenVINO IR (each backend's Backend.decoder opens its own)."""

    path: Path
    context: Optional[int]  # the longest prompt + generation, or None when the file does not say

    def empty_cache(self) -> list[np.ndarray]: ...

    def step(self, new_ids: np.ndarray, cache: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]: ...


@dataclass
class Generation:
    tokens: list[int]
    first_token_seconds: float
    token_seconds: list[float] = field(default_factory=list)  # each token after the first

    def timing(self) -> dict:
        later = np.asarray(self.token_seconds, dtype=np.float64)
        p50, p99 = (np.percentile(later, [50, 99]) * 1e3).tolist() if later.size else (None, None)
        return {"new_tokens": len(self.tokens), "time_to_first_token_ms": self.first_token_seconds * 1e3,
                "per_token_ms": {"p50": p50, "p99": p99},
                "tokens_per_second": float(later.size / later.sum()) if later.size and later.sum() > 0 else None}


def generate(decoder: Decoder, prompt_ids, new_tokens: int, top_k: Optional[int] = None, temperature: float = 1.0,
             seed: int = 0, stop_id: Optional[int] = None) -> Generation:
    """Greedy continuation (top_k None), or sampling among the top_k most likely tokens at `temperature`."""
    prompt = np.asarray(prompt_ids, dtype=np.int64).reshape(-1)
    _check_request(decoder, prompt, new_tokens, top_k, temperature)
    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    logits, cache = decoder.step(prompt, decoder.empty_cache())
    token = _choose(logits[-1], top_k, temperature, rng)
    result = Generation([token], time.perf_counter() - started)
    while len(result.tokens) < new_tokens and token != stop_id:
        started = time.perf_counter()
        logits, cache = decoder.step(np.asarray([token]), cache)
        token = _choose(logits[-1], top_k, temperature, rng)
        result.token_seconds.append(time.perf_counter() - started)
        result.tokens.append(token)
    return result


def _choose(logits: np.ndarray, top_k: Optional[int], temperature: float, rng: np.random.Generator) -> int:
    if top_k is None:
        return int(np.argmax(logits))
    if top_k > logits.size:  # argpartition's kth would be out of bounds (callers with the vocabulary check sooner)
        raise ConfigError(f"top_k {top_k}: the model has {logits.size} tokens; give at most {logits.size}")
    candidates = np.argpartition(logits, -top_k)[-top_k:]
    scaled = logits[candidates].astype(np.float64) / temperature
    probabilities = np.exp(scaled - scaled.max())
    return int(rng.choice(candidates, p=probabilities / probabilities.sum()))


def _check_request(decoder: Decoder, prompt: np.ndarray, new_tokens: int, top_k: Optional[int], temperature: float) -> None:
    if prompt.size == 0:
        raise ConfigError("generate: the prompt is empty; give at least one token")
    if new_tokens < 1:
        raise ConfigError(f"generate: new_tokens {new_tokens}; ask for at least one token")
    if top_k is not None and top_k < 1:
        raise ConfigError(f"generate: top_k {top_k}; use a positive number, or None for greedy")
    if temperature <= 0:
        raise ConfigError(f"generate: temperature {temperature}; use a positive number (greedy is top_k None)")
    if decoder.context is not None and prompt.size + new_tokens > decoder.context:
        raise ConfigError(f"generate: {prompt.size} prompt + {new_tokens} new tokens exceed the model's context of "
                          f"{decoder.context}; shorten the prompt or ask for fewer tokens")
