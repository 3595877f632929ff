"""Language models (`task: language-model`): next-token prediction, perplexity (lower is better: core.metrics.PERPLEXITY).
Six stages are the task's own steps (lm_train.py: tokenizer, teacher, student; lm_ship.py: decoder export, quantization,
bundles, bench); the gate is the generic one, on the bench step's report.json.

Its pipeline file (LanguageModelConfig below, composed like PipelineConfig from the model family's sections in
edgekd/lm/config.py, quant/config.py and device/config.py):

    name: code-lm
    task: language-model
    data: {source: code, vocab_size: 4096, context: 128}       # or {source: folder, path: texts/}
    teacher: {layers: 4, width: 256, heads: 4, train: {steps: 600, lr: 0.0015}}   # or {checkpoint: dir, tokenizer: tokenizer.json}
    student: {layers: 2, width: 128}
    distill: {temperature: 1.0, alpha: 0.5, top_k: 32, train: {steps: 320, lr: 0.003}}
    # or sequence-level KD on the teacher's greedy continuations, interleaved with the token-level steps:
    # distill: {mode: both, sequence: {prompts: 512, prompt_tokens: 32, new_tokens: 96, share: 0.5}, ...}
    quantize: {method: dynamic}                                  # per target: {per_target: {arm64-cpu: nbits8}}
    targets: [x86-cpu, arm64-cpu]                                # intel-cpu (OpenVINO): ov_int8 / ov_int4
    bench: {prompts: 20, new_tokens: 64}
    gate: {max_increase: 0.03}                                   # perplexity at most 3% above the fp32 student's

A model is a GPT-2-style decoder (edgekd.lm.models); the student shares the teacher's tokenizer.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, Optional

import numpy as np
from pydantic import Field, model_serializer, model_validator

from edgekd.core.sections import MAX_SEED, Integer, Strict, model_digest
from edgekd.core.thresholds import Thresholds
from edgekd.device.config import GenerationBenchConfig
from edgekd.lm.config import LMDataConfig, LMDistillConfig, LMStudentConfig, LMTeacherConfig
from edgekd.quant.config import DecoderQuantizeConfig

LANGUAGE_MODEL_STEPS = {**{name: f"edgekd.tasks.lm_train:LM{name.capitalize()}Step" for name in ("teachers", "distill")},
                        **{name: f"edgekd.tasks.lm_ship:LM{name.capitalize()}Step"
                           for name in ("export", "quantize", "compile", "bench")}}  # the gate is the generic one


@dataclass(frozen=True)
class LanguageModel:
    """Next-token prediction (`task: language-model`): token blocks in, logits over the vocabulary out; perplexity
    (lower is better) is the metric, so score() gives 1 / perplexity to keep 'higher is better'."""

    name: str = "language-model"
    metric: str = "perplexity"
    fp32_from_onnx: ClassVar[bool] = False  # its own bench step measures every model (tasks/lm_ship.py)
    has_classes: ClassVar[bool] = False  # a distribution over the vocabulary per position, scored by perplexity

    def score(self, logits: np.ndarray, labels: np.ndarray) -> float:
        """1 / perplexity of (n, length, vocab) logits against the (n, length) token blocks they were computed from."""
        from edgekd.lang.perplexity import next_token_nll

        return float(np.exp(-next_token_nll(logits, labels).mean()))

    def input_spec(self, dataset: Any, name: str = "input_ids", batch: int | str = "batch_size") -> dict[str, Any]:
        return {"name": "input_ids", "shape": [batch, "sequence_length"], "dtype": "int64"}

    def evaluation_set(self, dataset: Any, samples: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The first `samples` test blocks (all with 0) in the run's tokenizer: the model's input_ids, and the tokens
        its next-token predictions are scored against (a bundle's eval.npz)."""
        blocks = dataset.blocks(dataset.tokenizer_path, "test")[: samples or None]
        return {"input_ids": blocks}, blocks

    def steps(self, config) -> dict[str, str]:
        return LANGUAGE_MODEL_STEPS

    def report_rows(self, config, base_dir) -> list[str]:
        return ["student_fp32", "teacher"]  # the bench step's references; gate.reference takes one of them

    def load_dataset(self, config, base_dir, layout=None):
        from edgekd.lm.dataset import load_lm_dataset

        return load_lm_dataset(config.data, base_dir, tokenizer_path(layout) if layout is not None else None)


TASK = "language-model"


class LMExportConfig(Strict):
    opset: Integer = Field(18, ge=18)


