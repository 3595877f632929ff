"""Stage 2: distill the student from the teacher ensemble's cached logits (Hinton KD)."""
from __future__ import annotations

import numpy as np
import torch

from ..bench.accuracy import topk
from ..distill.losses import ensemble_soft_targets, kd_loss
from ..distill.trainer import cross_entropy_loss, predict_logits, train
from ..models import build_model, count_parameters, save_checkpoint
from .context import RunContext, StageOutput


def student_spec(ctx: RunContext):
    """The shipped student's model spec: config.student, or the peer that online distillation selected."""
    recorded = ctx.manifest.metrics("distill").get("student_spec")
    return type(ctx.cfg.student).model_validate(recorded) if recorded else ctx.cfg.student


def build_student(ctx: RunContext, with_weights: bool = True) -> torch.nn.Module:
    data = ctx.dataset
    spec = student_spec(ctx)
    if with_weights:
        spec = spec.model_copy(update={"checkpoint": str(ctx.stage_dir("distill") / "student.pt")})
    return build_model(spec, data.input_shape, data.num_classes, ctx.base_dir, where="student").eval()


def run(ctx: RunContext) -> StageOutput:
    if ctx.cfg.distill.mode != "offline":
        from .distill_modes import run_mode

        return run_mode(ctx)
    cfg, data, folder = ctx.cfg.distill, ctx.dataset, ctx.stage_dir("distill")
    cache = ctx.stage_dir("teachers") / "teacher-logits.npy"
    teacher_logits = torch.from_numpy(np.load(cache, mmap_mode="r").astype(np.float32))
    weights = [t.weight for t in ctx.cfg.teachers]
    soft = ensemble_soft_targets(list(teacher_logits), cfg.temperature, weights, cfg.ensemble)
    x, y = torch.from_numpy(data.train.x), torch.from_numpy(data.train.y)

    torch.manual_seed(ctx.cfg.seed)
    student = build_model(ctx.cfg.student, data.input_shape, data.num_classes, ctx.base_dir, where="student")
    loss = lambda logits, idx, labels: kd_loss(logits, soft[idx], labels, cfg.temperature, cfg.alpha)  # noqa: E731
    kd = train(student, x, y, cfg.train, loss, seed=ctx.cfg.seed, desc="distill", checkpoint=folder / "distill.progress.pt")
    phases = {"distill": {"seconds": round(kd.seconds, 2), "images_per_second": round(kd.images_per_second, 1),
                          "autocast": kd.autocast}}
    if cfg.finetune_epochs:
        ft = train(student, x, y, cfg.train, cross_entropy_loss(), seed=ctx.cfg.seed + 1, desc="finetune",
                   checkpoint=folder / "finetune.progress.pt", epochs=cfg.finetune_epochs)
        phases["finetune"] = {"seconds": round(ft.seconds, 2), "images_per_second": round(ft.images_per_second, 1)}
    path = save_checkpoint(student, folder / "student.pt")
    metrics = {"params": count_parameters(student), "phases": phases,
               "val_top1": topk(predict_logits(student, data.val.x), data.val.y),
               "test_top1": topk(predict_logits(student, data.test.x), data.test.y)}
    return StageOutput([path], metrics, inputs=[cache])
