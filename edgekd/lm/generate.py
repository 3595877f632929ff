"""Text generation from an exported decoder (export.py) with onnxruntime (or OpenVINO, openvino.py) and numpy
only: what a device runs.

One step feeds the new tokens and the cache of everything before them, and gets the next-token logits and
the grown cache back: the prompt in one step, then one token per step. Timing per call: the time to the first
token (prompt step plus choosing the token) and each later token's time, from which per-token p50 / p99 and
tokens per second (decode rate, first token excluded, as llama.cpp and onnxruntime-genai report it) follow.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from edgekd.core.errors import ArtifactError, ConfigError
from edgekd.lm.decoder import CONTEXT_KEY, Decoder, empty_kv_cache, step_inputs


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


def load_decoder(path: str | Path, threads: Optional[int] = None) -> Decoder:
    """The decoder for a model file: an OpenVINO IR (.xml) or an ONNX file (anything else)."""
    if Path(path).suffix == ".xml":
        from edgekd.lm.openvino import OpenVinoDecoder

        return OpenVinoDecoder(path, threads)
    return OnnxDecoder(path, threads)


class OnnxDecoder:
    def __init__(self, path: str | Path, threads: Optional[int] = None):
        from edgekd.runtimes.ort import open_session

        self.path = Path(path)
        if not self.path.is_file():
            raise ArtifactError(f"{self.path}: decoder ONNX file not found; export one with edgekd.lm.export.export_decoder")
        try:
            self.session = open_session(self.path, threads)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types for damaged files
            raise ArtifactError(f"{self.path}: onnxruntime cannot load it ({str(exc).splitlines()[0][:160]})") from None
        inputs = {item.name: item for item in self.session.get_inputs()}
        past = sorted(name for name in inputs if name.startswith("past_key_values."))
        if "input_ids" not in inputs or not past:
            raise ArtifactError(f"{self.path}: not a decoder with a KV cache (needs input_ids and past_key_values.N.key/value inputs)")
        self.past_names = [f"past_key_values.{i}.{kv}" for i in range(len(past) // 2) for kv in ("key", "value")]
        _, self.heads, _, self.head_size = inputs[self.past_names[0]].shape
        self.output_names = [item.name for item in self.session.get_outputs()]
        context = self.session.get_modelmeta().custom_metadata_map.get(CONTEXT_KEY)
        self.context = int(context) if context else None

    def empty_cache(self) -> list[np.ndarray]:
        return empty_kv_cache(len(self.past_names), self.heads, self.head_size)

    def step(self, new_ids: np.ndarray, cache: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        """Logits for each new token (batch 1) and the cache grown by them."""
        logits, *present = self.session.run(self.output_names, step_inputs(new_ids, cache, self.past_names))
        return logits[0], present


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