class LMThresholds(Thresholds):
    """The language model's gate: the one Thresholds model (core/thresholds.py), judged on perplexity
    (core.metrics.PERPLEXITY). Only its three keys are a language model's (top-1 drop, speed and size limits are
    refused), and only they are dumped, as before (the stage keys of earlier runs hold)."""

    config_keys: ClassVar[tuple[str, ...]] = ("max_increase", "reference", "min_greedy_agreement")
    max_drop: Optional[float] = None
    max_increase: Optional[float] = Field(0.03, description="the shipped model's test perplexity at most (1 + this) x "
                                                            "the reference's; null: no check")
    reference: Literal["student_fp32", "teacher"] = "student_fp32"
    min_greedy_agreement: Optional[float] = Field(None, description="greedy tokens equal to the fp32 student's "
                                                                    "(a fraction); null: reported only")

    @model_validator(mode="before")
    @classmethod
    def _only_its_keys(cls, data):
        other = [key for key in data if key not in cls.config_keys] if isinstance(data, dict) else []
        if other:
            raise ValueError(f"{other[0]}: not a language model's gate key; use {', '.join(cls.config_keys)}")
        return data

    @model_serializer(mode="wrap")
    def _dumped(self, handler) -> dict:  # replaces Thresholds' own: these three keys, set or not
        dumped = handler(self)
        return {key: dumped[key] for key in self.config_keys}


class LanguageModelConfig(Strict):
    name: str = Field("run", pattern=r"^[A-Za-z0-9._-]+$")
    task: Literal["language-model"] = TASK
    seed: Integer = Field(0, ge=0, le=MAX_SEED)
    device: str = Field("cpu", pattern=r"^(auto|cpu)$", description="language models train on the CPU here")
    data: LMDataConfig = Field(default_factory=LMDataConfig)
    teacher: LMTeacherConfig = Field(default_factory=LMTeacherConfig)
    student: LMStudentConfig = Field(default_factory=LMStudentConfig)
    distill: LMDistillConfig = Field(default_factory=LMDistillConfig)
    quantize: DecoderQuantizeConfig = Field(default_factory=DecoderQuantizeConfig)
    export: LMExportConfig = Field(default_factory=LMExportConfig)
    targets: list[str] = Field(default_factory=lambda: ["x86-cpu"], min_length=1)
    bench: GenerationBenchConfig = Field(default_factory=GenerationBenchConfig)
    gate: LMThresholds = Field(default_factory=LMThresholds)

    ships_onnx: ClassVar[bool] = False  # the student is trained here (the runner asks)

    @model_validator(mode="after")
    def _fits(self) -> LanguageModelConfig:
        if self.student.layers > self.teacher.layers or self.student.width > self.teacher.width:
            raise ValueError(f"student: {self.student.layers} x {self.student.width} is not smaller than the teacher's "
                             f"{self.teacher.layers} x {self.teacher.width}; give fewer layers or a smaller width")
        if self.bench.prompt_tokens + self.bench.new_tokens > self.data.context:
            raise ValueError(f"bench: prompt_tokens {self.bench.prompt_tokens} + new_tokens {self.bench.new_tokens} exceed "
                             f"data.context {self.data.context}; shorten them or raise the context")
        refused = self.distill.refused_keys()
        if refused:
            raise ValueError(refused)
        if not self.teacher.tokenizer and self.distill.mode != "sequence" and self.distill.top_k > self.data.vocab_size:
            raise ValueError(f"distill.top_k {self.distill.top_k} exceeds data.vocab_size {self.data.vocab_size}: the teacher "
                             "has no more tokens to rank; give at most the vocabulary size")
        sequence = self.distill.sequence
        if self.distill.mode != "token" and sequence.prompt_tokens + sequence.new_tokens > self.data.context:
            raise ValueError(f"distill.sequence: prompt_tokens {sequence.prompt_tokens} + new_tokens {sequence.new_tokens} "
                             f"exceed data.context {self.data.context}; shorten them or raise the context")
        unknown = sorted(set(self.quantize.per_target) - set(self.targets))
        if unknown:
            raise ValueError(f"quantize.per_target: {', '.join(unknown)} not in targets {self.targets}; name listed targets")
        return self

    def external_inputs(self, section: str, base_dir: Path) -> Any:
        """Its files, fingerprinted for the stage keys (pipeline/inputs.py): the text folder, a given teacher and its
        tokenizer, the target profiles."""
        from edgekd.pipeline.inputs import fingerprint, target_profiles

        if section == "data":
            return fingerprint(self.data.path, base_dir)
        if section == "teacher":
            return {"checkpoint": fingerprint(self.teacher.checkpoint, base_dir),
                    "tokenizer": fingerprint(self.teacher.tokenizer, base_dir)}
        return target_profiles(self.targets, base_dir) if section == "targets" else None

    def digest(self) -> str:
        return model_digest(self)


# Where its steps keep their files in the run folder, beside RunLayout's (the fp32 decoder is RunLayout.fp32_onnx).
def tokenizer_path(ctx) -> Path:
    """The run's tokenizer.json: trained on the train split, or the given teacher's."""
    return ctx.stage_dir("teachers") / "tokenizer.json"


def teacher_dir(ctx) -> Path:
    return ctx.stage_dir("teachers") / "teacher"


def student_dir(ctx) -> Path:
    return ctx.stage_dir("distill") / "student"
