"""Typed stage records: what a later stage reads of an earlier one, as a class instead of string keys.

A stage returns its record in StageOutput.record; the runner writes it into the manifest with the stage's other
metrics (to_metrics), and a later stage reads it back with read_record(manifest, Record) (from_metrics). Those
two methods are the only places the manifest keys are spelled, and they are the keys manifests always had, so
run folders written before these classes existed still resume. A stage absent from the manifest (not run yet,
or --only) reads as the record's empty form, as the old `.get()` chains did.

Only what later stages read is typed here; the rest of a stage's metrics (losses, timings, verdicts) is the
run's record for people and stays a plain dict.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, TypeVar


class StageRecord(Protocol):
    stage: ClassVar[str]  # the manifest entry it lives in

    def to_metrics(self) -> dict[str, Any]: ...

    @classmethod
    def from_metrics(cls, metrics: dict[str, Any]) -> StageRecord: ...


Record = TypeVar("Record", bound=StageRecord)


def read_record(manifest, record: type[Record]) -> Record:
    """The `record` an earlier stage wrote into `manifest` (a RunManifest)."""
    return record.from_metrics(manifest.metrics(record.stage))

# The teachers stage's metrics key holding what pipeline/teacher_check.say_weak_members said of the ensemble's members.
MEMBER_WARNINGS = "member_warnings"


@dataclass(frozen=True)
class TeachersRecord:
    """Teachers stage (images and tables): what it warned of the ensemble's members, which the bench stage carries
    into the report (a weak member was said on the terminal and in the log only)."""

    stage: ClassVar[str] = "teachers"
    member_warnings: tuple[str, ...] = ()

    def to_metrics(self) -> dict[str, Any]:
        return {MEMBER_WARNINGS: list(self.member_warnings)}

    @classmethod
    def from_metrics(cls, metrics: dict[str, Any]) -> TeachersRecord:
        return cls(tuple(metrics.get(MEMBER_WARNINGS) or ()))  # runs from before the record: none


# How the quantize stage's int8 model can have been made, as its candidate is named (QuantizeRecord.int8_label).
INT8_NAMES = ("int8", "int8-qat", "int8-fallback")


@dataclass(frozen=True)
class StudentRecord:
    """Distill stage (every mode, and a model taken as given): which student it made, and for an ONNX student
    its inputs as the file declares them."""

    stage: ClassVar[str] = "distill"
    student_spec: dict[str, Any] | None = None  # online distillation's chosen peer; None: config.student
    input: dict[str, Any] | None = None  # an ONNX student's input spec (name, dtype, shape)
    inputs: list[dict[str, Any]] | None = None  # every input of an ONNX student
    # An ONNX file shipped as given: its sha256, opset upgrade, external data and quantized operators as the stage
    # recorded them (the stage writes those keys itself); None for a model the run made.
    given_onnx: dict[str, Any] | None = None
    # What the distill stage warned of the student (it ended clearly under its student.checkpoint): the bench stage
    # carries it into the report, and advises a lower learning rate rather than more epochs.
    student_warnings: list[str] | None = None

    @property
    def already_quantized(self) -> dict[str, int]:
        """The given ONNX file's quantized operators by type (runtimes/ptq.QUANTIZED_OPS); empty for a float model."""
        return (self.given_onnx or {}).get("already_quantized") or {}

    def to_metrics(self) -> dict[str, Any]:
        # Absent keys stay absent: a distilled student's record never had them.
        return {k: v for k, v in (("student_spec", self.student_spec), ("input", self.input), ("inputs", self.inputs),
                                  ("student_warnings", self.student_warnings)) if v is not None}

    @classmethod
    def from_metrics(cls, metrics: dict[str, Any]) -> StudentRecord:
        given = ({k: metrics[k] for k in ("source_sha256", "opset_upgrade", "external_data", "already_quantized")
                  if metrics.get(k)}
                 if metrics.get("source") == "onnx" else None)
        return cls(metrics.get("student_spec"), metrics.get("input"), metrics.get("inputs"), given,
                   metrics.get("student_warnings"))


