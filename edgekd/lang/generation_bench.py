"""Generation speed and agreement of exported decoders, with onnxruntime or OpenVINO and numpy only (what a device runs).

Speed: greedy generation at batch 1 from each prompt, the models interleaved prompt by prompt (so a slow
moment of a shared machine falls on all of them), after one warm-up generation each; medians over prompts x
rounds of the time to first token, per-token p50 / p99 and the decode rate (generate.Generation.timing).
Agreement: greedy tokens of a model equal to a reference model's, position by position, and whole sequences.
"""
from __future__ import annotations

import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Optional

import numpy as np

from edgekd.core.errors import DataError
from edgekd.core.option_names import bench_option
from edgekd.lang.generate import Decoder, generate


def generation_speed(decoders: dict[str, Decoder], prompts: list[np.ndarray], new_tokens: int, rounds: int = 1,
                     top_k: Optional[int] = None, temperature: float = 1.0, seed: int = 0, per_generation: bool = False) -> dict:
    """Greedy by default; with `top_k`, sampling at `temperature`. Each generation of a prompt draws from the same
    seed in every model, so the models are timed on the same kind of choices. `per_generation`: each model's result
    also lists the tokens/s of every generation in order ("tokens_per_second_each"), the i-th of every model timed
    back to back on the same prompt: the pairs device.noise.compare_rates compares."""
    sampling = {"top_k": top_k, "temperature": temperature}
    for decoder in decoders.values():
        generate(decoder, prompts[0], new_tokens, **sampling, seed=seed)
    timings: dict[str, list[dict]] = {name: [] for name in decoders}
    for round_index in range(rounds):
        for index, prompt in enumerate(prompts):
            for name, decoder in decoders.items():
                draw = seed + round_index * len(prompts) + index
                timings[name].append(generate(decoder, prompt, new_tokens, **sampling, seed=draw).timing())
    out = {name: _medians(rows) for name, rows in timings.items()}
    if per_generation:
        for name, rows in timings.items():
            out[name]["tokens_per_second_each"] = [row["tokens_per_second"] for row in rows]
    return out


def held_out_prompts(blocks: np.ndarray, count: int, tokens: int) -> list[np.ndarray]:
    """Prompts from held-out token blocks: the first `tokens` of `count` blocks spread evenly over them."""
    rows = np.unique(np.linspace(0, len(blocks) - 1, count).astype(int))
    return [blocks[row, :tokens] for row in rows]


def speed_at_fastest_threads(decoders_at: Callable[[int], dict[str, Decoder]], prompts: list[np.ndarray],
                             new_tokens: int, rounds: int = 1, thread_counts: tuple[int, ...] = (1, 2)) -> tuple[dict, dict]:
    """generation_speed of each model at each intra-op thread count (models interleaved per prompt), and per model
    the count with the most tokens/s (its row gains "threads"). `decoders_at(threads)` opens the models at that
    count, name -> decoder (e.g. with runtimes.registry.load_decoder). At batch 1 a small decoder's products are too
    small to split: on a 2-core machine 2 threads halved a 2 x 128 student's decode rate, so a fair comparison of
    two files puts each at its own faster setting."""
    by_threads = {threads: generation_speed(decoders_at(threads), prompts, new_tokens, rounds) for threads in thread_counts}
    best = {}
    for name in by_threads[thread_counts[0]]:
        threads = max(by_threads, key=lambda t: by_threads[t][name]["tokens_per_second"] or 0.0)
        best[name] = {**by_threads[threads][name], "threads": threads}
    return best, by_threads


def _medians(rows: list[dict]) -> dict:
    def median(values):
        values = [v for v in values if v is not None]
        return statistics.median(values) if values else None

    def rounded(value, digits):
        return None if value is None else round(value, digits)

    return {"tokens_per_second": rounded(median(r["tokens_per_second"] for r in rows), 1),
            "time_to_first_token_ms": rounded(median(r["time_to_first_token_ms"] for r in rows), 2),
            "per_token_p50_ms": rounded(median(r["per_token_ms"]["p50"] for r in rows), 3),
            "per_token_p99_ms": rounded(median(r["per_token_ms"]["p99"] for r in rows), 3), "generations": len(rows)}


def greedy_agreement(reference: Decoder, other: Decoder, prompts: list[np.ndarray], new_tokens: int) -> dict:
    """Fraction of greedy tokens of `other` equal to `reference`'s at the same position, and equal continuations."""
    same_tokens, same_sequences = 0, 0
    for prompt in prompts:
        a, b = generate(reference, prompt, new_tokens).tokens, generate(other, prompt, new_tokens).tokens
        same_tokens += sum(x == y for x, y in zip(a, b))
        same_sequences += a == b
    return {"token_agreement": round(same_tokens / (len(prompts) * new_tokens), 4), "equal_sequences": int(same_sequences),
            "prompts": len(prompts), "new_tokens": new_tokens}


def text_prompts(path: Path, tokenizer_path: Path, context: int, new_tokens: int) -> list[np.ndarray]:
    """One prompt per non-blank line of a UTF-8 file (`edgekd bench --texts`), tokenized with the model's tokenizer (no
    special tokens added); a line that does not fit `context` with `new_tokens` more is one line naming it."""
    from edgekd.lang.lm_tokenizer import LMTokenizer

    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise DataError(f"{bench_option('--texts', path)}: not UTF-8 text (byte {exc.start}); give one prompt per line in UTF-8") from None
    numbered = [(number, line) for number, line in enumerate(lines, 1) if line.strip()]
    if not numbered:
        raise DataError(f"{bench_option('--texts', path)}: no prompt in it; write one prompt per line")
    tokenizer = LMTokenizer(tokenizer_path)
    prompts = []
    for number, line in numbered:
        ids = tokenizer.encode(line).astype(np.int64)
        if context and len(ids) >= context:  # no --new-tokens can help: the prompt alone fills the context
            raise DataError(f"{bench_option('--texts', path)}: line {number} is {len(ids)} tokens, more than the model's context of {context}: "
                            f"shorten it to under {context} tokens, leaving room for the new ones")
        if context and len(ids) + new_tokens > context:
            raise DataError(f"{bench_option('--texts', path)}: line {number} is {len(ids)} tokens, and with {new_tokens} new tokens that "
                            f"exceeds the model's context of {context}; shorten it or pass {bench_option('--new-tokens', context - len(ids))} "
                            "or less")
        prompts.append(ids)
    return prompts
