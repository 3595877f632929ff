"""Stage 2 with distill.mode none: the user's trained model is the student, shipped as given.

A PyTorch student (arch + checkpoint) is loaded, measured and saved where the export stage reads it;
an ONNX student is checked against the data, measured with onnxruntime and copied, without importing
torch, so a machine with numpy, onnx and onnxruntime alone can ship it.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from edgekd.core.errors import ConfigError
from edgekd.core.fileio import atomic_path, resolve_path, sha256_of
from edgekd.core.metrics import predict
from edgekd.pipeline.context import RunContext
from edgekd.pipeline.stage import Stage, StageOutput
from edgekd.runtimes.onnx_graph import onnx_parameters


def _ship_onnx(ctx: RunContext) -> StageOutput:
    source = resolve_path(ctx.cfg.student.onnx, ctx.base_dir)
    if not source.is_file():
        raise ConfigError(f"student.onnx '{ctx.cfg.student.onnx}': file not found ({source}); give the path of the "
                          "model's .onnx file, absolute or relative to the config file")
    spec = onnx_input_spec(source)
    check_input_matches(spec, ctx.dataset.input_shape, "student.onnx")
    out = ctx.layout.given_onnx
    with atomic_path(out) as tmp:
        shutil.copyfile(source, tmp)
    logits = _onnx_logits(out)
    check_classes(logits(ctx.dataset.val.x[:2]), ctx.dataset.num_classes, "student.onnx")
    return StageOutput([out], {"mode": "none", "source": "onnx", "params": onnx_parameters(out), "input": spec,
                               "source_sha256": sha256_of(source), **_accuracy(ctx, logits)}, inputs=[source])


def _ship_checkpoint(ctx: RunContext) -> StageOutput:
    from edgekd.train.models import build_model, count_parameters, save_checkpoint
    from edgekd.train.trainer import predict_logits

    data = ctx.dataset
    model = build_model(ctx.cfg.student, data.input_shape, data.num_classes, ctx.base_dir, where="student").eval()
    out = save_checkpoint(model, ctx.layout.student_checkpoint)
    checkpoint = resolve_path(ctx.cfg.student.checkpoint, ctx.base_dir)
    logits = lambda x: predict_logits(model, x)  # noqa: E731
    return StageOutput([out], {"mode": "none", "source": "checkpoint", "params": count_parameters(model),
                               **_accuracy(ctx, logits)}, inputs=[checkpoint])


def _accuracy(ctx: RunContext, logits) -> dict:
    val, test = ctx.dataset.val, ctx.dataset.test
    metrics = {"val_top1": ctx.task.score(logits(val.x), val.y), "test_top1": ctx.task.score(logits(test.x), test.y)}
    _judge_given(metrics["val_top1"], val.y)
    return metrics


def _judge_given(top1: float, labels: np.ndarray) -> None:
    """Print the given model's validation top-1, and stop when it is no better than chance: the data does not reach
    it as it was trained (scaling, size, colour, or class folders that sort in another order than its labels)."""
    import math
    import sys

    from edgekd.pipeline.teacher_check import CHANCE_SIGMAS

    chance = float(np.bincount(labels).max() / len(labels))
    print(f"student (as given): validation top-1 {top1:.1%} on {len(labels)} images (chance {chance:.1%})", file=sys.stderr)
    if top1 <= chance + CHANCE_SIGMAS * math.sqrt(chance * (1 - chance) / len(labels)):
        raise ConfigError(f"student: the given model scores {top1:.1%} on the validation split, no better than chance "
                          f"({chance:.1%}); give it the inputs it was trained on: data.normalize, data.resize / center_crop / "
                          "color, and class folders that sort in the model's label order")


def _onnx_logits(path: Path):
    from edgekd.runtimes.ort import OrtSession

    session = OrtSession(path, threads=None)
    return lambda x: predict(session.run, x)


def onnx_input_spec(path: Path) -> dict:
    """Name, shape (symbolic dimensions by name) and dtype of an ONNX model's one data input."""
    import onnx

    try:
        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception as exc:  # protobuf's DecodeError and friends: not an ONNX file
        raise ConfigError(f"{path}: not a readable ONNX model ({str(exc).splitlines()[0][:120]}); export it again") from None
    initializers = {init.name for init in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise ConfigError(f"{path}: the model takes {len(inputs)} inputs ({', '.join(i.name for i in inputs)}); edgekd ships "
                          "image classifiers with one input tensor")
    tensor = inputs[0].type.tensor_type
    shape = [d.dim_param or (d.dim_value if d.HasField("dim_value") else "?") for d in tensor.shape.dim]
    dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name
    return {"name": inputs[0].name, "shape": shape, "dtype": dtype}


def check_input_matches(spec: dict, sample_shape: tuple, field: str) -> None:
    """One line naming both shapes when the data's samples cannot feed the model's input."""
    if isinstance(spec["shape"][0], int) if spec["shape"] else True:
        raise ConfigError(f"{field}: the model's input '{spec['name']}' has the fixed shape {_shape(spec['shape'])}; edgekd "
                          "measures batches of several sizes: export it with a dynamic batch axis (torch.onnx.export(..., "
                          "dynamic_axes={'input': {0: 'batch'}}), or dynamo=True with dynamic_shapes)")
    model_shape = spec["shape"][1:]
    fits = len(model_shape) == len(sample_shape) and all(
        not isinstance(m, int) or m == s for m, s in zip(model_shape, sample_shape))
    if spec["dtype"] != "float32" or not fits:
        raise ConfigError(f"{field}: the model's input '{spec['name']}' is {spec['dtype']} {_shape(spec['shape'])} but the data's "
                          f"samples are float32 {_shape(['batch', *sample_shape])}; check data.* (source, image_size) or "
                          "export the model for this input")


def _shape(shape) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")"


def check_classes(logits: np.ndarray, classes: int, field: str) -> None:
    if logits.ndim != 2 or logits.shape[1] != classes:
        raise ConfigError(f"{field}: the model's output has shape {_shape(logits.shape)} but the data has {classes} classes; "
                          "edgekd ships classifiers whose output is (batch, classes) logits: check data.source")


class AsGivenStage(Stage):
    """Stage 2 with distill.mode none: the user's trained model taken as it is, checked against the data."""

    name = "distill"
    sections = ("student", "distill")

    def run(self) -> StageOutput:
        ctx = self.ctx
        return _ship_onnx(ctx) if ctx.cfg.ships_onnx else _ship_checkpoint(ctx)
