"""A teacher given as a checkpoint is measured on the validation split before anything learns from it.

A checkpoint trained elsewhere is only right if it sees inputs scaled as in its own training. edgekd feeds
every model (pixel - mean) / std per data.normalize; a model trained on raw [0, 1] pixels, or on ImageNet
statistics, still gives answers, just worse ones (98% in its owner's evaluation, 38% here), and distillation
would then copy them into a student that passes a gate measured against itself. So each given teacher's
validation top-1 is printed, and the run stops when it is not clearly above chance, or when another standard
input scaling makes it much more accurate (then that is almost certainly how it was trained).
"""
from __future__ import annotations

import math
import sys
from collections.abc import Callable

import numpy as np

from edgekd.core.errors import ModelError
from edgekd.data.config import IMAGENET_MEAN, IMAGENET_STD

# Validation images each check uses (the split is already shuffled): enough to tell 10 points apart.
PROBE_SAMPLES = 2000
# Another scaling must beat the configured one by this much (top-1, absolute), and by three standard errors of
# the difference, to be called the likely cause.
BETTER_BY = 0.10
# Standard errors above the majority-class rate that count as "better than chance".
CHANCE_SIGMAS = 3.0


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def check_given_teachers(ctx, build: Callable, log: Callable[[str], None] = _stderr) -> list[dict]:
    """Top-1 of every checkpoint teacher on the validation split; ModelError for one that cannot be right.
    `build(index, spec)` makes the teacher with its weights."""
    from edgekd.train.trainer import predict_logits

    data = ctx.dataset
    x, y = data.val.x[:PROBE_SAMPLES], data.val.y[:PROBE_SAMPLES]
    chance = float(np.bincount(y).max() / len(y))
    alternatives = _other_scalings(data, x)
    found = []
    for index, spec in enumerate(ctx.cfg.teachers):
        if not spec.checkpoint:
            continue
        model = build(index, spec)
        where = f"teachers[{index}].checkpoint '{spec.checkpoint}'"
        logits = predict_logits(model, x)
        if not np.isfinite(logits).all():
            raise ModelError(f"{where}: its outputs on the validation images contain NaN or Inf; the weights are "
                             "damaged or diverged: use another checkpoint")
        top1 = ctx.task.score(logits, y)
        others = {mode: ctx.task.score(predict_logits(model, xs), y) for mode, xs in alternatives.items()}
        log(f"[teachers] {where}: validation top-1 {top1:.1%} on {len(y)} images "
            f"(data.normalize {data.normalize}; chance {chance:.1%})")
        _judge(where, top1, others, chance, len(y), data.normalize)
        found.append({"index": index, "checkpoint": spec.checkpoint, "val_top1": top1, "val_samples": len(y),
                      "val_top1_other_scalings": others})
    return found


def chance_bar(chance: float, n: int) -> float:
    """The top-1 a model must beat on `n` samples to count as better than chance: the largest class's share plus
    CHANCE_SIGMAS standard errors of a model that always answers that class, or, where it is lower, the exact
    binomial bar (_exact_chance_bar). On skewed classes the normal approximation overstates the spread of a guesser's
    hits near 100%: with the largest class 98.0% of 600 rows it asked for over 99.7%, and called a teacher right on
    598 (it found 10 of the 12 minority rows) "not clearly above chance", though guessing gets 598 once in 2,000.
    On balanced classes the two bars agree to a fraction of a point, and the normal one, lower there, stays."""
    normal = chance + CHANCE_SIGMAS * math.sqrt(chance * (1 - chance) / n)
    exact = _exact_chance_bar(chance, n)
    return normal if exact is None else min(normal, exact)


def _exact_chance_bar(chance: float, n: int) -> float | None:
    """The largest top-1 on `n` samples that always answering the largest class (each hit with probability `chance`)
    reaches at least as often as the normal tail beyond CHANCE_SIGMAS (0.13%): a model must score above it. None
    without scipy (it comes with scikit-learn; the device does not judge teachers)."""
    try:
        from scipy.stats import binom, norm
    except ImportError:
        return None
    return float(binom.isf(norm.sf(CHANCE_SIGMAS), n, chance)) / n  # the fewest hits j with P(more than j) < 0.13%


