"""The pipeline config: the section models of each layer composed into one, unknown keys refused, validated once
at load.

YAML is read with yaml.safe_load only. `module:function` references in the config are resolved only from the
file the user wrote (see core/user_code.py); nothing in a config is evaluated.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import Field, field_validator, model_validator

from edgekd.core.errors import ConfigError
from edgekd.core.sections import MAX_SEED, Integer, Strict, model_digest, validate_model
from edgekd.core.task_metrics import METRICS
from edgekd.core.thresholds import Thresholds
from edgekd.data.config import TABLE_SOURCES, DataConfig
from edgekd.device.config import BenchConfig
from edgekd.quant.config import QuantizeConfig
from edgekd.train.config import OFFLINE_ONLY, DistillConfig, ExportConfig, StudentConfig, TeacherConfig

# The distill keys a student shipped as given (distill.mode none) still reads: quantize.method qat fine-tunes it on its
# own softened outputs at distill.temperature, weighted by distill.alpha (stages/quantize.py), unless quantize.qat sets them.
QAT_READS = {"temperature", "alpha"}


class TaskSection(Strict):
    """`task: {kind: fidelity, metric: mask_iou}`: a model given as ONNX that is not (only) a classifier. Each candidate's
    output is compared with the fp32 model's on the same samples (cosine, SQNR, max abs error) and judged by the named
    task metric (edgekd/core/task_metrics.py), against the npz's y where given, else against the fp32 model's outputs."""

    kind: Literal["fidelity"] = Field("fidelity", description="fidelity: judged output by output against the fp32 model")
    metric: str = Field("top1", description="the task metric (edgekd/core/task_metrics.py): " + ", ".join(METRICS))
    output: Optional[str] = Field(None, description="the model output the task metric scores, by name (unset: the "
                                  "model's first output); every output is still compared with fp32's")

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        if value not in METRICS:
            raise ValueError(f"unknown task metric {value!r}; known: {', '.join(METRICS)}")
        return value


class PipelineConfig(Strict):
    name: str = Field("run", pattern=r"^[A-Za-z0-9._-]+$")
    seed: Integer = Field(0, ge=0, le=MAX_SEED, description="data split, initialisation and shuffling seed")
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:[0-9]+)?)$",
                        description="where teachers and distillation (every mode) train: auto (the GPU when there is one), cpu, cuda, cuda:N")
    data: DataConfig = Field(default_factory=DataConfig)
    teachers: list[TeacherConfig] = Field(default_factory=list, description="the ensemble: at least one, except with distill.mode: "
                                          "online; each of one kind: arch (PyTorch), sklearn, lightgbm, xgboost (fitted by edgekd), "
                                          "onnx or skops (fitted files; the last four kinds on tables; on data.source text, sklearn "
                                          "pipelines reading raw texts beside one arch: bert)")
    student: StudentConfig
    distill: DistillConfig = Field(default_factory=DistillConfig)
    quantize: QuantizeConfig = Field(default_factory=QuantizeConfig)
    export: ExportConfig = Field(default_factory=ExportConfig)
    targets: list[str] = Field(default_factory=lambda: ["x86-cpu"], min_length=1)
    bench: BenchConfig = Field(default_factory=BenchConfig)
    gate: Thresholds = Field(default_factory=Thresholds)
    task: Optional[TaskSection] = Field(None, description="unset: a classifier (top-1); {kind: fidelity, metric: ...} for "
                                                          "any other ONNX model shipped as given")

    @model_validator(mode="before")
    @classmethod
    def _no_teachers_no_distill(cls, raw: Any) -> Any:
        # "Make my model small and fast" needs no distillation: without teachers and without a distill
        # section, the student is shipped as given.
        if isinstance(raw, dict) and not raw.get("teachers") and "distill" not in raw:
            raw = {**raw, "distill": {"mode": "none"}}
        return raw

    @property
    def ships_onnx(self) -> bool:
        """The student is an ONNX file: no stage needs torch."""
        return self.student.onnx is not None

    @model_validator(mode="after")
    def _no_language_model_gate_keys(self) -> PipelineConfig:
        """gate.max_increase and gate.min_greedy_agreement judge a language model's perplexity and greedy tokens: a
        classifier's gate would keep them unused (and gate on max_drop's default), so they are refused."""
        given = [key for key in ("max_increase", "min_greedy_agreement") if getattr(self.gate, key) is not None]
        if given:
            raise ValueError(f"gate.{given[0]}: a language model's gate key (task: language-model); this run is judged by "
                             f"{'its task metric' if self.task else 'top-1'}: use gate.max_drop (and max_metric_drop, "
                             "min_cosine, min_sqnr_db)")
        return self

    @model_validator(mode="after")
    def _student_as_given(self) -> PipelineConfig:
        if self.distill.mode == "none":
            if self.teachers:
                raise ValueError("teachers: distill.mode none ships the student as given and uses no teacher; remove "
                                 "teachers, or set distill.mode offline to distill from them")
            if self.student.arch is not None and not self.student.checkpoint:
                raise ValueError("student.checkpoint: needed to ship a PyTorch student as given (no teachers, no distill "
                                 "section): give its trained state_dict, or add teachers to distill it")
            if self.ships_onnx and self.quantize.method == "qat":
                raise ValueError("quantize.method: qat fine-tunes a PyTorch model and student.onnx is an ONNX file; use "
                                 "quantize.method: ptq, or give student.arch and student.checkpoint")
            # Refused as other modes' unused keys are: accepted, distill.temperature was silently ignored.
            read = {"mode"} | (QAT_READS if self.quantize.method == "qat" else set())
            unused = sorted(self.distill.model_fields_set - read)
            if unused:
                qat = (" (quantize.method qat would read distill.temperature and alpha)"
                       if self.quantize.method != "qat" and not self.ships_onnx else "")
                raise ValueError(f"{', '.join('distill.' + k for k in unused)}: not used with distill.mode none, which ships "
                                 f"the student as given without distilling{qat}; remove {'it' if len(unused) == 1 else 'them'}, "
                                 "or add teachers and set distill.mode offline to distill")
        elif self.ships_onnx:
            raise ValueError(f"student.onnx: distill.mode {self.distill.mode} trains the student in PyTorch; give student.arch "
                             "instead, or remove teachers and the distill section to ship the ONNX file as given")
        return self

    @model_validator(mode="after")
    def _fidelity_ships_onnx_from_npz(self) -> PipelineConfig:
        if self.task is not None and not (self.ships_onnx and self.data.source == "npz"):
            raise ValueError("task: kind fidelity ships a model given as ONNX (student.onnx) on data from an .npz "
                             "(data.source npz) of its inputs; give both, or remove the task section")
        return self

    @model_validator(mode="after")
    def _teachers_for_mode(self) -> PipelineConfig:
        if not self.teachers and self.distill.mode not in ("online", "none"):
            raise ValueError(f"teachers: at least one teacher is needed with distill.mode '{self.distill.mode}'")
        from edgekd.text.fitted_teachers import text_teacher_refusal

        for index, teacher in enumerate(self.teachers):
            refusal = text_teacher_refusal(teacher, index, self.data.source) if self.data.source != "text" else None
            if refusal:
                raise ValueError(refusal)
            if teacher.kind == "sklearn" and self.data.source == "text":
                continue  # a pipeline reading the raw texts, beside the BERT teacher (checked by the text stages)
            if teacher.kind != "torch" and self.data.source == "text":  # a PyTorch network would be refused next
                raise ValueError(f"teachers[{index}].{teacher.kind}: data.source text distills from a BERT teacher, "
                                 "teachers[0] {arch: bert} (trained, or a save_pretrained folder as its checkpoint), "
                                 "optionally followed by scikit-learn pipelines of the raw texts "
                                 "({sklearn: [{TfidfVectorizer: {}}, {LogisticRegression: {}}]}); give those")
            if teacher.kind != "torch" and self.data.source not in TABLE_SOURCES:
                raise ValueError(f"teachers[{index}].{teacher.kind}: in a pipeline, teachers of this kind run on tables (data.source "
                                 f"csv or parquet), and data.source is '{self.data.source}'; give arch (a PyTorch network)")
        if self.distill.transfer_set is not None and self.data.source not in TABLE_SOURCES:
            raise ValueError(f"distill.transfer_set: synthetic rows are made for tables (data.source csv or parquet), and "
                             f"data.source is '{self.data.source}'; remove distill.transfer_set")
        if not self.teachers and self.quantize.method == "qat" and self.distill.mode == "online":
            raise ValueError("quantize.method: qat fine-tunes on the teachers' soft targets and this config has no teachers "
                             "(distill.mode online): add a teacher, or use quantize.method: ptq")
        unused = sorted(OFFLINE_ONLY & self.distill.model_fields_set) if self.distill.mode != "offline" else []
        if unused:  # before the hints' teacher index: an online config with hints is told the mode takes none
            raise ValueError(f"{', '.join('distill.' + f for f in unused)}: used only with distill.mode offline, and this config "
                             f"uses {self.distill.mode}; remove {'it' if len(unused) == 1 else 'them'}")
        for index, hint in enumerate(self.distill.hints):
            if hint.teacher_index >= len(self.teachers):
                raise ValueError(f"distill.hints[{index}].teacher_index {hint.teacher_index}: there are {len(self.teachers)} "
                                 f"teachers (indices 0..{len(self.teachers) - 1}); use one of those")
        return self

    @model_validator(mode="after")
    def _calibration_for_mode(self) -> PipelineConfig:
        # Data-free means no real training image reaches the student, int8 calibration included, so the
        # default calibration set follows the mode; one set explicitly stays the user's choice.
        if self.distill.mode == "data_free" and "calibration" not in self.quantize.model_fields_set:
            self.quantize.calibration = "synthetic-512"
        return self

    @field_validator("targets")
    @classmethod
    def _unique_targets(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("each target may appear once")
        return value

    def external_inputs(self, section: str, base_dir: Path) -> Any:
        """The files `section` names outside the config, fingerprinted (pipeline/inputs.py): part of a stage's key."""
        from edgekd.pipeline.inputs import external_inputs

        return external_inputs(self, section, base_dir)

    def digest(self) -> str:
        """Stable hash of the validated config: stages compare it to decide what to rerun."""
        return model_digest(self)


