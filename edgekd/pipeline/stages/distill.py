"""Stage 2: distill the student from the teacher ensemble (Hinton KD on cached soft targets, optional
hints and augmentation), then optionally fine-tune on labels. alpha 0 without hints trains from scratch."""
from __future__ import annotations

import math
import sys
import warnings
from pathlib import Path

import torch

from edgekd.core.errors import ConfigError
from edgekd.pipeline.context import RunContext
from edgekd.pipeline.records import StudentRecord
from edgekd.pipeline.run_models import build_teachers, ensemble_targets, teacher_checkpoints
from edgekd.pipeline.stage import Stage, StageOutput, fresh_progress
from edgekd.train import distributed
from edgekd.train.distill.augment import ShiftFlip
from edgekd.train.distill.hints import StudentWithHints, TeacherFeatures
from edgekd.train.distill.objective import DistillObjective
from edgekd.train.models import build_model, count_parameters, save_checkpoint
from edgekd.train.trainer import cross_entropy_loss, predict_logits, train

PROGRESS_FILES = ("distill.progress.pt", "finetune.progress.pt")
SCRATCH_CHECKPOINT = "student-scratch.pt"  # distill.compare_scratch's student (pipeline/stages/bench.py reads it)


def distill_student(ctx: RunContext, folder: Path, cfg=None, spec=None) -> tuple[torch.nn.Module, dict]:
    """Train the configured student in `folder` (progress checkpoints there); returns it with its metrics.
    `cfg`, `spec`: a distill section and a student other than the config's (the scratch baseline's)."""
    cfg, data = cfg or ctx.cfg.distill, ctx.dataset
    seed = ctx.cfg.seed if cfg.seed is None else cfg.seed
    device = distributed.device(ctx.cfg.device)
    for name in PROGRESS_FILES:
        fresh_progress(ctx, folder / name)
    x, y = distributed.place(torch.from_numpy(data.train.x), device), torch.from_numpy(data.train.y)
    teachers = [t.to(device) for t in build_teachers(ctx)] if cfg.alpha > 0 or cfg.hints else []
    augment = ShiftFlip(cfg.augment, len(y)) if cfg.augment else None
    targets, report = None, {}
    if cfg.alpha > 0:
        targets = ensemble_targets(ctx, cfg, teachers, x, augment)
        report["teacher_cache"] = targets.prepare()
    torch.manual_seed(seed)
    spec = spec or ctx.cfg.student
    student = build_model(spec, data.input_shape, data.num_classes, ctx.base_dir, where="student").to(device)
    start = _checkpoint_top1(ctx, spec, student)
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
               "val_top1": ctx.task.score(predict_logits(student, data.val.x), data.val.y),
               "test_top1": ctx.task.score(predict_logits(student, data.test.x), data.test.y)}
    if start is not None:
        metrics["checkpoint"] = start  # the student's starting point, beside where training took it
        metrics["fell_from_checkpoint"] = _fell_from_checkpoint(start, metrics["val_top1"])
    return student, metrics


def _checkpoint_top1(ctx: RunContext, spec, student: torch.nn.Module) -> dict | None:
    """student.checkpoint's validation top-1 before any training, as teacher checkpoints are measured: fine-tuning
    at too high a learning rate once took a 95.5% checkpoint to 10% and nothing showed where it had started."""
    val = ctx.dataset.val
    if not spec.checkpoint or not ctx.task.has_classes or len(val) == 0:
        return None
    top1 = ctx.task.score(predict_logits(student, val.x), val.y)
    if distributed.is_main():
        print(f"[distill] student.checkpoint '{spec.checkpoint}': validation top-1 {top1:.1%} on {len(val)} images "
              "before training", file=sys.stderr, flush=True)
    return {"path": spec.checkpoint, "val_top1": top1, "val_samples": len(val)}


def _fell_from_checkpoint(start: dict, val_top1: float) -> list[str]:
    """A warning (said and returned, for the report) when training left the student clearly under its checkpoint's
    validation top-1: two standard errors of the difference, as the bench stage tells two top-1s apart."""
    before, n = start["val_top1"], start["val_samples"]
    if before - val_top1 <= 2 * math.sqrt((before * (1 - before) + val_top1 * (1 - val_top1)) / max(n, 1)):
        return []
    said = (f"student: the student ended {100 * (before - val_top1):.1f} points under its checkpoint's {before:.1%} "
            f"(validation top-1 {val_top1:.1%} on {n} images; student.checkpoint '{start['path']}'): lower distill.train.lr")
    if distributed.is_main():
        warnings.warn(said, stacklevel=3)
    return [said]


