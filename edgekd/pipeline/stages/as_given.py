"""Stage 2 with distill.mode none: the user's trained model is the student, shipped as given.

A PyTorch student (arch + checkpoint) is loaded, measured and saved where the export stage reads it;
an ONNX student is checked against the data, measured with onnxruntime and copied, without importing
torch, so a machine with numpy, onnx and onnxruntime alone can ship it.
"""
from __future__ import annotations

import sys
import warnings

import numpy as np

from edgekd.core.errors import ConfigError
from edgekd.core.fileio import file_record, resolve_path, sha256_of
from edgekd.core.metrics import nonfinite_count, take_rows
from edgekd.pipeline.context import RunContext
from edgekd.pipeline.given_check import check_label_order, check_scaling, given_probe
from edgekd.pipeline.given_model import check_classes, given_input_spec, one_score_refusal, onnx_inputs, onnx_logits, onnx_scaling
from edgekd.pipeline.onnx_intake import bring_in, output_names, scored_output_first
from edgekd.pipeline.records import StudentRecord
from edgekd.pipeline.stage import Stage, StageOutput
from edgekd.runtimes.onnx_graph import QUANTIZED_OPS, external_data_files, onnx_parameters, op_counts, read_onnx_header


def _ship_onnx(ctx: RunContext) -> StageOutput:
    source = resolve_path(ctx.cfg.student.onnx, ctx.base_dir)
    if not source.is_file():
        raise ConfigError(f"student.onnx '{ctx.cfg.student.onnx}': file not found ({source}); give the path of the "
                          "model's .onnx file, absolute or relative to the config file")
    where = f"data.path '{ctx.cfg.data.path}'" if ctx.cfg.data.path else f"data.source '{ctx.cfg.data.source}'"
    spec = given_input_spec(source, ctx.dataset, "student.onnx", where)
    # The run's copy: with the file's external data, at an opset int8 can be written in (upgraded and checked).
    written, upgrade = bring_in(source, ctx.layout.given_onnx, ctx.dataset.val.x, "student.onnx")
    out = written[0]
    reordered = scored_output_first(out, getattr(ctx.task, "output", None))
    logits = onnx_logits(out, shown_as=source)
    check_outputs(ctx, logits(take_rows(ctx.dataset.val.x, slice(0, 2))), output_names(out))
    field = f"student.onnx '{ctx.cfg.student.onnx}'"
    channels_first = len(ctx.dataset.input_shape) == 3 and getattr(ctx.dataset, "layout", "NCHW") == "NCHW"
    metadata = onnx_scaling(out, ctx.dataset.input_shape[0]) if channels_first else None
    carried = {"external_data": [file_record(p, source.parent) for p in _user_data_files(source)]} if len(written) > 1 else {}
    quantized = op_counts(out, QUANTIZED_OPS)
    if quantized:  # said here, where the model is read; the quantize stage then leaves it as it is
        print(f"{field}: already quantized ({', '.join(f'{n} {op}' for op, n in sorted(quantized.items()))}): shipped as "
              "given, not quantized again; its candidates are named fp32 (the model as brought) though it computes in "
              "int8; give the float model it was made from to have edgekd quantize it per target", file=sys.stderr)
    return StageOutput(written, {"mode": "none", "source": "onnx", "params": onnx_parameters(out),
                                 "source_sha256": sha256_of(source), **carried,
                                 **({"already_quantized": quantized} if quantized else {}),
                                 **({"opset_upgrade": upgrade} if upgrade else {}),
                                 **({"scored_output_moved_first": ctx.task.output} if reordered else {}),
                                 **_accuracy(ctx, logits, field, metadata)},
                       inputs=[source, *_user_data_files(source)], record=StudentRecord(input=spec, inputs=onnx_inputs(out)))


def _user_data_files(source):
    """The user's own external-data files (their sha256 is recorded beside the model's)."""
    return [source.parent / location for location in external_data_files(source, "student.onnx")]


# A task metric this many points better with the arrays divided by 255 says they were saved as 8-bit pixel values
# for a model that takes [0, 1] (edgekd feeds a task metric's arrays as they are).
PIXEL_SCALE_GAP = 0.10


