"""What a language model's later stages read of its earlier ones, typed (as pipeline/records.py does for images):
the teacher's reference perplexity and the int8 file each target got (the compile stage writes the image pipeline's
CompileRecord: pipeline/records.py)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Optional


@dataclass(frozen=True)
class LMTeacherRecord:
    """Teachers stage: the teacher's size and its test perplexity (bench's teacher reference)."""

    stage: ClassVar[str] = "teachers"
    params: int = 0
    test_perplexity: Optional[float] = None

    def to_metrics(self) -> dict[str, Any]:
        return {"teacher_reference": {"params": self.params, "test_perplexity": self.test_perplexity}}

    @classmethod
    def from_metrics(cls, metrics: dict[str, Any]) -> LMTeacherRecord:
        return cls(**metrics.get("teacher_reference", {}))


@dataclass(frozen=True)
class LMQuantizeRecord:
    """Quantize stage, per target: method (none when the target ships fp32 only), runtime, file, bytes; onnxruntime:
    reduce_range and host note; OpenVINO: the fp32 IR (fp32_file) and the compression settings."""

    stage: ClassVar[str] = "quantize"
    targets: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_metrics(self) -> dict[str, Any]:
        return {"targets": self.targets}

    @classmethod
    def from_metrics(cls, metrics: dict[str, Any]) -> LMQuantizeRecord:
        return cls(metrics.get("targets") or {})

    def int8_file(self, target: str) -> Optional[str]:
        """The int8 file's name in 04-quantize for `target`, or None."""
        entry = self.targets.get(target, {})
        return entry.get("file") if entry.get("method", "none") != "none" else None

    def fp32_file(self, target: str) -> Optional[str]:
        """The fp32 file in 04-quantize that `target` ships when not quantized (OpenVINO's IR), or None: the
        exported ONNX decoder."""
        return self.targets.get(target, {}).get("fp32_file")
