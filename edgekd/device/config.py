"""The bench section: how artifacts are timed. Its defaults are the defaults of `edgekd bench` and api.bench too
(BENCH_DEFAULTS). The gate section is edgekd.core.thresholds.Thresholds, used as is."""
from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any, Optional

from pydantic import Field, ValidationError

from edgekd.core.sections import Integer, OptionalInteger, Strict
from edgekd.device.latency import LatencySpec

# The longest warm-up or timing per artifact and batch size: ten minutes already steadies any latency; a typo such as
# 1e9 (31 years) would otherwise be taken, and found out only when the bench stage never ends.
MAX_BENCH_SECONDS = 600


class BenchConfig(Strict):
    eval_samples: Integer = Field(500, ge=1, description="size of the evaluation subset shipped as eval.npz")
    warmup_runs: Integer = Field(10, ge=0)
    warmup_seconds: float = Field(0.2, ge=0, le=MAX_BENCH_SECONDS, allow_inf_nan=False)
    runs: Integer = Field(50, ge=1, description="at least this many timed runs...")
    min_seconds: float = Field(0.5, ge=0, le=MAX_BENCH_SECONDS, allow_inf_nan=False, description=f"...and at least this long (seconds per artifact "
                                                                            f"and batch size, at most {MAX_BENCH_SECONDS})")
    rounds: Integer = Field(5, ge=1, description="candidates are timed interleaved in this many rounds")
    batch_size: Integer = Field(8, ge=1)
    threads: OptionalInteger = Field(None, ge=1, description="overrides the target profile's threads")
    memory: bool = Field(True, description="peak resident memory per artifact, from a fresh subprocess each (~1 s per artifact)")

    def latency_spec(self) -> LatencySpec:
        return LatencySpec(self.warmup_runs, self.warmup_seconds, self.runs, self.min_seconds, self.rounds)


BENCH_DEFAULTS = BenchConfig()

# api.bench's arguments: the BenchConfig field that bounds each, and the `edgekd bench` flag that sets it
BENCH_ARGUMENTS = {"threads": ("threads", "--threads"), "runs": ("runs", "--runs"), "min_seconds": ("min_seconds", "--min-seconds"),
                   "warmup_runs": ("warmup_runs", "--warmup-runs"), "warmup_seconds": ("warmup_seconds", "--warmup-seconds"),
                   "rounds": ("rounds", "--rounds"), "batch_sizes": ("batch_size", "--batch"), "memory": ("memory", "--no-memory")}


def check_bench_arguments(function: str = "bench", **given: Any) -> dict[str, Any]:
    """api.bench's settings checked by the bench section's own fields (the bounds `edgekd bench`'s flags and the
    config's bench section have): each bad value one ConfigError naming the argument and the valid range, as the CLI
    words it (`not in the range x>=1`). Returns them normalized (numpy integers as int, batch sizes a tuple)."""
    checked = {}
    for name, value in given.items():
        field, flag = BENCH_ARGUMENTS[name]
        if name == "batch_sizes":
            if value is None:  # the bundles' own profiles' batch sizes (device/bench.py)
                checked[name] = None
                continue
            if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, set, frozenset)):
                raise _bench_error(function, name, value, flag, "expected a list of batch sizes, e.g. [1, 8]")
            checked[name] = tuple(_checked_value(function, name, field, flag, size) for size in value)
        else:
            checked[name] = _checked_value(function, name, field, flag, value)
    return checked


def _checked_value(function: str, name: str, field: str, flag: str, value: Any) -> Any:
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = int(value)  # numpy's integers too
    try:  # strict: "2", 2.5 and True are not thread counts
        return getattr(BenchConfig.model_validate({field: value}, strict=True), field)
    except ValidationError:
        raise _bench_error(function, name, value, flag, _valid_range(field)) from None


def _valid_range(field: str) -> str:
    info = BenchConfig.model_fields[field]
    if info.annotation is bool:
        return "expected True or False"
    bound = next((f"x>={m.ge}" for m in info.metadata if getattr(m, "ge", None) is not None), "")
    kind = "an integer" if info.annotation in (int, Optional[int]) else "a finite number"
    none = ", or None (the bundle's profile)" if info.default is None else ""
    return kind + (f" in the range {bound}" if bound else "") + none


def _bench_error(function: str, name: str, value: Any, flag: str, valid: str):
    from edgekd.core.errors import ConfigError

    return ConfigError(f"{function}(): invalid value for '{name}' ({flag}): {value!r}; expected {valid.removeprefix('expected ')}")


class GenerationBenchConfig(Strict):
    prompts: Integer = Field(20, ge=1, description="held-out prompts (test split) for generation")
    prompt_tokens: Integer = Field(32, ge=1)
    new_tokens: Integer = Field(64, ge=1)
    rounds: Integer = Field(1, ge=1, description="generations per prompt and model, interleaved")
    device_blocks: Integer = Field(64, ge=0, description="test blocks each bundle carries (eval.npz input_ids) for perplexity and "
                                                     "prompts in `edgekd bench` on the device; 0: none")
