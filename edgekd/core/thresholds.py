"""The release gate's thresholds: one pydantic model and its one validator, shared by the pipeline config's gate
section, the target profiles' gate section, the device gate (`edgekd gate`), api.gate and the CLI.

It lives in core because the profiles (runtimes/) and the device gate (device/) both use it and neither may import
the other's layer, nor the pipeline. Defaults are written here and nowhere else.
A profile's gate section is the same model with only the keys it sets meaning anything (`given()`): an unset
max_drop in a profile leaves the pipeline's gate.max_drop in charge (pipeline.selection.accuracy_limit)."""
from __future__ import annotations

import math
from typing import Any, Optional

from pydantic import Field, ValidationError, field_validator, model_serializer

from edgekd.core.metrics import DROP_TYPES
from edgekd.core.sections import Strict

_NUMBERS = ("max_drop", "min_speedup", "max_size_kb", "max_metric_drop", "min_cosine", "min_sqnr_db", "max_increase",
            "min_greedy_agreement")
# Limits on how far each output departs from the fp32 model's (a fidelity task's outputs, or a classifier's logits), and
# a language model's on perplexity (core.metrics.PERPLEXITY). Left out of dumps while unset, so that configs and bundles
# that do not use them dump as before (stage keys, --resume).
LEFT_OUT_UNSET = ("max_metric_drop", "min_cosine", "min_sqnr_db", "max_increase", "min_greedy_agreement")
_MAY_BE_ZERO = ("max_drop", "max_metric_drop", "max_increase", "min_greedy_agreement")


class Thresholds(Strict):
    """What a release must meet (edgekd gate, the pipeline's gate stage); null switches a numeric check off."""

    # A bad value is a pydantic ValidationError (a ValueError) naming the field; config files and profiles turn it
    # into a ConfigError naming the file too (load_yaml_model), api.gate into one naming the argument or the report
    # (threshold_error). No custom __init__: pydantic would route the config's nested gate section through it.

    reference: str = Field("student_fp32", description="a report reference (teacher, student_fp32) or an artifact row "
                                                        "such as x86-cpu/fp32")
    max_drop: Optional[float] = Field(1.0, description="points of top-1 (absolute) or percent (relative)")
    drop_type: str = Field("absolute", description="absolute or relative")
    min_speedup: Optional[float] = Field(None, description="over the fp32 baseline on the same target")
    max_size_kb: Optional[float] = None
    max_metric_drop: Optional[float] = Field(None, description="points of a named task metric (task.metric, e.g. mask_iou) "
                                                              "that int8 may lose; unset: max_drop applies to it")
    min_cosine: Optional[float] = Field(None, description="lowest cosine of any output with the fp32 model's (-1..1)")
    min_sqnr_db: Optional[float] = Field(None, description="lowest SQNR in dB of any output against the fp32 model's")
    max_increase: Optional[float] = Field(None, description="a language model's test perplexity at most (1 + this) x the "
                                                            "reference's (0.03: 3%)")
    min_greedy_agreement: Optional[float] = Field(None, description="a language model's greedy tokens equal to the fp32 "
                                                                    "student's, at least this fraction")
    allow_empty: bool = Field(False, description="pass when no check could be evaluated on this machine (e.g. only "
                                                 "TensorRT targets built on a workstation); otherwise that fails the gate")

    @field_validator("*", mode="before")
    @classmethod
    def _check(cls, value: Any, info) -> Any:
        if problem := threshold_problem(info.field_name, value):
            raise ValueError(problem)
        return value

    @model_serializer(mode="wrap")
    def _dumped(self, handler) -> dict[str, Any]:
        dumped = handler(self)
        return {k: v for k, v in dumped.items() if k not in LEFT_OUT_UNSET or v is not None}

    def metric_drop_limit(self, metric: str = "top1") -> float | None:
        """The drop limit of a task metric: max_metric_drop for a named metric other than top-1 when set, else max_drop."""
        return self.max_metric_drop if metric != "top1" and self.max_metric_drop is not None else self.max_drop

    def given(self) -> dict[str, Any]:
        """The keys set explicitly (a target profile's gate section: only these override the pipeline's)."""
        return {name: getattr(self, name) for name in self.model_fields_set}


THRESHOLD_NAMES = tuple(Thresholds.model_fields)


def threshold_problem(name: str, value: Any) -> str | None:
    """What is wrong with one threshold value (None: nothing). The model's validator; callers build Thresholds."""
    if name in _NUMBERS:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"must be a number, not {type(value).__name__} {value!r}"
        if not math.isfinite(value):  # nan compares false with everything: it would pass or fail every check
            return f"must be a finite number, got {value!r}"
        if name == "min_cosine" and not -1 <= value <= 1:
            return f"must be between -1 and 1, got {value!r}"
        if name in ("min_cosine", "min_sqnr_db"):  # a cosine or a dB figure may be 0 or below
            return None
        if value < 0 or (value == 0 and name not in _MAY_BE_ZERO):
            return f"must be {'>= 0' if name in _MAY_BE_ZERO else '> 0'}, got {value!r}"
        if name == "min_greedy_agreement" and value > 1:
            return f"must be a fraction between 0 and 1, got {value!r}"
    elif name == "drop_type" and value not in DROP_TYPES:
        return f"must be one of {', '.join(DROP_TYPES)}, got {value!r}"
    elif name == "reference" and (not isinstance(value, str) or not value):
        return f"must be a reference name such as student_fp32, teacher or x86-cpu/fp32, got {value!r}"
    elif name == "allow_empty" and not isinstance(value, bool):
        return f"must be true or false, got {value!r}"
    return None


def threshold_error(exc: ValidationError) -> str:
    """'field: problem' for the first error of a Thresholds validation."""
    error = exc.errors()[0]
    key = ".".join(str(part) for part in error["loc"])
    if error["type"] == "extra_forbidden":
        return f"unknown threshold '{key}'; valid: {', '.join(THRESHOLD_NAMES)}"
    return f"{key}: {error['msg'].removeprefix('Value error, ')}"
