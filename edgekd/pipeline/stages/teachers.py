"""Stage 1: make the teacher ensemble ready: load checkpoints or train teachers that have none (with DDP
under torchrun), and measure each teacher and the ensemble. Their logits are cached by the distill stage."""
from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

from edgekd.pipeline.context import RunContext
from edgekd.pipeline.records import MEMBER_WARNINGS
from edgekd.pipeline.stage import Stage, StageOutput, fresh_progress
from edgekd.pipeline.teacher_check import check_given_teachers

if TYPE_CHECKING:
    pass

# torch is imported inside the functions: a run without teachers (a model shipped as given, maybe an ONNX
# file) passes through this stage without it.


def check_hints(ctx: RunContext) -> None:
    """Fail on a hint's module name or feature shape now, with untrained copies of the models, rather than in
    the distill stage after the teachers have trained for hours."""
    import torch

    from edgekd.train.distill.hints import StudentWithHints
    from edgekd.train.models import build_model

    data = ctx.dataset
    build = lambda spec, where: build_model(spec.model_copy(update={"checkpoint": None}), data.input_shape,  # noqa: E731
                                            data.num_classes, ctx.base_dir, where=where)
    teachers = [build(spec, f"teachers[{i}]") for i, spec in enumerate(ctx.cfg.teachers)]
    StudentWithHints(build(ctx.cfg.student, "student"), ctx.cfg.distill.hints, teachers,
                     torch.from_numpy(data.train.x[:2])).remove_hooks()


def check_every_model(ctx: RunContext) -> None:
    """Build every model of the run (teachers, student, online peers) untrained and pass a batch through it
    (build_model's check_io): a student that does not fit the data fails now, not after the teachers trained."""
    from edgekd.train.models import build_model

    data = ctx.dataset
    specs = [*((f"teachers[{i}]", t) for i, t in enumerate(ctx.cfg.teachers)), ("student", ctx.cfg.student),
             *((f"distill.online.peers[{i}]", p) for i, p in enumerate(ctx.cfg.distill.online.peers))]
    for where, spec in specs:
        if spec.arch is not None:  # a student given as ONNX has no PyTorch model to build
            build_model(spec.model_copy(update={"checkpoint": None}), data.input_shape, data.num_classes, ctx.base_dir,
                        where=where)


def check_inputs(ctx: RunContext) -> list[dict]:
    """Everything about the data and models that can be known before training: the dataset loads and is sane,
    every model fits it, hints resolve, and each checkpoint teacher is right for the data as it is fed (a
    checkpoint fed the wrong input scaling stops the run now, not after hours). The checkpoint results."""
    data = ctx.dataset
    if ctx.cfg.ships_onnx:  # no PyTorch model in the run, and no torch needed
        return []
    check_every_model(ctx)
    if not ctx.cfg.teachers:
        return []
    if ctx.cfg.distill.hints:
        check_hints(ctx)
    from edgekd.train import distributed
    from edgekd.train.models import build_model

    return check_given_teachers(ctx, lambda i, spec: build_model(spec, data.input_shape, data.num_classes, ctx.base_dir,
                                                                 where=f"teachers[{i}]").eval(),
                                **({} if distributed.is_main() else {"log": lambda _m: None}))


def _metrics(ctx: RunContext, report: list) -> dict:
    import torch

    from edgekd.train.distill.losses import ensemble_soft_targets
    from edgekd.train.trainer import predict_logits

    test = ctx.dataset.test
    weights = [t.weight for t in ctx.cfg.teachers]
    test_logits = [torch.from_numpy(predict_logits(model, test.x)) for _, model in report]
    for (entry, _), z in zip(report, test_logits):
        # on the test split, while the printed figures are validation's: test_top1 says which (top1 kept for readers)
        entry["top1"] = entry["test_top1"] = ctx.task.score(z.numpy(), test.y)
    ensemble = ensemble_soft_targets(test_logits, 1.0, weights, ctx.cfg.distill.ensemble).numpy()
    ensemble_top1 = ctx.task.score(ensemble, test.y)
    return {"teachers": [entry for entry, _ in report], MEMBER_WARNINGS: _say_weak_members(ctx, report),
            "ensemble": {"params": sum(e["params"] for e, _ in report), "top1": ensemble_top1, "test_top1": ensemble_top1},
            "preprocessing": ctx.dataset.preprocessing(),  # what every model was fed (data.normalize)
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}


