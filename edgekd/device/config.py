"""The bench and gate sections: how artifacts are timed, and what a release must meet. Their defaults are the
defaults of `edgekd bench`, `edgekd gate`, api.bench and api.gate too (BENCH_DEFAULTS; Thresholds' own)."""
from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field

from edgekd.core.sections import Strict
from edgekd.device.gate import Thresholds
from edgekd.device.latency import LatencySpec


class BenchConfig(Strict):
    eval_samples: int = Field(500, ge=1, description="size of the evaluation subset shipped as eval.npz")
    warmup_runs: int = Field(10, ge=0)
    warmup_seconds: float = Field(0.2, ge=0)
    runs: int = Field(50, ge=1, description="at least this many timed runs...")
    min_seconds: float = Field(0.5, ge=0, description="...and at least this long")
    rounds: int = Field(5, ge=1, description="candidates are timed interleaved in this many rounds")
    batch_size: int = Field(8, ge=1)
    threads: Optional[int] = Field(None, ge=1, description="overrides the target profile's threads")
    memory: bool = Field(True, description="peak resident memory per artifact, from a fresh subprocess each (~1 s per artifact)")

    def latency_spec(self) -> LatencySpec:
        return LatencySpec(self.warmup_runs, self.warmup_seconds, self.runs, self.min_seconds, self.rounds)


_GATE = Thresholds()  # the one place the gate's defaults are written


class GateConfig(Strict):
    reference: Literal["teacher", "student_fp32"] = _GATE.reference
    max_drop: float = Field(_GATE.max_drop, ge=0, description="points of top-1 (absolute) or percent (relative)")
    drop_type: Literal["absolute", "relative"] = _GATE.drop_type
    min_speedup: Optional[float] = Field(_GATE.min_speedup, gt=0, description="over the fp32 baseline on the same target")
    max_size_kb: Optional[float] = Field(_GATE.max_size_kb, gt=0)
    allow_empty: bool = Field(_GATE.allow_empty, description="pass when no check could be evaluated on this machine (e.g. only "
                                                             "TensorRT targets built on a workstation); otherwise that fails the gate")

    def thresholds(self) -> Thresholds:
        """The section as the gate applies it (validated here already)."""
        return Thresholds(**self.model_dump())


BENCH_DEFAULTS = BenchConfig()