def load_config(path: str | Path) -> PipelineConfig:
    from edgekd.core.yamlio import read_yaml_mapping

    raw = read_yaml_mapping(Path(path), "config file", "sections (data, teachers, student, ...)")
    written = raw.get("schema") or raw.get("format")
    if isinstance(written, str) and written.startswith("edgekd."):  # JSON is YAML: a report read as a pipeline file
        raise ConfigError(f"{path}: an edgekd output ({written}), not a pipeline file; give the pipeline's YAML (a run's "
                          "own is RUN/edgekd.yaml), or read this one with edgekd gate / edgekd bench")
    return validate_model(raw, config_model(raw), str(path))  # parsed once: the mapping picks the config class too


def validate_config(raw: dict[str, Any], source: str = "<config>") -> PipelineConfig:
    return validate_model(raw, config_model(raw), source)


# A task whose pipeline file has sections of its own, by the `task:` name that picks it (a dotted path: the config
# layer imports no task's module until a file asks for it). Every other file is a PipelineConfig.
OWN_SECTIONS: dict[str, str] = {"language-model": "edgekd.tasks.lm:LanguageModelConfig"}


def config_model(raw: Any) -> type:
    """The config class of a pipeline file: its `task:` name's in OWN_SECTIONS, else PipelineConfig."""
    task = raw.get("task") if isinstance(raw, dict) else None
    return sections_of(task) if isinstance(task, str) and task in OWN_SECTIONS else PipelineConfig


def sections_of(task: str) -> type:
    """The config class OWN_SECTIONS names for `task`, its module imported now."""
    import importlib

    module, _, name = OWN_SECTIONS[task].partition(":")
    return getattr(importlib.import_module(module), name)
