"""A language model's own sections of its pipeline file (data, teacher, student, distill), as train/config.py holds
an image classifier's: the model family's settings, read by tasks/lm.py's LanguageModelConfig."""
from __future__ import annotations

from typing import ClassVar, Literal, Optional

from pydantic import Field, model_validator

from edgekd.core.sections import Integer, OptionalInteger, Strict


class LMDataConfig(Strict):
    source: Literal["code", "folder"] = Field("code", description="code: this Python's standard-library sources; folder: data.path")
    path: Optional[str] = Field(None, description="a folder of text files (.txt .md .rst .py), with source: folder")
    fractions: tuple[float, float, float] = Field((0.9, 0.05, 0.05), description="train, val, test shares, split by file")
    vocab_size: Integer = Field(4096, ge=257, description="byte-level BPE trained on the train split")
    context: Integer = Field(128, ge=8, description="tokens per training block, and the longest prompt + generation")
    val_blocks: Integer = Field(256, ge=1, description="validation blocks for the int8 choice and training checks")
    test_blocks: Integer = Field(0, ge=0, description="test blocks bench measures perplexity on (0: all)")

    @model_validator(mode="after")
    def _path_for_folder(self) -> LMDataConfig:
        if self.source == "folder" and not self.path:
            raise ValueError("data.path: source folder needs the folder of text files; give data.path")
        if self.source == "code" and self.path:
            raise ValueError("data.path: source code reads the standard library; remove data.path or use source: folder")
        return self


class LMTrainConfig(Strict):
    steps: Integer = Field(300, ge=1, description="optimizer steps (AdamW, warm-up then cosine decay)")
    lr: float = Field(1e-3, gt=0)
    batch_size: Integer = Field(16, ge=1, description="blocks per step")


class LMTeacherConfig(Strict):
    layers: Integer = Field(4, ge=1)
    width: Integer = Field(256, ge=8)
    heads: Integer = Field(4, ge=1)
    checkpoint: Optional[str] = Field(None, description="a save_pretrained folder (safetensors) of a GPT-2 model: used as given")
    tokenizer: Optional[str] = Field(None, description="the given checkpoint's tokenizer.json (needed with checkpoint)")
    train: LMTrainConfig = Field(default_factory=lambda: LMTrainConfig(steps=600, lr=1.5e-3))

    @model_validator(mode="after")
    def _tokenizer_with_checkpoint(self) -> LMTeacherConfig:
        if bool(self.checkpoint) != bool(self.tokenizer):
            raise ValueError("teacher.tokenizer: a given teacher (checkpoint) needs the tokenizer it was trained with, and a "
                             "tokenizer is only taken with a checkpoint; give both or neither")
        unused = [key for key in ("layers", "width", "heads", "train") if key in self.model_fields_set]
        if self.checkpoint and unused:  # a given teacher is used as it is: its sizes come from its config.json
            raise ValueError(f"teacher.{unused[0]}: the teacher's sizes come from teacher.checkpoint (its config.json) and "
                             "it is not trained; remove " + ", ".join(unused))
        return self


class LMStudentConfig(Strict):
    layers: Integer = Field(2, ge=1)
    width: Integer = Field(128, ge=8)
    heads: OptionalInteger = Field(None, ge=1, description="default: the teacher's head size")


class LMSequenceConfig(Strict):
    """Sequence-level KD (Kim & Rush 2016): the teacher continues prompts from the training blocks once (cached),
    and the student trains with next-token cross-entropy on those continuations."""

    prompts: Integer = Field(256, ge=1, description="teacher continuations, each from the start of a different training block")
    prompt_tokens: Integer = Field(32, ge=1, description="corpus tokens the teacher continues (context for the student, not targets)")
    new_tokens: Integer = Field(96, ge=1, description="tokens the teacher generates per prompt; prompt_tokens + new_tokens <= data.context")
    top_k: OptionalInteger = Field(None, ge=1, description="null: the teacher's greedy continuation; K: sampled from its K most "
                                                         "likely tokens (seeded by the run's seed)")
    temperature: float = Field(1.0, gt=0, description="sampling temperature, with top_k only (greedy has none)")
    share: float = Field(0.5, gt=0, lt=1, description="mode both: the fraction of steps on teacher sequences, spread evenly; "
                                                      "the others are token-level KD steps")
    batch_size: Integer = Field(32, ge=1, description="prompts the teacher continues at once")


class LMDistillConfig(Strict):
    """How the student learns: token-level KD on the corpus, sequence-level KD on the teacher's continuations, or both."""

    mode: Literal["token", "sequence", "both"] = Field(
        "token", description="token: KL to the teacher's cached top-k logits on corpus blocks; sequence: cross-entropy on the "
                             "teacher's own continuations (distill.sequence); both: the two kinds of step interleaved")
    temperature: float = Field(1.0, gt=0, description="token-level KD (mode token or both): the KL's temperature "
                               "(1 distilled benchmarks/distill_lm.py's student; 2 made it worse than scratch)")
    alpha: float = Field(0.5, ge=0, le=1, description="token-level KD: weight of the KL term; 1 - alpha on next-token cross-entropy")
    top_k: Integer = Field(32, ge=1, description="token-level KD: teacher logits cached per token (with a tail bucket)")
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
