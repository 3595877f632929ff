"""The pipeline file of a language model (`task: language-model`): its own sections, composed like PipelineConfig.

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

from typing import ClassVar, Literal, Optional

from pydantic import Field, model_serializer, model_validator

from edgekd.core.errors import ConfigError
from edgekd.core.sections import MAX_SEED, Strict, model_digest
from edgekd.core.thresholds import Thresholds

TASK = "language-model"
# Every backend's decoder_methods (edgekd/runtimes/: onnxruntime's dynamic, nbits8, nbits4; OpenVINO's ov_int8, ov_int4)
# and none, spelled out for the schema; tests/pipeline/lm/test_lm_pipeline.py checks that they agree.
Method = Literal["dynamic", "nbits8", "nbits4", "ov_int8", "ov_int4", "none"]


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


class LMSequenceConfig(Strict):
    """Sequence-level KD (Kim & Rush 2016): the teacher continues prompts from the training blocks once (cached),
    and the student trains with next-token cross-entropy on those continuations."""

    prompts: int = Field(256, ge=1, description="teacher continuations, each from the start of a different training block")
    prompt_tokens: int = Field(32, ge=1, description="corpus tokens the teacher continues (context for the student, not targets)")
    new_tokens: int = Field(96, ge=1, description="tokens the teacher generates per prompt; prompt_tokens + new_tokens <= data.context")
    top_k: Optional[int] = Field(None, ge=1, description="null: the teacher's greedy continuation; K: sampled from its K most "
                                                         "likely tokens (seeded by the run's seed)")
    temperature: float = Field(1.0, gt=0, description="sampling temperature, with top_k only (greedy has none)")
    share: float = Field(0.5, gt=0, lt=1, description="mode both: the fraction of steps on teacher sequences, spread evenly; "
                                                      "the others are token-level KD steps")
    batch_size: int = Field(32, ge=1, description="prompts the teacher continues at once")


class LMDistillConfig(Strict):
    """How the student learns: token-level KD on the corpus, sequence-level KD on the teacher's continuations, or both."""

    mode: Literal["token", "sequence", "both"] = Field(
        "token", description="token: KL to the teacher's cached top-k logits on corpus blocks; sequence: cross-entropy on the "
                             "teacher's own continuations (distill.sequence); both: the two kinds of step interleaved")
    temperature: float = Field(1.0, gt=0, description="token-level KD (mode token or both): the KL's temperature "
                               "(1 distilled benchmarks/distill_lm.py's student; 2 made it worse than scratch)")
    alpha: float = Field(0.5, ge=0, le=1, description="token-level KD: weight of the KL term; 1 - alpha on next-token cross-entropy")
    top_k: int = Field(32, ge=1, description="token-level KD: teacher logits cached per token (with a tail bucket)")
    direction: Literal["forward", "reverse"] = Field("forward", description="token-level KD: forward KL(teacher || student), or "
                                                                             "reverse KL(student || teacher) as MiniLLM")
    sequence: LMSequenceConfig = Field(default_factory=LMSequenceConfig, description="mode sequence or both: the teacher's "
                                                                                      "continuations the student trains on")
    train: LMTrainConfig = Field(default_factory=lambda: LMTrainConfig(steps=320, lr=3e-3))

    TOKEN_KEYS: ClassVar[tuple[str, ...]] = ("temperature", "alpha", "top_k", "direction")

    def sequence_share(self) -> float:
        """The fraction of steps on the teacher's sequences: 0 (token), 1 (sequence) or sequence.share (both)."""
        return {"token": 0.0, "sequence": 1.0}.get(self.mode, self.sequence.share)

    def refused_keys(self) -> Optional[str]:
        """A one-line error for settings the mode would ignore (refused rather than silently unused), else None."""
        given, sequence_given = self.model_fields_set, self.sequence.model_fields_set
        if self.mode == "token" and "sequence" in given:
            return "distill.sequence: set only with distill.mode sequence or both; set the mode or remove the section"
        if self.mode == "sequence" and given & set(self.TOKEN_KEYS):
            key = sorted(given & set(self.TOKEN_KEYS))[0]
            return (f"distill.{key}: a token-level KD setting, unused with distill.mode sequence (which trains on the "
                    "teacher's continuations only); use mode both or remove it")
        if self.mode == "sequence" and "share" in sequence_given:
            return "distill.sequence.share: mode sequence trains every step on teacher sequences; use mode both or remove it"
        if self.sequence.top_k is None and "temperature" in sequence_given:
            return ("distill.sequence.temperature: only with distill.sequence.top_k (greedy decoding has no temperature); "
                    "set top_k to sample or remove temperature")
        return None


