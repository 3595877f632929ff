"""Stage 3: export the fp32 student to ONNX, with metadata, checked against PyTorch.

An ONNX student (student.onnx) is already exported: it is copied as the fp32 model, without torch.
torch is imported only on the PyTorch path.
"""
from __future__ import annotations

from edgekd.pipeline.context import RunContext
from edgekd.pipeline.records import ExportRecord, StudentRecord, read_record
from edgekd.pipeline.stage import Stage, StageOutput
from edgekd.runtimes.onnx_graph import copy_onnx


def _copy_given_onnx(ctx: RunContext) -> StageOutput:
    source = ctx.layout.given_onnx
    written = copy_onnx(source, ctx.layout.fp32_onnx)  # with its external-data file(s), if any
    given = read_record(ctx.manifest, StudentRecord)
    input_spec = {**ctx.task.input_spec(ctx.dataset, given.input["name"]), "dtype": given.input["dtype"]}
    return StageOutput(written, {"parity": {"skipped": "the student was given as ONNX: it is the reference"}, "given": True},
                       inputs=[source], record=ExportRecord(input_spec, given.inputs))


def _export_torch(ctx: RunContext) -> StageOutput:
    from edgekd import __version__
    from edgekd.core.fileio import sha256_of
    from edgekd.pipeline.run_models import build_student
    from edgekd.train.onnx_export import INPUT_NAME, export_onnx, parity

    data = ctx.dataset
    student_pt = ctx.layout.student_checkpoint
    student = build_student(ctx)
    metadata = {"preprocessing": data.preprocessing(), "labels": data.classes, "edgekd_version": __version__,
                "source_sha256": {"student.pt": sha256_of(student_pt)}, "config_digest": ctx.stage_key("export"),
                "dataset": data.name, "dataset_fingerprint": data.fingerprint}
    path = export_onnx(student, data.val.x, ctx.layout.fp32_onnx, ctx.cfg.export, metadata)
    samples = data.val.x[:ctx.cfg.export.parity_samples]
    check = parity(student, path, samples, ctx.cfg.export)
    input_spec = ctx.task.input_spec(data, INPUT_NAME, "batch" if ctx.cfg.export.dynamic_batch else 2)
    from edgekd.pipeline.given_model import onnx_inputs

    return StageOutput([path], {"parity": check.to_json(), "opset": ctx.cfg.export.opset}, inputs=[student_pt],
                       record=ExportRecord(input_spec, onnx_inputs(path)))


class ExportStage(Stage):
    """Stage 3: the fp32 student as one checked ONNX file."""

    name = "export"
    sections = ("export",)

    def run(self) -> StageOutput:
        ctx = self.ctx
        return _copy_given_onnx(ctx) if ctx.cfg.ships_onnx else _export_torch(ctx)
