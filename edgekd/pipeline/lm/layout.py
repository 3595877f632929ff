"""Where a language model's stages keep their files in the run folder (beside RunLayout's, which they share)."""
from __future__ import annotations

from pathlib import Path


def tokenizer_path(ctx) -> Path:
    """The run's tokenizer.json: trained on the train split, or the given teacher's."""
    return ctx.stage_dir("teachers") / "tokenizer.json"


def teacher_dir(ctx) -> Path:
    return ctx.stage_dir("teachers") / "teacher"


def student_dir(ctx) -> Path:
    return ctx.stage_dir("distill") / "student"


def fp32_onnx(ctx) -> Path:
    return ctx.stage_dir("export") / "student-fp32.onnx"
