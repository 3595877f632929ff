"""Every path of a run folder, in one place: stages find each other's files here, never in each other's code.

    runs/<name>/
      manifest.json, report.json|md|html, gate.json, gate-junit.xml, gate-summary.md
      01-teachers/teacher-<i>.pt
      02-distill/student.pt | student.onnx (shipped as given), synthetic.npz (data-free)
      03-export/student-fp32.onnx
      04-quantize/student-int8-<recipe>.onnx
      05-compile/<target>/<candidate>/
      06-bench/, 07-gate/ (progress files only)
      bundle/<target>/
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgekd.pipeline.registry import STAGE_NAMES


@dataclass(frozen=True)
class RunLayout:
    run_dir: Path

    def stage_dir(self, stage: str) -> Path:
        """The stage's folder (made on first use), numbered in run order."""
        path = self.run_dir / f"{STAGE_NAMES.index(stage) + 1:02d}-{stage}"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def teacher_checkpoint(self, index: int) -> Path:
        """Where the teachers stage saves a teacher it trained."""
        return self.stage_dir("teachers") / f"teacher-{index}.pt"

    @property
    def student_checkpoint(self) -> Path:
        return self.stage_dir("distill") / "student.pt"

    @property
    def given_onnx(self) -> Path:
        """An ONNX student shipped as given, copied into the run."""
        return self.stage_dir("distill") / "student.onnx"

    @property
    def synthetic_set(self) -> Path:
        """Data-free distillation's generated images, labelled by the teachers."""
        return self.stage_dir("distill") / "synthetic.npz"

    @property
    def fp32_onnx(self) -> Path:
        return self.stage_dir("export") / "student-fp32.onnx"

    def int8_onnx(self, recipe_name: str) -> Path:
        """The int8 model of one quantization recipe (PTQ, PTQ with fallback, or QAT: the manifest says which)."""
        return self.stage_dir("quantize") / f"student-int8-{recipe_name}.onnx"

    def candidates_dir(self, target: str) -> Path:
        return self.stage_dir("compile") / target

    def bundle_dir(self, target: str) -> Path:
        return self.run_dir / "bundle" / target

    @property
    def report_json(self) -> Path:
        return self.run_dir / "report.json"

    @property
    def gate_json(self) -> Path:
        return self.run_dir / "gate.json"

    @property
    def gate_junit(self) -> Path:
        return self.run_dir / "gate-junit.xml"

    @property
    def gate_summary(self) -> Path:
        return self.run_dir / "gate-summary.md"
