"""Stage 3: export the fp32 student to ONNX, with metadata, checked against PyTorch.

An ONNX student (student.onnx) is already exported: it is copied as the fp32 model, without torch.
torch is imported only on the PyTorch path, so later stages can import this module on a torch-free run.
"""
from __future__ import annotations

import shutil

import numpy as np

from ..fileio import atomic_path
from .context import RunContext, StageOutput


def fp32_onnx_path(ctx: RunContext):
    return ctx.stage_dir("export") / "student-fp32.onnx"


def student_logits(ctx: RunContext, x: np.ndarray) -> np.ndarray:
    """The fp32 student's logits on `x`: what every candidate is compared with. From PyTorch when the student
    is a PyTorch model (the exported file is checked against it), from onnxruntime when it was given as ONNX."""
    if ctx.cfg.ships_onnx:
        from ..bench.accuracy import predict
        from ..targets.ort import OrtSession

        return predict(OrtSession(fp32_onnx_path(ctx), threads=None).run, x)
    from ..distill.trainer import predict_logits
    from .distill import build_student

    return predict_logits(build_student(ctx), x)


def run(ctx: RunContext) -> StageOutput:
    return _copy_given_onnx(ctx) if ctx.cfg.ships_onnx else _export_torch(ctx)


def _copy_given_onnx(ctx: RunContext) -> StageOutput:
    from .as_given import given_onnx_path

    source, out = given_onnx_path(ctx), fp32_onnx_path(ctx)
    with atomic_path(out) as tmp:
        shutil.copyfile(source, tmp)
    spec = ctx.manifest.metrics("distill")["input"]
    input_spec = {"name": spec["name"], "shape": ["batch", *ctx.dataset.input_shape], "dtype": spec["dtype"]}
    return StageOutput([out], {"parity": {"skipped": "the student was given as ONNX: it is the reference"},
                               "input": input_spec, "inputs": ctx.manifest.metrics("distill")["inputs"], "given": True},
                       inputs=[source])


def _export_torch(ctx: RunContext) -> StageOutput:
    from .. import __version__
    from ..export import INPUT_NAME, export_onnx, parity
    from ..fileio import sha256_of
    from .distill import build_student

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
    from .as_given import onnx_inputs

    return StageOutput([path], {"parity": check.to_json(), "opset": ctx.cfg.export.opset, "input": input_spec,
                                "inputs": onnx_inputs(path)}, inputs=[student_pt])