@dataclass(frozen=True)
class ExportRecord:
    """Export stage: the fp32 ONNX model's input, which every backend compiles for and every bundle describes."""

    stage: ClassVar[str] = "export"
    input: dict[str, Any] | None = None  # the main input's spec (name, dtype, shape); None: export has not run
    inputs: list[dict[str, Any]] | None = None  # every input (names, dtypes, shapes, dynamic axes)

    def to_metrics(self) -> dict[str, Any]:
        return {"input": self.input, "inputs": self.inputs}

    @classmethod
    def from_metrics(cls, metrics: dict[str, Any]) -> ExportRecord:
        return cls(metrics.get("input"), metrics.get("inputs"))


@dataclass(frozen=True)
class QuantizeRecord:
    """Quantize stage: how the int8 models were made, per recipe name (the recipe's settings, its fallback search,
    nodes kept in float, host notes, bytes) and from which calibration set."""

    stage: ClassVar[str] = "quantize"
    method: str | None = None  # ptq, qat or none; None: the stage has not run
    recipes: dict[str, dict[str, Any]] = field(default_factory=dict)
    calibration: dict[str, Any] | None = None

    def to_metrics(self) -> dict[str, Any]:
        if self.method == "none":
            return {"method": "none"}
        return {"method": self.method, "calibration": self.calibration, "recipes": self.recipes}

    @classmethod
    def from_metrics(cls, metrics: dict[str, Any]) -> QuantizeRecord:
        return cls(metrics.get("method"), metrics.get("recipes") or {}, metrics.get("calibration"))

    @property
    def made_none(self) -> bool:
        """quantize.method none: int8 files in 04-quantize are an earlier run's, not this one's."""
        return self.method == "none"

    def searched(self, recipe_name: str) -> bool:
        """Did an int8 search choose the recipe's model among several (pipeline/validation_split.py)?"""
        return bool(self.recipes.get(recipe_name, {}).get("searched"))

    def int8_label(self, recipe_name: str) -> str:  # one of INT8_NAMES
        """The candidate name of the recipe's int8 model, by how it was made: int8 (PTQ), int8-qat, int8-fallback."""
        if self.method == "qat":
            return "int8-qat"
        return "int8-fallback" if self.recipes.get(recipe_name, {}).get("nodes_in_float") else "int8"


@dataclass(frozen=True)
class TargetBuild:
    """One target's compile result: its candidates (selection rows, each with artifact, path and verdict) and the
    bundle of the one chosen."""

    backend: str
    chosen: str
    chosen_precision: str
    candidates: list[dict[str, Any]]
    bundle: str  # relative to the run folder
    # pipeline/target_runtime.RuntimeFallback.to_json(): the target ships its profile's fallback runtime, and why
    runtime_fallback: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        fallback = {"runtime_fallback": self.runtime_fallback} if self.runtime_fallback else {}
        return {"backend": self.backend, "chosen": self.chosen, "chosen_precision": self.chosen_precision,
                "candidates": self.candidates, "bundle": self.bundle, **fallback}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TargetBuild:
        return cls(data["backend"], data["chosen"], data["chosen_precision"], data["candidates"], data["bundle"],
                   data.get("runtime_fallback"))


@dataclass(frozen=True)
class CompileRecord:
    """Compile stage: per target name, what was built and which candidate ships."""

    stage: ClassVar[str] = "compile"
    targets: dict[str, TargetBuild] = field(default_factory=dict)

    def to_metrics(self) -> dict[str, Any]:
        return {"targets": {name: build.to_json() for name, build in self.targets.items()}}

    @classmethod
    def from_metrics(cls, metrics: dict[str, Any]) -> CompileRecord:
        return cls({name: TargetBuild.from_json(build) for name, build in (metrics.get("targets") or {}).items()})