def check_pixel_scale(val, logits, task, as_given: float, field: str) -> None:
    """Arrays of whole numbers up to 255 (x saved as pixels, not as the model's input) scored again divided by 255:
    one line naming the fix when that scores PIXEL_SCALE_GAP better (a segmenter at 25% mask IoU against 99.97%)."""
    x = val.x
    if isinstance(x, dict) or np.asarray(x).dtype.kind != "f":
        return
    x = np.asarray(x)
    if not (1.5 < float(x.max(initial=0.0)) <= 255 and float(x.min(initial=0.0)) >= 0 and np.all(np.mod(x, 1) == 0)):
        return
    divided = task.score(logits((x / 255).astype(x.dtype)), val.y)
    if divided - as_given >= PIXEL_SCALE_GAP:
        raise ConfigError(f"{field}: validation {task.metric} {as_given:.1%} with x as saved (whole numbers 0..{x.max():g}), "
                          f"but {divided:.1%} with x / 255: the model likely takes [0, 1] inputs; save x divided by 255 "
                          "(edgekd feeds a task metric's arrays as they are)")


def check_outputs(ctx: RunContext, outputs: np.ndarray, names: list[str] | None = None) -> None:
    """The given model's output can be judged as the task says: a classifier's (batch, classes) logits, or for a
    fidelity task an output its metric can score against the data's labels. `names`: the model's outputs."""
    if ctx.task.has_classes:
        check_classes(outputs, ctx.dataset.num_classes, f"student.onnx '{ctx.cfg.student.onnx}'", names,
                      list(ctx.dataset.classes) if ctx.cfg.data.source == "imagefolder" else None)
        return
    from edgekd.core.task_metrics import task_metric

    metric, field = task_metric(ctx.task.metric), f"student.onnx '{ctx.cfg.student.onnx}'"
    if metric.name == "top1" and outputs.ndim == 2 and outputs.shape[1] == 1:  # its top-1 is class 0 whatever it says
        raise ConfigError(one_score_refusal(field))
    shape = "(batch, " + ", ".join(str(d) for d in outputs.shape[1:]) + ")"  # not the probe's batch of two
    try:
        for split in (ctx.dataset.val, ctx.dataset.test):  # the labels' own shape first: their message names it
            metric.check_labels(split.y, outputs)
        metric.score(outputs, ctx.dataset.val.y[:len(outputs)])
    except (ValueError, IndexError, TypeError) as exc:
        raise ConfigError(f"{field}: its output {shape} cannot be scored by task.metric {metric.name} against the data's y "
                          f"({exc}); y must be {metric.labels}, or choose another task.metric") from None


def _ship_checkpoint(ctx: RunContext) -> StageOutput:
    from edgekd.train.models import build_model, count_parameters, save_checkpoint
    from edgekd.train.trainer import predict_logits

    data = ctx.dataset
    model = build_model(ctx.cfg.student, data.input_shape, data.num_classes, ctx.base_dir, where="student").eval()
    out = save_checkpoint(model, ctx.layout.student_checkpoint)
    checkpoint = resolve_path(ctx.cfg.student.checkpoint, ctx.base_dir)
    logits = lambda x: predict_logits(model, x)  # noqa: E731
    field = f"student.checkpoint '{ctx.cfg.student.checkpoint}'"
    return StageOutput([out], {"mode": "none", "source": "checkpoint", "params": count_parameters(model),
                               **_accuracy(ctx, logits, field)}, inputs=[checkpoint], record=StudentRecord())


