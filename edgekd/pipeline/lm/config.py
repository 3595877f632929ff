"""The pipeline file of a language model (`task: language-model`): its own sections, composed like PipelineConfig.

    name: code-lm
    task: language-model
    data: {source: code, vocab_size: 4096, context: 128}       # or {source: folder, path: texts/}
    teacher: {layers: 4, width: 256, heads: 4, train: {steps: 600, lr: 0.0015}}   # or {checkpoint: dir, tokenizer: tokenizer.json}
    student: {layers: 2, width: 128}
    distill: {temperature: 2.0, alpha: 0.5, top_k: 32, train: {steps: 320, lr: 0.003}}
    quantize: {method: dynamic}                                  # per target: {per_target: {arm64-cpu: nbits8}}
    targets: [x86-cpu, arm64-cpu]
    bench: {prompts: 20, new_tokens: 64}
    gate: {max_increase: 0.03}                                   # perplexity at most 3% above the fp32 student's

A model is a GPT-2-style decoder (edgekd.lm.models); the student shares the teacher's tokenizer.
"""
from __future__ import annotations

import hashlib
import json
from typing import ClassVar, Literal, Optional

from pydantic import Field, model_validator

from edgekd.core.sections import MAX_SEED, Strict

TASK = "language-model"
QUANT_METHODS = ("dynamic", "nbits8", "nbits4")


class LMDataConfig(Strict):
    source: Literal["code", "folder"] = Field("code", description="code: this Python's standard-library sources; folder: data.path")
    path: Optional[str] = Field(None, description="a folder of text files (.txt .md .rst .py), with source: folder")
    fractions: tuple[float, float, float] = Field((0.9, 0.05, 0.05), description="train, val, test shares, split by file")
    vocab_size: int = Field(4096, ge=257, description="byte-level BPE trained on the train split")
    context: int = Field(128, ge=8, description="tokens per training block, and the longest prompt + generation")
    val_blocks: int = Field(256, ge=1, description="validation blocks for the int8 choice and training checks")
    test_blocks: int = Field(0, ge=0, description="test blocks bench measures perplexity on (0: all)")

    @model_validator(mode="after")
    def _path_for_folder(self) -> LMDataConfig:
        if self.source == "folder" and not self.path:
            raise ValueError("data.path: source folder needs the folder of text files; give data.path")
        if self.source == "code" and self.path:
            raise ValueError("data.path: source code reads the standard library; remove data.path or use source: folder")
        return self


class LMTrainConfig(Strict):
    steps: int = Field(300, ge=1, description="optimizer steps (AdamW, warm-up then cosine decay)")
    lr: float = Field(1e-3, gt=0)
    batch_size: int = Field(16, ge=1, description="blocks per step")


class LMTeacherConfig(Strict):
    layers: int = Field(4, ge=1)
    width: int = Field(256, ge=8)
    heads: int = Field(4, ge=1)
    checkpoint: Optional[str] = Field(None, description="a save_pretrained folder (safetensors) of a GPT-2 model: used as given")
    tokenizer: Optional[str] = Field(None, description="the given checkpoint's tokenizer.json (needed with checkpoint)")
    train: LMTrainConfig = Field(default_factory=lambda: LMTrainConfig(steps=600, lr=1.5e-3))

    @model_validator(mode="after")
    def _tokenizer_with_checkpoint(self) -> LMTeacherConfig:
        if bool(self.checkpoint) != bool(self.tokenizer):
            raise ValueError("teacher.tokenizer: a given teacher (checkpoint) needs the tokenizer it was trained with, and a "
                             "tokenizer is only taken with a checkpoint; give both or neither")
        return self


class LMStudentConfig(Strict):
    layers: int = Field(2, ge=1)
    width: int = Field(128, ge=8)
    heads: Optional[int] = Field(None, ge=1, description="default: the teacher's head size")