def not_above_chance(top1: float, chance: float, n: int, unit: str) -> str | None:
    """None when `top1` on `n` samples is clearly above chance, else what to say: a model a little above the largest
    class's share on a small sample is not "no better than chance", its lead is just within what guessing gets."""
    bar = chance_bar(chance, n)
    if top1 > bar:
        return None
    if bar >= 1:  # a dominant class on few samples: no top-1 can clear the bar, so a bar over 100% would be nonsense
        return (f"top-1 {top1:.1%} on {n} {unit}, not clearly above chance (the largest class's {chance:.1%}); {n} {unit} "
                "are too few to tell a model from guessing the largest class (even 100% is within what guessing gets)")
    return (f"top-1 {top1:.1%} on {n} {unit}, not clearly above chance (the largest class's {chance:.1%}; telling a model "
            f"from guessing it takes over {bar:.1%} on {n} {unit})")


def _judge(where: str, top1: float, others: dict[str, float], chance: float, n: int, mode: str) -> None:
    best_mode = max(others, key=others.get) if others else None
    # On a small validation split 10 points can be noise: the gain must also be well beyond the sampling error.
    margin = max(BETTER_BY, CHANCE_SIGMAS * math.sqrt(2 * 0.25 / n))
    if best_mode and others[best_mode] >= top1 + margin:
        raise ModelError(f"{where}: validation top-1 {top1:.1%} with data.normalize {mode}, but {others[best_mode]:.1%} "
                         f"with {best_mode}: it was likely trained on other input scaling; set data.normalize: {best_mode} "
                         "(or the mean/std it was trained with)")
    low = not_above_chance(top1, chance, n, "images")
    if low:
        raise ModelError(f"{where}: validation {low}: it does not fit this data as given; likely cause: input scaling "
                         f"(data.normalize is {mode}; use what it was trained with), else another class order or dataset")


def _other_scalings(data, x: np.ndarray) -> dict[str, np.ndarray]:
    """`x` as the other standard data.normalize choices would have given it to the model."""
    return {mode: rescaled(data, x, mean, std) for mode, (mean, std) in standard_scalings(data, x.shape[1]).items()}


# Pixels in [-1, 1], as data.normalize spells it: PaddleOCR's and many Keras/TF models' input (edgekd ship: 0.5/0.5).
SYMMETRIC = "{mean: [0.5], std: [0.5]}"


