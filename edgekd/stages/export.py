"""Stage 3: export the fp32 student to ONNX, with metadata, checked against PyTorch."""
from __future__ import annotations

from .. import __version__
from ..export import INPUT_NAME, export_onnx, parity
from ..fileio import sha256_of
from .context import RunContext, StageOutput
from .distill import build_student


def fp32_onnx_path(ctx: RunContext):
    return ctx.stage_dir("export") / "student-fp32.onnx"


def run(ctx: RunContext) -> StageOutput:
    data = ctx.dataset
    student_pt = ctx.stage_dir("distill") / "student.pt"
    student = build_student(ctx)
    metadata = {"preprocessing": data.preprocessing(), "labels": data.classes, "edgekd_version": __version__,
                "source_sha256": {"student.pt": sha256_of(student_pt)}, "config_digest": ctx.stage_key("export"),
                "dataset": data.name, "dataset_fingerprint": data.fingerprint}
    path = export_onnx(student, data.val.x, fp32_onnx_path(ctx), ctx.cfg.export, metadata)
    samples = data.val.x[:ctx.cfg.export.parity_samples]
    check = parity(student, path, samples, ctx.cfg.export)
    input_spec = {"name": INPUT_NAME, "shape": ["batch" if ctx.cfg.export.dynamic_batch else 2, *data.input_shape],
                  "dtype": "float32"}
    return StageOutput([path], {"parity": check.to_json(), "opset": ctx.cfg.export.opset, "input": input_spec},
                       inputs=[student_pt])