def _describe_loss(cfg, phase: str) -> dict:
    if phase == "scratch":
        return {"kind": "cross_entropy", "labels": True}
    kind = ("dkd" if cfg.dkd is not None else "kd") if cfg.alpha > 0 else "cross_entropy"
    return {"kind": kind, "temperature": cfg.temperature, "alpha": cfg.alpha,
            "dkd": cfg.dkd.model_dump() if cfg.dkd is not None else None,
            "ensemble": cfg.ensemble, "labels": cfg.use_labels, "hints": [h.model_dump() for h in cfg.hints],
            "augment": cfg.augment.model_dump() if cfg.augment else None}


def _untrained_student(config) -> str | None:
    """The refusal of a config whose student no epoch would train and no checkpoint gives weights: it shipped at chance
    with exit 0, and the gate (against the student's own fp32) passed it."""
    cfg = config.distill
    trains = cfg.train.epochs > 0 or (cfg.mode == "offline" and cfg.finetune_epochs > 0)
    if cfg.mode not in ("offline", "online") or trains or config.student.checkpoint or config.student.arch is None:
        return None
    return ("distill.train.epochs 0 trains nothing and student.checkpoint is not given: the student would be untrained; "
            "give epochs >= 1 or a checkpoint")


def online_teachers_note(config) -> str:
    """What teachers do in distill.mode online, said at the config check: deep mutual learning trains the student and
    its peers on labels and on each other only (pipeline/distill_modes.py run_online), and a trial's teachers sat in
    the report's teacher row as if they had taught."""
    qat = ", and as quantize.method qat's soft targets" if config.quantize.method == "qat" else ""
    return (f"distill.mode online: teachers are not used for training, only as the report's reference{qat} (the student "
            "and distill.online.peers learn from each other and the labels); use distill.mode offline to distill from them")


class DistillStage(Stage):
    """Stage 2: the student, distilled from the teachers (offline here; online and data-free in distill_modes)."""

    name = "distill"
    sections = ("student", "distill")
    trains = True

    @classmethod
    def check(cls, config, base_dir) -> None:
        from edgekd.train.distill.cache import resolve_cache_dir

        cache = resolve_cache_dir(config.distill.cache_dir, base_dir) if config.distill.cache_dir else None
        if cache is not None and cache.exists() and not cache.is_dir():  # said before the teachers train, not after
            raise ConfigError(f"distill.cache_dir '{config.distill.cache_dir}': {cache} is a file, not a folder; give a "
                              "folder (made if missing) for the teachers' cached outputs")
        untrained = _untrained_student(config)
        if untrained:
            raise ConfigError(untrained)
        if config.distill.mode == "online" and config.teachers:
            warnings.warn(online_teachers_note(config), stacklevel=2)
        if config.distill.compare_scratch and config.distill.mode != "offline":
            raise ConfigError(f"distill.compare_scratch: trained beside offline distillation only (distill.mode is "
                              f"'{config.distill.mode}'); remove distill.compare_scratch or use distill.mode offline")

    def run(self) -> StageOutput:
        ctx = self.ctx
        if ctx.cfg.distill.mode != "offline":
            from edgekd.pipeline.distill_modes import run_mode

            return run_mode(ctx)
        folder = ctx.stage_dir("distill")
        student, metrics = distill_student(ctx, folder)
        path = folder / "student.pt"
        if distributed.is_main():
            save_checkpoint(student, path)
        outputs = [path]
        if ctx.cfg.distill.compare_scratch:
            metrics["scratch"] = self._scratch(folder)
            outputs.append(folder / SCRATCH_CHECKPOINT)
        fell = metrics.pop("fell_from_checkpoint", None) or None  # the record keeps it, for the bench stage
        return StageOutput(outputs, metrics, inputs=teacher_checkpoints(ctx), record=StudentRecord(student_warnings=fell))

    def _scratch(self, folder: Path) -> dict:
        """distill.compare_scratch: the same student, seed and training settings on labels alone (no teachers, hints
        or fine-tuning); the bench stage reports it as the reference row student_scratch."""
        scratch_cfg = self.ctx.cfg.distill.model_copy(update={"alpha": 0.0, "hints": [], "dkd": None, "finetune_epochs": 0,
                                                              "logit_standardize": False, "use_labels": True})
        (folder / "scratch").mkdir(exist_ok=True)
        # from random weights even where student.checkpoint starts the distilled one: "from scratch" is what the row says
        fresh = self.ctx.cfg.student.model_copy(update={"checkpoint": None})
        student, metrics = distill_student(self.ctx, folder / "scratch", scratch_cfg, fresh)
        if distributed.is_main():
            save_checkpoint(student, folder / SCRATCH_CHECKPOINT)
        return {k: metrics[k] for k in ("params", "val_top1", "test_top1", "phases")}
