"""Checks a report.json on load: the types and ranges of every field the gate and compare read.

A hand-edited or foreign report must not turn into a verdict: top-1 on the percent scale (94.0) once gave a
drop of -9305 points and PASS, `top1: true` counted as 100 %, negative latencies gave a speedup and negative
bytes passed a size limit, and `p50_ms: 0` crashed the speedup. pydantic (strict mode: no bool for a number,
no string for a number) does the checking; other fields of the report are left as they are.
"""
from __future__ import annotations

from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from edgekd.core.errors import ArtifactError
from edgekd.core.metrics import metric_spec
from edgekd.device.report.build import REPORT_SCHEMA

# Fields a user is likely to get wrong, with what the value should look like.
_HINTS = {"top1": "a fraction of the evaluation samples between 0 and 1 (0.94, not 94.0)",
          "top5": "a fraction of the evaluation samples between 0 and 1 (0.94, not 94.0)",
          "p50_ms": "a latency in milliseconds greater than 0", "bytes": "a size in bytes (a whole number >= 0)",
          "gzip_bytes": "a size in bytes (a whole number >= 0)", "perplexity": "a perplexity greater than 0",
          "samples": "the number of evaluation samples (a whole number > 0)"}


def _fraction(required: bool = False):
    return Field(... if required else None, ge=0, le=1, allow_inf_nan=False)


class _Lenient(BaseModel):
    # strict: True, "0.9" and 1.0-for-an-int are refused rather than converted; extra fields are the report's own.
    model_config = ConfigDict(strict=True, extra="allow")


class _EvalSet(_Lenient):
    samples: Optional[int] = Field(None, gt=0)  # without it the gate compares drops within float rounding only
    sha256: Optional[str] = Field(None, min_length=1)


def _perplexity():
    return Field(None, gt=0, allow_inf_nan=False)


class _Reference(_Lenient):
    top1: Optional[float] = _fraction()  # required of a top-1 report's references (_Report._metric_in_references)
    top5: Optional[float] = _fraction()
    perplexity: Optional[float] = _perplexity()


class _Row(_Lenient):
    artifact: str = Field(min_length=1)
    target: Optional[str] = Field(None, min_length=1)  # the gate needs these two; edgekd compare does not
    precision: Optional[str] = Field(None, min_length=1)
    shipped: bool = False
    top1: Optional[float] = _fraction()
    top5: Optional[float] = _fraction()
    perplexity: Optional[float] = _perplexity()
    bytes: int = Field(ge=0)
    gzip_bytes: Optional[int] = Field(None, ge=0)
    p50_ms: Optional[float] = Field(None, gt=0, allow_inf_nan=False)


class _Report(_Lenient):
    # Present in every report edgekd writes; optional here so that edgekd compare still reads what it always read.
    eval_set: Optional[_EvalSet] = None
    references: Optional[dict[str, _Reference]] = None
    rows: list[_Row]
    gate: Optional[dict[str, Any]] = None  # its thresholds are checked where they are read (api._effective_thresholds)
    task_metric: Optional[str] = None

    @model_validator(mode="after")
    def _metric_in_references(self) -> _Report:
        """Every reference holds the report's metric (top-1, or a language model's perplexity)."""
        key = metric_spec(self.task_metric).key
        for name, reference in (self.references or {}).items():
            if getattr(reference, key) is None:
                raise ValueError(f"references.{name}.{key} is missing")
        return self


def check_report(data: Any, path: Any) -> dict[str, Any]:
    """`data` as read from `path` when it is a sound edgekd report; else ArtifactError naming the file and the field."""
    schema = data.get("schema") if isinstance(data, dict) else None
    if schema != REPORT_SCHEMA:
        raise ArtifactError(f"{path}: not an edgekd report (schema {schema!r}, expected {REPORT_SCHEMA!r}); "
                            "give the report.json written by edgekd run or edgekd bench")
    try:
        _Report.model_validate(data)
    except ValidationError as exc:
        raise ArtifactError(f"{path}: malformed report: {_describe(exc.errors()[0], data)}; "
                            "regenerate it with edgekd bench (or edgekd run)") from None
    return data


def _describe(error: dict[str, Any], data: dict[str, Any]) -> str:
    where = _field_name(error["loc"], data)
    if error["type"] == "value_error":  # the report's own checks (_metric_in_references) name the field themselves
        return error["msg"].removeprefix("Value error, ")
    if error["type"] == "missing":
        return f"{where} is missing"
    hint = _HINTS.get(str(error["loc"][-1]))
    expected = f"must be {hint}" if hint else error["msg"].replace("Input should", "should")
    return f"{where} {expected}, got {error.get('input')!r}"


def _field_name(loc: tuple, data: dict[str, Any]) -> str:
    """rows[2] (x86-cpu/int8).top1, references.teacher.top1, eval_set.samples."""
    name = ""
    for part in loc:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
        if isinstance(part, int) and loc[0] == "rows" and name == f"rows[{part}]":
            artifact = _artifact_of(data, part)
            name += f" ({artifact})" if artifact else ""
    return name


def _artifact_of(data: dict[str, Any], index: int) -> str | None:
    try:
        artifact = data["rows"][index]["artifact"]
    except (KeyError, IndexError, TypeError):
        return None
    return artifact if isinstance(artifact, str) else None