def _accuracy(ctx: RunContext, logits, field: str, metadata=None) -> dict:
    """Top-1 on validation and test, and the sanity floor on validation (given_check.py): the configured input scaling
    against the other standard ones (and the model's metadata), the classes' order against the model's outputs."""
    data = ctx.dataset
    val, test = data.val, data.test
    if data.reference_labels:  # its own predictions: nothing to measure against, and nothing to judge
        return {"measured": data.measured, "val_samples": len(val), "test_samples": len(test)}
    val_logits, test_logits = logits(val.x), logits(test.x)
    metrics = {"val_top1": ctx.task.score(val_logits, val.y), "test_top1": ctx.task.score(test_logits, test.y)}
    metrics.update(_say_nonfinite(field, val_logits, test_logits))
    if not ctx.task.has_classes:  # no chance level or class order to judge a task metric by: its score said
        import sys

        print(f"student (as given): validation {ctx.task.metric} {metrics['val_top1']:.1%} on {len(val)} samples", file=sys.stderr)
        check_pixel_scale(val, logits, ctx.task, metrics["val_top1"], field)
        if metrics["test_top1"] == 0:  # the gate's reference (test) of 0: any int8 would pass against it
            raise ConfigError(f"{field}: {ctx.task.metric} 0.0% on the test samples (validation {metrics['val_top1']:.1%}): "
                              "as given, the model finds nothing the labels hold, so a gate against it would pass any model; "
                              "check the inputs (scaling, layout) and the labels (y: their format and order), or judge it "
                              "without labels")
        return {**metrics, "task_metric": ctx.task.metric}
    predictions = val_logits.argmax(1)
    probe = None if isinstance(val.x, dict) else given_probe(data, logits, predictions)  # named inputs: validation only

    def sanity() -> None:
        if not isinstance(val.x, dict):  # named inputs (an npz per input) are fed as they are: no scaling to try
            metrics["val_top1_other_scalings"] = check_scaling(data, logits, probe[0], field, metadata)
        where = f"data.path '{ctx.cfg.data.path}'" if ctx.cfg.data.path else f"data.source '{ctx.cfg.data.source}'"
        on, labels, rows = probe or (predictions, val.y, "validation images")
        check_label_order(on, labels, data.classes, where, folders=ctx.cfg.data.source == "imagefolder", rows=rows)

    _judge_given(metrics["val_top1"], val.y, sanity, probe)
    return metrics


def _say_nonfinite(field: str, val_outputs: np.ndarray, test_outputs: np.ndarray) -> dict:
    """A warning when the given model's outputs hold NaN or infinity on some samples (they are scored wrong), and
    their counts for the distill stage's record; {} when every output is finite."""
    counts = {"val": nonfinite_count(val_outputs), "test": nonfinite_count(test_outputs)}
    if not any(counts.values()):
        return {}
    warnings.warn(f"{field}: non-finite outputs (NaN or inf) on {counts['val']} of {len(val_outputs)} validation and "
                  f"{counts['test']} of {len(test_outputs)} test samples: they count as wrong; check the model on those "
                  "inputs (a log or sqrt of a negative, a division by zero, an overflow) and the data's scaling",
                  stacklevel=2)
    return {"nonfinite_rows": counts}


def _judge_given(top1: float, labels: np.ndarray, sanity=None, probe=None) -> None:
    """Print the given model's validation top-1, run the `sanity` checks (wrong input scaling, classes out of the
    model's order: they name the fix), and stop when it is not clearly above chance, on the `probe` images where given
    (given_check.given_probe: validation and training images): the data does not reach it as it was trained (scaling,
    size, colour, or class folders that sort in another order than its labels)."""
    import sys

    from edgekd.pipeline.teacher_check import not_above_chance

    chance = float(np.bincount(labels).max() / len(labels))
    print(f"student (as given): validation top-1 {top1:.1%} on {len(labels)} images (largest class {chance:.1%})",
          file=sys.stderr)
    if sanity is not None:
        sanity()
    rows = "validation images"
    if probe is not None:
        predictions, labels, rows = probe
        top1, chance = float((predictions == labels).mean()), float(np.bincount(labels).max() / len(labels))
    low = not_above_chance(top1, chance, len(labels), rows)
    if low:
        raise ConfigError(f"student: the given model's {low}; give it the inputs it was trained on: data.normalize (and "
                          "data.scale for an npz's values), data.resize / center_crop / color, and class folders that sort "
                          "in the model's label order")


class AsGivenStage(Stage):
    """Stage 2 with distill.mode none: the user's trained model taken as it is, checked against the data."""

    name = "distill"
    # task: what the given model is judged by (every later stage's key includes this stage's sections)
    sections = ("student", "distill", "task")

    @classmethod
    def check(cls, config, base_dir) -> None:
        """A given .onnx that is not ONNX (a pickle, a .pt checkpoint renamed) is refused before any stage runs."""
        if config.ships_onnx:
            source = resolve_path(config.student.onnx, base_dir)
            if source.is_file():
                read_onnx_header(source, "student.onnx")

    def run(self) -> StageOutput:
        ctx = self.ctx
        return _ship_onnx(ctx) if ctx.cfg.ships_onnx else _ship_checkpoint(ctx)
