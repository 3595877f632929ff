"""Generation speed and greedy agreement (edgekd.lang.generation_bench), what the pipeline's bench stage runs, torch-free."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tests.blocking import BLOCK_TORCH

pytest.importorskip("transformers")
pytest.importorskip("onnxruntime")
pytest.importorskip("torch")

from edgekd.lang.generate import generate  # noqa: E402
from edgekd.lang.generation_bench import generation_speed, greedy_agreement, speed_at_fastest_threads  # noqa: E402
from edgekd.lm.export import export_decoder  # noqa: E402
from edgekd.lm.models import LMShape, build_lm, gpt2_config  # noqa: E402
from edgekd.runtimes.ort import OnnxDecoder  # noqa: E402
from edgekd.runtimes.registry import load_decoder  # noqa: E402

PROMPTS = [np.array([1, 2, 3]), np.array([17, 5]), np.array([250, 4, 99])]


@pytest.fixture(scope="module")
def two_decoders(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lm-bench")
    config = gpt2_config(300, LMShape(layers=1, width=32, heads=2, context=32), eos_id=0)
    return [export_decoder(build_lm(config, seed=seed), folder / f"decoder-{seed}.onnx") for seed in (0, 1)]


def test_speed_has_every_timing_per_model(two_decoders):
    decoders = {"a": OnnxDecoder(two_decoders[0]), "b": OnnxDecoder(two_decoders[1])}
    speed = generation_speed(decoders, PROMPTS, new_tokens=6, rounds=2)
    for row in speed.values():
        assert row["generations"] == len(PROMPTS) * 2 and row["tokens_per_second"] > 0
        assert row["time_to_first_token_ms"] > 0 and 0 < row["per_token_p50_ms"] <= row["per_token_p99_ms"]


def test_each_model_is_reported_at_its_faster_thread_count(two_decoders):
    paths = {"a": two_decoders[0], "b": two_decoders[1]}
    best, by_threads = speed_at_fastest_threads(lambda threads: {name: load_decoder(path, threads) for name, path in paths.items()},
                                                PROMPTS, new_tokens=4, rounds=1, thread_counts=(1, 2))
    assert set(by_threads) == {1, 2} and set(best) == {"a", "b"}
    for name, row in best.items():
        assert row["tokens_per_second"] == max(by_threads[t][name]["tokens_per_second"] for t in (1, 2))
        assert by_threads[row["threads"]][name]["tokens_per_second"] == row["tokens_per_second"]


def test_agreement_counts_equal_greedy_tokens(two_decoders):
    first, second = OnnxDecoder(two_decoders[0]), OnnxDecoder(two_decoders[1])
    assert greedy_agreement(first, first, PROMPTS, 8) == {"token_agreement": 1.0, "equal_sequences": 3, "prompts": 3, "new_tokens": 8}
    expected = sum(x == y for p in PROMPTS for x, y in zip(generate(first, p, 8).tokens, generate(second, p, 8).tokens))
    assert greedy_agreement(first, second, PROMPTS, 8)["token_agreement"] == round(expected / 24, 4)


def test_bench_runs_with_torch_blocked(two_decoders):
    code = BLOCK_TORCH + textwrap.dedent(f"""
        import json
        import numpy as np
        from edgekd.lang.generation_bench import generation_speed, greedy_agreement
        from edgekd.runtimes.ort import OnnxDecoder
        decoder = OnnxDecoder({str(two_decoders[0])!r})
        prompts = [np.array([1, 2, 3])]
        print(json.dumps(greedy_agreement(decoder, decoder, prompts, 4)), generation_speed({{"a": decoder}}, prompts, 4)["a"]["generations"])
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    agreement, generations = done.stdout.rsplit(" ", 1)
    assert json.loads(agreement)["token_agreement"] == 1.0 and int(generations) == 1
