"""Stage 2: distill the student from the teacher ensemble (Hinton KD on cached soft targets, optional
hints and augmentation), then optionally fine-tune on labels. alpha 0 without hints trains from scratch."""
from __future__ import annotations

from pathlib import Path

import torch

from edgekd.core.metrics import topk
from edgekd.data.datasets import split_hash
from edgekd.pipeline.context import RunContext, StageOutput
from edgekd.pipeline.stages.teachers import build_teachers, teacher_checkpoints
from edgekd.train import distributed
from edgekd.train.distill.augment import ShiftFlip
from edgekd.train.distill.cache import TeacherLogitCache, resolve_cache_dir
from edgekd.train.distill.ensemble import EnsembleTargets
from edgekd.train.distill.hints import StudentWithHints, TeacherFeatures
from edgekd.train.distill.objective import DistillObjective
from edgekd.train.models import build_model, count_parameters, save_checkpoint
from edgekd.train.trainer import autocast_dtype, cross_entropy_loss, predict_logits, train

PROGRESS_FILES = ("distill.progress.pt", "finetune.progress.pt")


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
        from edgekd.pipeline.stages.distill_modes import run_mode

        return run_mode(ctx)
    folder = ctx.stage_dir("distill")
    student, metrics = distill_student(ctx, folder)
    path = folder / "student.pt"
    if distributed.is_main():
        save_checkpoint(student, path)
    return StageOutput([path], metrics, inputs=teacher_checkpoints(ctx))


def distill_student(ctx: RunContext, folder: Path) -> tuple[torch.nn.Module, dict]:
    """Train the configured student in `folder` (progress checkpoints there); returns it with its metrics."""
    cfg, data = ctx.cfg.distill, ctx.dataset
    seed = ctx.cfg.seed if cfg.seed is None else cfg.seed
    device = distributed.device(ctx.cfg.device)
    _clear_stale_progress(ctx, folder)
    x, y = distributed.place(torch.from_numpy(data.train.x), device), torch.from_numpy(data.train.y)
    teachers = [t.to(device) for t in build_teachers(ctx)] if cfg.alpha > 0 or cfg.hints else []
    augment = ShiftFlip(cfg.augment, len(y)) if cfg.augment else None
    targets, report = None, {}
    if cfg.alpha > 0:
        targets = ensemble_targets(ctx, cfg, teachers, x, augment)
        report["teacher_cache"] = targets.prepare()
    torch.manual_seed(seed)
    student = build_model(ctx.cfg.student, data.input_shape, data.num_classes, ctx.base_dir, where="student").to(device)
    module = StudentWithHints(student, cfg.hints, teachers, x[:8].to(device)) if cfg.hints else None
    objective = DistillObjective(cfg, x, targets, augment, module, TeacherFeatures(teachers, cfg.hints) if cfg.hints else None)
    phase = "distill" if teachers else "scratch"
    result = train(module or student, x, y, cfg.train, objective, seed=seed, desc=phase, checkpoint=folder / PROGRESS_FILES[0],
                   inputs=objective.inputs, on_epoch=objective.on_epoch, tag=ctx.stage_key("distill"))
    phases = {phase: result.summary()}
    if module is not None:
        module.remove_hooks()
    if cfg.finetune_epochs:
        finetune_inputs = lambda idx, epoch: objective.inputs(idx, cfg.train.epochs + epoch)  # fresh draws, same recipe
        tuned = train(student, x, y, cfg.train, cross_entropy_loss(), seed=seed + 1, desc="finetune",
                      checkpoint=folder / PROGRESS_FILES[1], epochs=cfg.finetune_epochs, inputs=finetune_inputs,
                      tag=ctx.stage_key("distill"))
        phases["finetune"] = tuned.summary()
    student = student.cpu().eval()
    metrics = {"params": count_parameters(student), "seed": seed, "phases": phases, **report,
               "loss": _describe_loss(cfg, phase), "world_size": distributed.world_size(),
               "val_top1": topk(predict_logits(student, data.val.x), data.val.y),
               "test_top1": topk(predict_logits(student, data.test.x), data.test.y)}
    return student, metrics


def ensemble_targets(ctx: RunContext, cfg, teachers, x: torch.Tensor, augment=None) -> EnsembleTargets:
    """The ensemble's soft targets over the training split, backed by the shared teacher-logit cache."""
    cache = TeacherLogitCache(resolve_cache_dir(cfg.cache_dir, ctx.base_dir, ctx.run_dir))
    data = ctx.dataset
    return EnsembleTargets(teachers, [t.weight for t in ctx.cfg.teachers], cfg, x, split_hash(data.train.x, data.train.y),
                           cache, augment, cfg.train.epochs, autocast_dtype(cfg.train.amp, distributed.model_device(teachers[0])))


def teacher_soft_targets(ctx: RunContext, temperature: float) -> torch.Tensor:
    """(N, classes) softened ensemble outputs on the un-augmented training split (for QAT): a cache hit
    after the distill stage, computed and cached otherwise."""
    cfg = ctx.cfg.distill.model_copy(update={"temperature": temperature, "augment": None})
    targets = ensemble_targets(ctx, cfg, build_teachers(ctx), torch.from_numpy(ctx.dataset.train.x))
    targets.prepare()
    return targets.soft_targets(0, torch.device("cpu"))


def _clear_stale_progress(ctx: RunContext, folder: Path) -> None:
    """Without --resume a stage starts over: progress checkpoints of an earlier attempt are removed."""
    if ctx.resume:
        return
    with distributed.main_first():
        if distributed.is_main():
            for name in PROGRESS_FILES:
                (folder / name).unlink(missing_ok=True)


def _describe_loss(cfg, phase: str) -> dict:
    if phase == "scratch":
        return {"kind": "cross_entropy", "labels": True}
    return {"kind": "kd" if cfg.alpha > 0 else "cross_entropy", "temperature": cfg.temperature, "alpha": cfg.alpha,
            "ensemble": cfg.ensemble, "labels": cfg.use_labels, "hints": [h.model_dump() for h in cfg.hints],
            "augment": cfg.augment.model_dump() if cfg.augment else None}