def standard_scalings(data, channels: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(mean, std) of every standard data.normalize choice other than the configured one: the training split's own
    statistics, raw [0, 1] pixels, pixels in [-1, 1] (SYMMETRIC) and ImageNet's (three channels only)."""
    stats = {"dataset": (data.pixel_mean, data.pixel_std), "none": ([0.0] * channels, [1.0] * channels),
             SYMMETRIC: ([0.5] * channels, [0.5] * channels)}
    if channels == 3:
        stats["imagenet"] = (IMAGENET_MEAN, IMAGENET_STD)
    return {mode: (np.asarray(mean, np.float32), np.asarray(std, np.float32))
            for mode, (mean, std) in stats.items() if mode != data.normalize}


def rescaled(data, x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Model inputs `x` (normalised as data.normalize says) as (pixel - mean) / std would have made them."""
    pixels = data.raw(x)
    m, s = np.asarray(mean, np.float32)[None, :, None, None], np.asarray(std, np.float32)[None, :, None, None]
    return ((pixels - m) / s).astype(np.float32)


def noise_band(top1: float, n: int) -> float:
    """How far under `top1` another top-1 on the same `n` samples may fall by chance: two standard errors, but never
    under one sample's worth (1/n). Two standard errors alone are 0 at 100% or 0%, and a member at 100% on 69 rows
    then made every other member, however close, 'pull the ensemble down'."""
    return max(2 * math.sqrt(top1 * (1 - top1) / n), 1.0 / n)


def top1_without_each(logits: list, weights: list[float], mode: str, score: Callable, y: np.ndarray) -> list[float]:
    """The ensemble's top-1 on `y` with each member left out in turn (its weights and averaging as configured): what
    removing that member would do, for say_weak_members."""
    import torch

    from edgekd.train.distill.losses import ensemble_soft_targets

    out = []
    for left_out in range(len(logits)):
        rest = [torch.as_tensor(np.asarray(z)) for i, z in enumerate(logits) if i != left_out]
        kept = [w for i, w in enumerate(weights) if i != left_out]
        out.append(float(score(ensemble_soft_targets(rest, 1.0, kept, mode).numpy(), y)))
    return out


def say_weak_members(entries: list[dict], ensemble_val_top1: float, y: np.ndarray, unit: str,
                     without: list[float] | None = None) -> list[str]:
    """Each teacher's validation top-1 beside the ensemble's, and a warning naming a member that is not clearly above
    chance or that pulls the ensemble under its best member beyond noise (a trial's GaussianNB at 10.6% took a
    LightGBM at 75.8% down to 21.4%, and the only advice was to train longer). `entries`: {index, name, val_top1}
    each; `unit`: what the validation samples are (rows, images); `without`: the ensemble's top-1 with each entry left
    out (top1_without_each). A member pulls the ensemble down when leaving it out raises the ensemble's top-1 (without
    `without`: the weakest member); naming by top-1 alone once told the right member to go (a 97.1% forest beside a
    100% model, where a DummyClassifier of weight 5 made the ensemble 50.7%). Returns the warnings said, which the
    teachers stage records so that the bench stage's report carries them (not the terminal and the run log only)."""
    import warnings

    said: list[str] = []

    chance, n = float(np.bincount(y).max() / len(y)), len(y)
    shown = ", ".join(f"teachers[{e['index']}] {e['name']} {e['val_top1']:.1%}" for e in entries)
    print(f"[teachers] validation top-1: {shown}; their ensemble {ensemble_val_top1:.1%}", file=sys.stderr)
    pulling = _pulling_down(entries, ensemble_val_top1, n, without)
    best = max(entries, key=lambda e: e["val_top1"])
    for position, entry in enumerate(entries):
        low = not_above_chance(entry["val_top1"], chance, n, unit)
        if position in pulling:
            gain = f", {without[position]:.1%} without it" if without is not None else ""
            why = (f"{low or 'validation top-1 ' + format(entry['val_top1'], '.1%')}, and the ensemble ({ensemble_val_top1:.1%}{gain}) "
                   f"is under its best member (teachers[{best['index']}] {best['name']}, {best['val_top1']:.1%}); it pulls "
                   "the ensemble down:")
        elif low and (chance_bar(chance, n) >= 1 or entry["val_top1"] >= best["val_top1"]):
            # too few samples to tell anything from guessing, or the best member at chance: removing it would not help
            ahead = "" if chance_bar(chance, n) >= 1 else "; the ensemble's best member: check data.target and data.features"
            said.append(f"teachers[{entry['index']}] {entry['name']}: {low}{ahead}")
            warnings.warn(said[-1], stacklevel=3)
            continue
        elif low:
            why = f"{low}:"
        else:  # above chance and not pulling
            continue
        said.append(f"teachers[{entry['index']}] {entry['name']}: {why} remove it, or lower its weight "
                    f"(teachers[{entry['index']}].weight)")
        warnings.warn(said[-1], stacklevel=3)
    return said


def _pulling_down(entries: list[dict], ensemble_val_top1: float, n: int, without: list[float] | None) -> set[int]:
    """The positions of the members that pull the ensemble down: none while the ensemble is not under its best member
    beyond noise; else those whose removal raises it (or, not knowing that, the weakest member)."""
    best = max(e["val_top1"] for e in entries)
    if len(entries) < 2 or ensemble_val_top1 >= best - noise_band(best, n):
        return set()
    if without is not None:
        return {i for i, top1 in enumerate(without) if top1 > ensemble_val_top1}
    weakest = min(range(len(entries)), key=lambda i: entries[i]["val_top1"])
    return {weakest} if entries[weakest]["val_top1"] < best else set()