class LMOpenVinoConfig(Strict):
    int4_mode: Literal["sym", "asym"] = Field("sym", description="ov_int4: NNCF INT4_SYM or INT4_ASYM (a zero point per group)")
    group_size: Optional[int] = Field(None, ge=8, description="ov_int4: input channels per scale; must divide the model's "
                                      "width (default: the largest of 128, 64, 32, 16 that does)")
    ratio: float = Field(1.0, gt=0, le=1, description="ov_int4: share of linear layers at 4 bits, the rest at 8 "
                                                      "(NNCF keeps the embeddings and the output layer at 8 bits)")


class LMQuantizeConfig(Strict):
    method: Method = Field("dynamic", description="onnxruntime targets: dynamic int8 (MatMulInteger) or weight-only MatMulNBits "
                                                  "8/4-bit; OpenVINO targets: ov_int8 / ov_int4 (NNCF weight compression); "
                                                  "none: fp32 only. A target whose runtime the method is not for gets "
                                                  "its runtime's default (dynamic, ov_int8)")
    per_target: dict[str, Method] = Field(default_factory=dict, description="a method per target name")
    adapt_to_host: bool = Field(True, description="7-bit weights (dynamic) where this CPU's int8 kernels saturate")
    block_size: int = Field(32, ge=16, description="MatMulNBits block size")
    openvino: LMOpenVinoConfig = Field(default_factory=LMOpenVinoConfig, description="options of ov_int4")

    def method_for(self, target: str, backend: str) -> str:
        """The method for `target`, whose profile's backend is `backend`: per_target's (which must be one for that
        runtime), else `method` where it is one for that runtime, else that runtime's default."""
        from edgekd.runtimes import get_backend

        family = get_backend(backend).decoder_methods
        if target in self.per_target:
            chosen = self.per_target[target]
            if chosen != "none" and chosen not in family:
                raise ConfigError(f"quantize.per_target.{target}: {chosen} is not for this target's runtime ({backend}); "
                                  f"use one of {', '.join(family)} or none")
            return chosen
        return self.method if self.method == "none" or self.method in family else family[0]


class LMExportConfig(Strict):
    opset: int = Field(18, ge=18)


class LMBenchConfig(Strict):
    prompts: int = Field(20, ge=1, description="held-out prompts (test split) for generation")
    prompt_tokens: int = Field(32, ge=1)
    new_tokens: int = Field(64, ge=1)
    rounds: int = Field(1, ge=1, description="generations per prompt and model, interleaved")
    device_blocks: int = Field(64, ge=0, description="test blocks each bundle carries (eval.npz input_ids) for perplexity and "
                                                     "prompts in `edgekd bench` on the device; 0: none")


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
        sequence = self.distill.sequence
        if self.distill.mode != "token" and sequence.prompt_tokens + sequence.new_tokens > self.data.context:
            raise ValueError(f"distill.sequence: prompt_tokens {sequence.prompt_tokens} + new_tokens {sequence.new_tokens} "
                             f"exceed data.context {self.data.context}; shorten them or raise the context")
        unknown = sorted(set(self.quantize.per_target) - set(self.targets))
        if unknown:
            raise ValueError(f"quantize.per_target: {', '.join(unknown)} not in targets {self.targets}; name listed targets")
        return self

    def digest(self) -> str:
        return model_digest(self)
