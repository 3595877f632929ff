"""Stage 2 in its other modes: online (deep mutual learning) and data-free distillation.

Both end like offline distillation, with 02-distill/student.pt, so quantize, export, compile, bench
and gate run unchanged.
"""
from __future__ import annotations

import warnings

import numpy as np
import torch

from edgekd.core.errors import ConfigError
from edgekd.core.fileio import atomic_path
from edgekd.pipeline.context import RunContext
from edgekd.pipeline.records import StudentRecord
from edgekd.pipeline.run_models import build_teachers
from edgekd.pipeline.stage import StageOutput
from edgekd.train import distributed
from edgekd.train.distill.datafree import DataFreeSettings, synthesize_and_distill
from edgekd.train.distill.online import PeerGroup, mutual_loss_fn
from edgekd.train.models import build_model, count_parameters, save_checkpoint
from edgekd.train.trainer import predict_logits, train


def run_mode(ctx: RunContext) -> StageOutput:
    return {"online": run_online, "data_free": run_data_free}[ctx.cfg.distill.mode](ctx)


def _metrics(ctx: RunContext, student: torch.nn.Module) -> dict:
    data = ctx.dataset
    return {"params": count_parameters(student), "val_top1": ctx.task.score(predict_logits(student, data.val.x), data.val.y),
            "test_top1": ctx.task.score(predict_logits(student, data.test.x), data.test.y)}


def student_seed(ctx: RunContext) -> int:
    """distill.seed, else the run's seed: the student's initial weights and its training draws, in every mode."""
    return ctx.cfg.seed if ctx.cfg.distill.seed is None else ctx.cfg.distill.seed


def run_online(ctx: RunContext) -> StageOutput:
    cfg, data, folder = ctx.cfg.distill, ctx.dataset, ctx.stage_dir("distill")
    specs = [ctx.cfg.student, *cfg.online.peers]
    seed = student_seed(ctx)
    torch.manual_seed(seed)
    peers = [build_model(spec, data.input_shape, data.num_classes, ctx.base_dir, where=f"distill.online.peers[{i}]")
             for i, spec in enumerate(specs)]
    frozen = [i for i, peer in enumerate(peers) if not any(w.requires_grad for w in peer.parameters())]
    if frozen:  # it would take part in every step and teach the others whatever it guesses
        where = "student" if frozen[0] == 0 else f"distill.online.peers[{frozen[0] - 1}]"
        raise ConfigError(f"{where}: no trainable parameters (requires_grad is False for all), so it cannot learn in "
                          "mutual training; unfreeze it, or train it first and give it as a teacher (distill.mode offline)")
    device = distributed.device(ctx.cfg.device)
    group = PeerGroup(peers).to(device)
    x, y = distributed.place(torch.from_numpy(data.train.x), device), torch.from_numpy(data.train.y)
    result = train(group, x, y, cfg.train, mutual_loss_fn(cfg.online.temperature), seed=seed, desc="mutual",
                   checkpoint=folder / "online.progress.pt")
    group.cpu()
    val_top1 = [ctx.task.score(predict_logits(p, data.val.x), data.val.y) for p in peers]
    chosen = 0 if cfg.online.select == "student" else int(np.argmax(val_top1))
    if chosen:  # the model that ships is not the configured student: said, not only recorded as chosen_peer
        warnings.warn(f"distill.online.select best: distill.online.peers[{chosen - 1}] ({_described(specs[chosen], peers[chosen])}, "
                      f"validation top-1 {val_top1[chosen]:.1%}) ships instead of the student ({_described(specs[0], peers[0])}, "
                      f"{val_top1[0]:.1%}); set distill.online.select: student to ship the configured student", stacklevel=2)
    outputs = [save_checkpoint(peer, folder / f"peer-{i}.pt") for i, peer in enumerate(peers)]
    outputs.append(save_checkpoint(peers[chosen], folder / "student.pt"))
    metrics = {**_metrics(ctx, peers[chosen]), "mode": "online", "seed": seed,
               "peers": [{"arch": s.arch, "width": s.width, "params": count_parameters(p), "val_top1": v,
                          "test_top1": ctx.task.score(predict_logits(p, data.test.x), data.test.y)}
                         for s, p, v in zip(specs, peers, val_top1)],
               "chosen_peer": chosen,
               "phases": {"mutual": {"seconds": round(result.seconds, 2), "images_per_second": round(result.images_per_second, 1),
                                     "autocast": result.autocast}}}
    return StageOutput(outputs, metrics, record=StudentRecord(student_spec=specs[chosen].model_dump(mode="json")))


def _described(spec, model) -> str:
    return f"{spec.arch}{f' width {spec.width}' if spec.width else ''}, {count_parameters(model):,} parameters"


def run_data_free(ctx: RunContext) -> StageOutput:
    cfg, data, folder = ctx.cfg.distill, ctx.dataset, ctx.stage_dir("distill")
    teachers = build_teachers(ctx)
    seed = student_seed(ctx)
    torch.manual_seed(seed)
    student = build_model(ctx.cfg.student, data.input_shape, data.num_classes, ctx.base_dir, where="student")
    settings = DataFreeSettings(**cfg.data_free.model_dump(), temperature=cfg.temperature)
    # Only the teachers and the preprocessing statistics (which travel with a model) are used here:
    # no training image reaches the generator or the student.
    result = synthesize_and_distill(teachers, student, data.input_shape, data.mean, data.std, settings, seed=seed,
                                    temperature_weights=[t.weight for t in ctx.cfg.teachers], device=distributed.device(ctx.cfg.device))
    student.cpu()
    synthetic = ctx.layout.synthetic_set
    labels = np.mean([predict_logits(t, result.samples) for t in teachers], axis=0).argmax(1)
    with atomic_path(synthetic) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, x=result.samples.astype(np.float32), y=labels.astype(np.int64))
    grid = save_sample_grid(result.samples, data.mean, data.std, folder / "synthetic.png")
    path = save_checkpoint(student, folder / "student.pt")
    trace = result.bn_loss
    metrics = {**_metrics(ctx, student), "mode": "data_free", "seed": seed, "steps": result.steps, "settings": settings.model_dump(),
               "bn_loss": {"first": trace[0], "last": float(np.mean(trace[-10:])), "trace_every_10": trace[::10]},
               "synthetic": {"samples": len(result.samples), "class_counts": np.bincount(labels, minlength=data.num_classes).tolist()},
               "phases": {"data_free": {"seconds": round(result.seconds, 2),
                                        "images_per_second": round(result.steps * settings.batch_size * (1 + settings.student_steps) / result.seconds, 1)}}}
    return StageOutput([path, synthetic, *([grid] if grid else [])], metrics, record=StudentRecord())


def save_sample_grid(samples: np.ndarray, mean, std, path, count: int = 64):
    """A PNG grid of synthesized inputs, for the report; skipped when matplotlib is absent."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    images = samples[:count] * np.asarray(std)[None, :, None, None] + np.asarray(mean)[None, :, None, None]
    side = int(np.ceil(np.sqrt(len(images))))
    fig, axes = plt.subplots(side, side, figsize=(side, side))
    for ax, image in zip(axes.flat, images):
        ax.imshow(np.clip(image.transpose(1, 2, 0).squeeze(-1) if image.shape[0] == 1 else image.transpose(1, 2, 0), 0, 1),
                  cmap="gray", vmin=0, vmax=1)
    for ax in axes.flat:
        ax.axis("off")
    fig.tight_layout(pad=0.1)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=60)
    plt.close(fig)
    return path
