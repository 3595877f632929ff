"""The run's models as later stages need them: the teachers and the student rebuilt from their checkpoints,
the ensemble's soft targets, the fp32 student's logits. Shared by stages so that no stage imports another.
torch is imported inside the functions: an ONNX student's run never calls the PyTorch ones."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgekd.core.fileio import resolve_path
from edgekd.pipeline.context import RunContext
from edgekd.pipeline.records import StudentRecord, read_record

if TYPE_CHECKING:
    import torch


def teacher_checkpoints(ctx: RunContext) -> list[Path]:
    """The checkpoint file behind each teacher: the configured one, or the one this run trained."""
    return [resolve_path(spec.checkpoint, ctx.base_dir) if spec.checkpoint else ctx.layout.teacher_checkpoint(i)
            for i, spec in enumerate(ctx.cfg.teachers)]


def build_teachers(ctx: RunContext) -> list[torch.nn.Module]:
    """Teacher modules with their weights: from the config's checkpoint or this run's trained one; logits out, a
    teacher that outputs probabilities giving their log (teachers[].outputs)."""
    from edgekd.train.distill.teacher_outputs import outputs_as_logits, probe_inputs
    from edgekd.train.models import build_model

    data = ctx.dataset
    teachers = []
    for index, spec in enumerate(ctx.cfg.teachers):
        trained = ctx.layout.teacher_checkpoint(index)
        if not spec.checkpoint and trained.is_file():
            spec = spec.model_copy(update={"checkpoint": str(trained)})
        teacher = build_model(spec, data.input_shape, data.num_classes, ctx.base_dir, where=f"teachers[{index}]").eval()
        outputs_as_logits(teacher, probe_inputs(data), spec.outputs)  # a softmax teacher's log: the teachers stage said so
        teachers.append(teacher)
    return teachers


def student_spec(ctx: RunContext):
    """The shipped student's model spec: config.student, or the peer that online distillation selected."""
    recorded = read_record(ctx.manifest, StudentRecord).student_spec
    return type(ctx.cfg.student).model_validate(recorded) if recorded else ctx.cfg.student


def build_student(ctx: RunContext, with_weights: bool = True, checkpoint=None) -> torch.nn.Module:
    """The run's student with its distilled weights (or `checkpoint`'s: distill.compare_scratch's scratch student)."""
    from edgekd.train.models import build_model

    data = ctx.dataset
    spec = student_spec(ctx)
    if with_weights:
        spec = spec.model_copy(update={"checkpoint": str(checkpoint or ctx.layout.student_checkpoint)})
    return build_model(spec, data.input_shape, data.num_classes, ctx.base_dir, where="student").eval()


def teacher_cache(ctx: RunContext):
    """The shared teacher-logit cache (distill.cache_dir; train/distill/cache.py), which every task's teachers fill."""
    from edgekd.train.distill.cache import TeacherLogitCache, resolve_cache_dir

    return TeacherLogitCache(resolve_cache_dir(ctx.cfg.distill.cache_dir, ctx.base_dir, ctx.run_dir))


def ensemble_targets(ctx: RunContext, cfg, teachers, x: torch.Tensor, augment=None):
    """The ensemble's soft targets over the training split, backed by the shared teacher-logit cache."""
    from edgekd.data.datasets import split_hash
    from edgekd.train import distributed
    from edgekd.train.distill.ensemble import EnsembleTargets
    from edgekd.train.trainer import autocast_dtype

    cache = teacher_cache(ctx)  # cfg is ctx.cfg.distill or a copy of it with other T / augment: the same cache_dir
    data = ctx.dataset
    return EnsembleTargets(teachers, [t.weight for t in ctx.cfg.teachers], cfg, x, split_hash(data.train.x, data.train.y),
                           cache, augment, cfg.train.epochs, autocast_dtype(cfg.train.amp, distributed.model_device(teachers[0])))


def teacher_soft_targets(ctx: RunContext, temperature: float) -> torch.Tensor:
    """(N, classes) softened ensemble outputs on the un-augmented training split (for QAT): a cache hit
    after the distill stage, computed and cached otherwise."""
    import torch

    cfg = ctx.cfg.distill.model_copy(update={"temperature": temperature, "augment": None})
    targets = ensemble_targets(ctx, cfg, build_teachers(ctx), torch.from_numpy(ctx.dataset.train.x))
    targets.prepare()
    return targets.soft_targets(0, torch.device("cpu"))


def teacher_ensemble_outputs(ctx: RunContext, x) -> np.ndarray:
    """The teachers' ensemble (PyTorch models) on `x`, as the student was distilled from it."""
    import torch  # teachers are PyTorch models: torch only here

    from edgekd.train.distill.losses import ensemble_soft_targets

    teacher_logits = [torch.from_numpy(z) for z in teacher_member_logits(ctx, x)]
    ensemble = ensemble_soft_targets(teacher_logits, 1.0, [t.weight for t in ctx.cfg.teachers], ctx.cfg.distill.ensemble)
    return ensemble.numpy()


def teacher_member_logits(ctx: RunContext, x) -> list[np.ndarray]:
    """Each teacher's logits on `x`, computed once per evaluation set: the report's teacher row (their ensemble) and its
    members' rows read the same outputs, instead of loading and running every teacher twice."""
    from edgekd.train.trainer import predict_logits

    cached = ctx.__dict__.get("_teacher_member_logits")
    if cached is not None and cached[0] is x:
        return cached[1]
    logits = [predict_logits(teacher, x) for teacher in build_teachers(ctx)]
    ctx.__dict__["_teacher_member_logits"] = (x, logits)
    return logits


def student_outputs(ctx: RunContext, x) -> dict[str, np.ndarray] | None:
    """Every output of the fp32 model on `x` by name, which each candidate's outputs are compared with: a task without
    classes (fidelity), or a classifier with outputs beside its logits (an embedding a user's app reads, which int8
    may damage while top-1 holds); None for a classifier of one output, which compares its logits (student_logits)."""
    from edgekd.pipeline.onnx_intake import output_names

    if ctx.task.has_classes and len(output_names(ctx.layout.fp32_onnx)) < 2:
        return None
    from edgekd.core.metrics import predict_outputs
    from edgekd.runtimes.ort import OrtSession

    return predict_outputs(OrtSession(ctx.layout.fp32_onnx, threads=None), x)


def student_logits(ctx: RunContext, x: np.ndarray) -> np.ndarray:
    """The fp32 student's logits on `x`: what every candidate is compared with. From PyTorch when the student
    is a PyTorch model (the exported file is checked against it), from onnxruntime when it was given as ONNX."""
    if ctx.cfg.ships_onnx or ctx.task.fp32_from_onnx:  # checked at export
        from edgekd.core.metrics import predict
        from edgekd.runtimes.ort import OrtSession

        return predict(OrtSession(ctx.layout.fp32_onnx, threads=None).run, x)
    from edgekd.train.trainer import predict_logits

    return predict_logits(build_student(ctx), x)