class LMDistillConfig(Strict):
    temperature: float = Field(2.0, gt=0)
    alpha: float = Field(0.5, ge=0, le=1, description="weight of the KL term; 1 - alpha on next-token cross-entropy")
    top_k: int = Field(32, ge=1, description="teacher logits cached per token (with a tail bucket)")
    direction: Literal["forward", "reverse"] = "forward"
    train: LMTrainConfig = Field(default_factory=lambda: LMTrainConfig(steps=320, lr=3e-3))


class LMQuantizeConfig(Strict):
    method: Literal["dynamic", "nbits8", "nbits4", "none"] = Field(
        "dynamic", description="dynamic int8 (MatMulInteger) or weight-only MatMulNBits 8/4-bit; none: fp32 only")
    per_target: dict[str, Literal["dynamic", "nbits8", "nbits4", "none"]] = Field(default_factory=dict,
                                                                                  description="a method per target name")
    adapt_to_host: bool = Field(True, description="7-bit weights (dynamic) where this CPU's int8 kernels saturate")
    block_size: int = Field(32, ge=16, description="MatMulNBits block size")

    def method_for(self, target: str) -> str:
        return self.per_target.get(target, self.method)


class LMExportConfig(Strict):
    opset: int = Field(18, ge=18)


class LMBenchConfig(Strict):
    prompts: int = Field(20, ge=1, description="held-out prompts (test split) for generation")
    prompt_tokens: int = Field(32, ge=1)
    new_tokens: int = Field(64, ge=1)
    rounds: int = Field(1, ge=1, description="generations per prompt and model, interleaved")
    device_blocks: int = Field(64, ge=0, description="test blocks each bundle carries (eval_blocks.npy) for perplexity and "
                                                     "prompts in `edgekd bench` on the device; 0: none")


class LMGateConfig(Strict):
    max_increase: Optional[float] = Field(0.03, ge=0, description="the shipped model's test perplexity at most (1 + this) x "
                                                                  "the reference's; null: no check")
    reference: Literal["student_fp32", "teacher"] = "student_fp32"
    min_greedy_agreement: Optional[float] = Field(None, ge=0, le=1, description="greedy tokens equal to the fp32 student's "
                                                                                "(a fraction); null: reported only")


class LanguageModelConfig(Strict):
    name: str = Field("run", pattern=r"^[A-Za-z0-9._-]+$")
    task: Literal["language-model"] = TASK
    seed: int = Field(0, ge=0, le=MAX_SEED)
    device: str = Field("cpu", pattern=r"^(auto|cpu)$", description="language models train on the CPU here")
    data: LMDataConfig = Field(default_factory=LMDataConfig)
    teacher: LMTeacherConfig = Field(default_factory=LMTeacherConfig)
    student: LMStudentConfig = Field(default_factory=LMStudentConfig)
    distill: LMDistillConfig = Field(default_factory=LMDistillConfig)
    quantize: LMQuantizeConfig = Field(default_factory=LMQuantizeConfig)
    export: LMExportConfig = Field(default_factory=LMExportConfig)
    targets: list[str] = Field(default_factory=lambda: ["x86-cpu"], min_length=1)
    bench: LMBenchConfig = Field(default_factory=LMBenchConfig)
    gate: LMGateConfig = Field(default_factory=LMGateConfig)

    ships_onnx: ClassVar[bool] = False  # the student is trained here (the runner asks)

    @model_validator(mode="after")
    def _fits(self) -> LanguageModelConfig:
        if self.student.layers > self.teacher.layers or self.student.width > self.teacher.width:
            raise ValueError(f"student: {self.student.layers} x {self.student.width} is not smaller than the teacher's "
                             f"{self.teacher.layers} x {self.teacher.width}; give fewer layers or a smaller width")
        if self.bench.prompt_tokens + self.bench.new_tokens > self.data.context:
            raise ValueError(f"bench: prompt_tokens {self.bench.prompt_tokens} + new_tokens {self.bench.new_tokens} exceed "
                             f"data.context {self.data.context}; shorten them or raise the context")
        unknown = sorted(set(self.quantize.per_target) - set(self.targets))
        if unknown:
            raise ValueError(f"quantize.per_target: {', '.join(unknown)} not in targets {self.targets}; name listed targets")
        return self

    def digest(self) -> str:
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]