def _say_weak_members(ctx: RunContext, report: list) -> list[str]:
    """An ensemble's members on the validation split, and a warning naming one not clearly above chance or pulling the
    ensemble under its best member, as for tables (a trained teacher at 7.5% with 8 classes was averaged in unsaid:
    a checkpoint that low is refused before training, one trained in the run is not). One teacher has no ensemble to
    pull down: the bench stage says so of it."""
    import torch

    from edgekd.pipeline.teacher_check import say_weak_members, top1_without_each
    from edgekd.train.distill.losses import ensemble_soft_targets
    from edgekd.train.trainer import predict_logits

    val = ctx.dataset.val
    if len(report) < 2 or not ctx.task.has_classes or len(val) == 0:
        return []
    logits = [torch.from_numpy(predict_logits(model, val.x)) for _, model in report]
    members = []
    for index, ((entry, _), z) in enumerate(zip(report, logits)):
        entry["val_top1"] = ctx.task.score(z.numpy(), val.y)  # recorded beside the test top-1
        members.append({"index": index, "name": entry["name"], "val_top1": entry["val_top1"]})
    weights, mode = [t.weight for t in ctx.cfg.teachers], ctx.cfg.distill.ensemble
    ensemble = ensemble_soft_targets(logits, 1.0, weights, mode).numpy()
    without = top1_without_each(logits, weights, mode, ctx.task.score, val.y)
    return say_weak_members(members, ctx.task.score(ensemble, val.y), val.y, "validation images", without)


def _outputs_probabilities(ctx: RunContext, index: int, spec, model) -> bool:
    """teachers[].outputs on a PyTorch teacher: its log taken where it outputs probabilities (a network ending in
    softmax, which distillation took as logits unsaid: a 97.7% teacher taught a student to 82.0%, the same teacher's
    logits to 95.5%). Said in one line when found (auto), not when configured. True when its outputs are now their log."""
    from edgekd.train import distributed
    from edgekd.train.distill.teacher_outputs import PROBE_ROWS, outputs_as_logits, probe_inputs

    probe = probe_inputs(ctx.dataset)
    if not outputs_as_logits(model, probe, spec.outputs):
        return False
    if spec.outputs == "auto" and distributed.is_main():
        split = "validation" if len(ctx.dataset.val) else "training"
        print(f"[teachers] teachers[{index}] ({spec.arch}): its outputs are probabilities (non-negative rows summing to 1 "
              f"on {min(PROBE_ROWS, len(probe))} {split} images), not logits: distillation takes their log as logits "
              f"(set teachers[{index}].outputs: logits to take them as they are)", file=sys.stderr, flush=True)
    return True


class TeachersStage(Stage):
    """Stage 1: the teacher ensemble, checked, trained where it has no checkpoint, measured."""

    name = "teachers"
    sections = ("seed", "data", "teachers")
    trains = True

    @classmethod
    def check(cls, config, base_dir) -> None:
        if config.data.source in ("npz", "imagefolder"):  # the data is there before anything trains
            from edgekd.data.sources import data_path

            data_path(config.data.source, config.data.path, base_dir)

    def check_inputs(self) -> list[dict]:
        """The data and model checks (check_inputs above), made before the run folder is touched."""
        return check_inputs(self.ctx)

    def run(self) -> StageOutput:
        ctx = self.ctx
        given = ctx.checked_teachers if ctx.checked_teachers is not None else check_inputs(ctx)
        if not ctx.cfg.teachers:  # online distillation, or a model shipped as given: nothing to train here
            return StageOutput([], {"teachers": [], "ensemble": None})
        import torch

        from edgekd.train import distributed
        from edgekd.train.models import build_model, count_parameters, save_checkpoint
        from edgekd.train.trainer import cross_entropy_loss, train

        data, folder = ctx.dataset, ctx.stage_dir("teachers")
        device = distributed.device(ctx.cfg.device)
        x_train, y_train = distributed.place(torch.from_numpy(data.train.x), device), torch.from_numpy(data.train.y)
        outputs, report = [], []
        for index, spec in enumerate(ctx.cfg.teachers):
            where = f"teachers[{index}]"
            torch.manual_seed(ctx.cfg.seed + index)
            model = build_model(spec, data.input_shape, data.num_classes, ctx.base_dir, where=where).to(device)
            entry = {"name": f"teacher-{index}", "arch": spec.arch, "width": spec.width, "params": count_parameters(model)}
            if not spec.checkpoint:
                progress = fresh_progress(ctx, folder / f"teacher-{index}.progress.pt")
                result = train(model, x_train, y_train, spec.train, cross_entropy_loss(), seed=ctx.cfg.seed + index,
                               desc=f"teacher {index}", checkpoint=progress, tag=f"{ctx.stage_key('teachers')}|{index}")
                if distributed.is_main():
                    outputs.append(save_checkpoint(model.cpu(), ctx.layout.teacher_checkpoint(index)))
                entry.update(result.summary())
            model = model.cpu().eval()
            if _outputs_probabilities(ctx, index, spec, model):
                entry["outputs"] = "probabilities: their log taken as logits"
            report.append((entry, model))
        distributed.barrier()  # the other ranks go on only once rank 0 has written every checkpoint
        return StageOutput(outputs, {**_metrics(ctx, report), "given_checkpoints": given} if distributed.is_main() else {})
