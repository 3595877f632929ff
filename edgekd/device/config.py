"""The bench and gate sections: how artifacts are timed, and what a release must meet."""
from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field

from edgekd.core.sections import Strict


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


class GateConfig(Strict):
    reference: Literal["teacher", "student_fp32"] = "student_fp32"
    max_drop: float = Field(1.0, ge=0, description="points of top-1 (absolute) or percent (relative)")
    drop_type: Literal["absolute", "relative"] = "absolute"
    min_speedup: Optional[float] = Field(None, gt=0, description="over the fp32 baseline on the same target")
    max_size_kb: Optional[float] = Field(None, gt=0)
    allow_empty: bool = Field(False, description="pass when no check could be evaluated on this machine (e.g. only "
                                                 "TensorRT targets built on a workstation); otherwise that fails the gate")
