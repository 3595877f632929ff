"""Stage 1: make the teacher ensemble ready: load checkpoints or train teachers that have none,
then cache their logits over the training split for distillation."""
from __future__ import annotations

import time

import numpy as np
import torch

from ..bench.accuracy import topk
from ..distill.losses import ensemble_soft_targets
from ..distill.trainer import cross_entropy_loss, predict_logits, train
from ..errors import DataError
from ..fileio import atomic_path
from ..models import build_model, count_parameters, save_checkpoint
from .context import RunContext, StageOutput


def build_teachers(ctx: RunContext) -> list[torch.nn.Module]:
    """Teacher modules with their weights: from the config's checkpoint or this run's trained one."""
    data, folder = ctx.dataset, ctx.stage_dir("teachers")
    teachers = []
    for index, spec in enumerate(ctx.cfg.teachers):
        trained = folder / f"teacher-{index}.pt"
        if not spec.checkpoint and trained.is_file():
            spec = spec.model_copy(update={"checkpoint": str(trained)})
        teachers.append(build_model(spec, data.input_shape, data.num_classes, ctx.base_dir, where=f"teachers[{index}]").eval())
    return teachers


def run(ctx: RunContext) -> StageOutput:
    if not ctx.cfg.teachers:  # online distillation: the peers teach each other
        return StageOutput([], {"teachers": [], "ensemble": None})
    data, folder = ctx.dataset, ctx.stage_dir("teachers")
    x_train, y_train = torch.from_numpy(data.train.x), torch.from_numpy(data.train.y)
    outputs, report = [], []
    for index, spec in enumerate(ctx.cfg.teachers):
        model = build_model(spec, data.input_shape, data.num_classes, ctx.base_dir, where=f"teachers[{index}]")
        entry = {"name": f"teacher-{index}", "arch": spec.arch, "params": count_parameters(model)}
        if not spec.checkpoint:
            torch.manual_seed(ctx.cfg.seed + index)
            model = build_model(spec, data.input_shape, data.num_classes, ctx.base_dir, where=f"teachers[{index}]")
            result = train(model, x_train, y_train, spec.train, cross_entropy_loss(), seed=ctx.cfg.seed + index,
                           desc=f"teacher {index}", checkpoint=folder / f"teacher-{index}.progress.pt")
            outputs.append(save_checkpoint(model, folder / f"teacher-{index}.pt"))
            entry.update(train_seconds=round(result.seconds, 2), images_per_second=round(result.images_per_second, 1),
                         autocast=result.autocast)
        report.append((entry, model.eval()))
    logits = [predict_logits(m, data.train.x) for _, m in report]
    _check_finite(logits)
    cache = folder / "teacher-logits.npy"
    with atomic_path(cache) as tmp, open(tmp, "wb") as handle:
        # float16 halves the cache; logits need no more precision than that for soft targets.
        np.save(handle, np.stack(logits).astype(np.float16))
    outputs.append(cache)
    return StageOutput(outputs, _metrics(ctx, report))


def _check_finite(logits: list[np.ndarray]) -> None:
    for index, z in enumerate(logits):
        if not np.isfinite(z).all():
            raise DataError(f"teachers[{index}]: outputs contain NaN or Inf; check the checkpoint and the data normalisation")


def _metrics(ctx: RunContext, report: list) -> dict:
    test = ctx.dataset.test
    weights = [t.weight for t in ctx.cfg.teachers]
    test_logits = [torch.from_numpy(predict_logits(model, test.x)) for _, model in report]
    for (entry, _), z in zip(report, test_logits):
        entry["top1"] = topk(z.numpy(), test.y)
    ensemble = ensemble_soft_targets(test_logits, 1.0, weights, ctx.cfg.distill.ensemble).numpy()
    return {"teachers": [entry for entry, _ in report],
            "ensemble": {"params": sum(e["params"] for e, _ in report), "top1": topk(ensemble, test.y)},
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
