"""The bench section: how artifacts are timed. Its defaults are the defaults of `edgekd bench` and api.bench too
(BENCH_DEFAULTS). The gate section is edgekd.core.thresholds.Thresholds, used as is."""
from __future__ import annotations

from pydantic import Field

from edgekd.core.sections import Integer, OptionalInteger, Strict
from edgekd.device.latency import LatencySpec

# The longest warm-up or timing per artifact and batch size: ten minutes already steadies any latency; a typo such as
# 1e9 (31 years) would otherwise be taken, and found out only when the bench stage never ends.
MAX_BENCH_SECONDS = 600


class BenchConfig(Strict):
    eval_samples: Integer = Field(500, ge=1, description="size of the evaluation subset shipped as eval.npz")
    warmup_runs: Integer = Field(10, ge=0)
    warmup_seconds: float = Field(0.2, ge=0, le=MAX_BENCH_SECONDS)
    runs: Integer = Field(50, ge=1, description="at least this many timed runs...")
    min_seconds: float = Field(0.5, ge=0, le=MAX_BENCH_SECONDS, description=f"...and at least this long (seconds per artifact "
                                                                            f"and batch size, at most {MAX_BENCH_SECONDS})")
    rounds: Integer = Field(5, ge=1, description="candidates are timed interleaved in this many rounds")
    batch_size: Integer = Field(8, ge=1)
    threads: OptionalInteger = Field(None, ge=1, description="overrides the target profile's threads")
    memory: bool = Field(True, description="peak resident memory per artifact, from a fresh subprocess each (~1 s per artifact)")

    def latency_spec(self) -> LatencySpec:
        return LatencySpec(self.warmup_runs, self.warmup_seconds, self.runs, self.min_seconds, self.rounds)


BENCH_DEFAULTS = BenchConfig()


class GenerationBenchConfig(Strict):
    prompts: Integer = Field(20, ge=1, description="held-out prompts (test split) for generation")
    prompt_tokens: Integer = Field(32, ge=1)
    new_tokens: Integer = Field(64, ge=1)
    rounds: Integer = Field(1, ge=1, description="generations per prompt and model, interleaved")
    device_blocks: Integer = Field(64, ge=0, description="test blocks each bundle carries (eval.npz input_ids) for perplexity and "
                                                     "prompts in `edgekd bench` on the device; 0: none")
