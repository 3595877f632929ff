"""The sanity floor for a model shipped as given with labels: is the data reaching it as it was trained?

Two ordinary mistakes leave a trained model merely worse, not broken, so a "no better than chance" check lets them
through to a PASSing gate (its reference is the same wrongly fed model):

- Class folders that sort in another order than the model's labels. Folder i is read as label i, so a model that is
  right maps folder i's images to another output: the validation confusion matrix is a (near-)permutation of a good
  one. The Hungarian assignment (scipy's linear_sum_assignment) finds the folder -> output matching with the most
  images right; when such a matching, fitted on one half of the split, is significantly better than the identity on
  the other half, the folders are out of order.
- Input scaling other than the one the model was trained on (data.normalize). The model's validation predictions
  under each standard scaling (dataset, none, imagenet, and the mean/std in the model's own metadata) are compared
  with the configured one's, image by image.

"Significantly" is an exact McNemar test on the paired per-image correctness (edgekd.core.metrics.mcnemar_exact),
one-sided, so a few images of noise never refuse a run while a 4-point gap on a few hundred images does.
"""
from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import replace
from typing import Optional

import numpy as np

from edgekd.core.errors import ConfigError
from edgekd.core.metrics import batch_rows, mcnemar_exact
from edgekd.data.config import NORMALIZE_MODES
from edgekd.pipeline.teacher_check import chance_bar, rescaled, standard_scalings

# The matching is tested on images it was not fitted on (below), so chance alone refuses no run; a strict level
# on top keeps a mediocre but correctly ordered model (whose errors pile up on some look-alike class) shipping.
LABEL_ORDER_SIGNIFICANCE = 0.001
# On the classes it moves, the matching must also be right at least this many times as often as the folder order:
# a real mix-up is right most of the time one way and rarely the other, two confusable classes are not.
LABEL_ORDER_MIN_RATIO = 2.0
# For the best of the other scalings, Bonferroni-corrected for how many were tried.
SCALING_SIGNIFICANCE = 0.01
# Validation images each other scaling is tried on (the split is shuffled): a 4-point gap on 1,000 images is some forty
# images one way against a few the other, far beyond noise, and the check costs at most three passes over them.
SCALING_PROBE = 1000
MOVED_SHOWN = 4  # classes named in the message; the rest are counted
# The matching needs a classes x classes matrix and cubic time: beyond this many classes (32 MB, about a second) the
# order is not checked, and the run says so.
LABEL_ORDER_MAX_CLASSES = 2000
# Images decoded (and rescaled) at once for the other scalings, fewer for large images (core.metrics.batch_rows' byte
# budget): one batch rules out a far worse scaling.
_BATCH = 64


def check_label_order(predictions: np.ndarray, labels: np.ndarray, classes: list[str], where: str, folders: bool,
                      fix: Optional[str] = None, rows: str = "validation images") -> None:
    """ConfigError naming the mapping when matching classes to outputs otherwise than label i -> output i is
    significantly more accurate on the rows given (`rows` says which, e.g. "validation images"); `fix`: what to do
    about it, when not the default for class folders or numbered labels."""
    k = len(classes)
    if k > LABEL_ORDER_MAX_CLASSES:
        print(f"student (as given): {k} classes: their order against the model's outputs is not checked (over "
              f"{LABEL_ORDER_MAX_CLASSES})", file=sys.stderr, flush=True)
        return
    confusion = _confusion(labels, predictions, k)
    mapping = _matching(confusion)
    moved = np.flatnonzero(mapping != np.arange(k))
    if not len(moved):
        return
    identity_correct, mapped_correct = predictions == labels, predictions == mapping[labels]
    _gain, _loss, p_value = mcnemar_exact(_cross_fitted(predictions, labels, k), identity_correct, alternative="greater")
    on_moved = np.isin(labels, moved)
    if p_value >= LABEL_ORDER_SIGNIFICANCE or mapped_correct[on_moved].sum() < LABEL_ORDER_MIN_RATIO * identity_correct[on_moved].sum():
        return
    named = [f"{_class_name(classes, i, folders)} looks like model output {mapping[i]} ({confusion[i, mapping[i]]} of "
             f"{confusion[i].sum()} {rows})" for i in moved[:MOVED_SHOWN]]
    more = f" and {len(moved) - MOVED_SHOWN} more" if len(moved) > MOVED_SHOWN else ""
    fix = fix or ("rename the class folders so that they sort in the model's label order (the first in sorted order is "
                  "output 0)" if folders else "number the labels in the model's output order")
    scope = rows.rsplit(" ", 1)[0] if " " in rows else ""  # "validation images": validation top-1
    raise ConfigError(f"{where}: {', '.join(named)}{more}: {scope} top-1 {identity_correct.mean():.1%} as the classes are "
                      f"ordered, {mapped_correct.mean():.1%} with them matched to the model's outputs (exact McNemar "
                      f"p={p_value:.1g}); {fix}")


def _confusion(labels: np.ndarray, predictions: np.ndarray, k: int) -> np.ndarray:
    confusion = np.zeros((k, k), np.int64)
    np.add.at(confusion, (labels, predictions), 1)
    return confusion


def _matching(confusion: np.ndarray) -> np.ndarray:
    """The output each class is matched to by the Hungarian assignment (most images right in total)."""
    from scipy.optimize import linear_sum_assignment

    k = len(confusion)
    # A bonus under one image in total on the diagonal: ties go to the identity, any real gain still wins.
    _rows, mapping = linear_sum_assignment(confusion + np.eye(k) / (k + 1), maximize=True)
    return mapping


def _cross_fitted(predictions: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Per image, whether the matching fitted on the other half of the split (each class alternately split) gets it
    right. The matching fitted on all images is the best of k! on those very images: with many classes and few images
    each (1,000 classes, 2 images), chance alone lets it beat the identity by dozens of images. Fitted on the other
    half, a chance matching is no better than the identity on this half, while a real mix-up is found in both."""
    half = np.empty(len(labels), np.int64)
    half[np.argsort(labels, kind="stable")] = np.arange(len(labels)) % 2
    correct = np.empty(len(labels), bool)
    for h in (0, 1):
        fit, test = half != h, half == h
        correct[test] = predictions[test] == _matching(_confusion(labels[fit], predictions[fit], k))[labels[test]]
    return correct


def _class_name(classes: list[str], index: int, folders: bool) -> str:
    return f"class folder '{classes[index]}'" if folders else f"label {index} ('{classes[index]}')"


def check_scaling(data, logits: Callable[[np.ndarray], np.ndarray], predictions: np.ndarray, field: str,
                  metadata: Optional[tuple[list[float], list[float]]] = None,
                  log: Callable[[str], None] = lambda m: print(m, file=sys.stderr, flush=True),
                  saved_channels_last: bool = False) -> dict[str, float]:
    """Validation top-1 (on up to SCALING_PROBE images) under every other standard input scaling; ConfigError naming
    data.normalize and the better value when one is significantly more accurate than the configured one.
    `predictions`: the configured scaling's top-1 on the validation split, or on given_probe's images (validation, then
    training), which are then not inferred again.
    `predictions` are the model's top-1 on the whole validation split as configured (already computed)."""
    if getattr(data, "layout", "NCHW") != "NCHW":
        return _check_channels_last(data, logits, predictions, field, log)
    channels = data.val.x.shape[1]
    choices = {_normalize_value(mode): stats for mode, stats in standard_scalings(data, channels).items()}
    if metadata is not None:
        choices[_normalize_value(None, metadata)] = tuple(np.asarray(v, np.float32) for v in metadata)
    choices = {name: stats for name, stats in choices.items() if not _same_scaling(stats, (data.mean, data.std))}
    color = (getattr(data, "image_steps", None) or {}).get("color")
    if channels == 3 and color in OTHER_ORDER and not _grey(data.val.x[:16]):  # RGB or BGR: a decoding choice
        choices[CHANNELS_REVERSED] = lambda x: np.ascontiguousarray(x[:, ::-1])
    if _divided_twice(data):  # first: where it ties with another normalize, the scale is the fix that holds on a device
        choices = {SCALE_NOT_DIVIDED: lambda x: _undivided(data, x), **choices}
    if not choices:
        return {}
    parts = _probe_parts(data)
    labels = np.concatenate([split.y[:n] for split, n in parts])
    correct, configured = _correct_per_scaling(data, logits, choices, predictions, parts)
    tops = {name: float(c.mean()) for name, c in correct.items()}
    log("student (as given): top-1 with other input scalings (validation, then training images): " + ", ".join(
        f"{_as_said(name)} {tops[name]:.1%} on {len(c)} images" for name, c in correct.items()))
    tests = {name: mcnemar_exact(c, configured[:len(c)], alternative="greater")[2] for name, c in correct.items()}
    best = min(tests, key=lambda name: (tests[name], -tops[name]))
    # Only a scaling that makes the model clearly work explains its score: with labels out of the model's order every
    # scaling is near chance or below, and one merely less wrong than the configured one (16% against 0.1% on 1,000
    # digits, significant) would send the user to the wrong fix (check_label_order, which runs next, names the right
    # one). Clearly working: above chance's bar and a quarter of the way from the largest class's share to 100%.
    if (tops[best] > configured[:len(correct[best])].mean() and tests[best] * _contenders(correct, configured) < SCALING_SIGNIFICANCE
            and _clearly_working(tops[best], labels[:len(correct[best])])):
        current = _normalize_value(data.normalize, (data.mean, data.std))
        shown = len(correct[best])
        if best == CHANNELS_REVERSED:
            raise ConfigError(f"{field}: top-1 {configured[:shown].mean():.1%} with the images decoded as {color.upper()}, "
                              f"but {tops[best]:.1%} with their channels reversed on the same {shown} images (exact McNemar "
                              f"p={tests[best]:.1g}): it was likely trained on {OTHER_ORDER[color].upper()} images; set "
                              f"data.color: {OTHER_ORDER[color]} (edgekd ship: --color {OTHER_ORDER[color]})")
        if best == SCALE_NOT_DIVIDED:
            raise ConfigError(f"{field}: top-1 {configured[:shown].mean():.1%} with the values divided by "
                              f"{data.divisor:g} (data.scale: 255), but {tops[best]:.1%} with them as saved on the same "
                              f"{shown} images (exact McNemar p={tests[best]:.1g}): they are already within [0, 1]; set "
                              "data.scale: auto or none (edgekd ship: --scale auto)")
        fix = (_saved_as(data, best, choices[best]) if saved_channels_last else
               f"set data.normalize: {best} (edgekd ship: --normalize {_ship_spelling(best, choices[best])}; or the "
               "mean/std it was trained with)")
        raise ConfigError(f"{field}: top-1 {configured[:shown].mean():.1%} with data.normalize {current}, but "
                          f"{tops[best]:.1%} with {best} on the same {shown} images (exact McNemar p={tests[best]:.1g}): it "
                          f"was likely trained on that input scaling; {fix}")
    return tops


def _check_channels_last(data, logits: Callable[[np.ndarray], np.ndarray], predictions: np.ndarray, field: str,
                         log: Callable[[str], None]) -> dict[str, float]:
    """check_scaling for channels-last images, which are fed as saved (data.normalize none: datasets.py normalises on
    axis 1 only): tried on a channels-first view of them, fed back channels-last. A 98% NHWC model fed raw [0, 1] pixels
    shipped PASS at 51% when this check skipped them."""
    def first(split, rows: Optional[int] = None):  # the probe reads at most SCALING_PROBE training images
        return type(split)(np.ascontiguousarray(np.moveaxis(np.asarray(split.x[:rows]), -1, 1)), split.y[:rows])

    pixels = np.asarray(data.train.x)  # the training split's own statistics, channel by channel (the last axis)
    view = replace(data, train=first(data.train, SCALING_PROBE), val=first(data.val), layout="NCHW", image_steps=None,
                   pixel_mean=pixels.mean(axis=(0, 1, 2), dtype=np.float64).tolist(),
                   pixel_std=np.maximum(pixels.std(axis=(0, 1, 2), dtype=np.float64), 1e-6).tolist())
    return check_scaling(view, lambda x: logits(np.ascontiguousarray(np.moveaxis(x, 1, -1))), predictions, field, None,
                         log, saved_channels_last=True)


def _saved_as(data, name: str, stats) -> str:
    """The fix for channels-last arrays, which edgekd feeds as saved: save them as the better scaling makes them."""
    mean, std = _rounded(stats)
    pixels = "x" if data.divisor == 1 else f"x / {data.divisor:g}"
    return (f"channels-last arrays are fed as saved, so save x as the model takes it: ({pixels} - mean) / std on its last "
            f"axis, mean {mean} and std {std} ({name})")


# An image file's channels decoded in the other order (OpenCV-trained models take BGR): tried beside the scalings.
CHANNELS_REVERSED = "channels reversed"
OTHER_ORDER = {"rgb": "bgr", "bgr": "rgb"}


def _grey(x) -> bool:
    """Images whose three channels hold the same values (grey saved as RGB): reversed, they are the same images."""
    x = np.asarray(x)
    return bool(np.allclose(x, x[:, ::-1]))


# The values as saved, not divided by 255: tried when data.scale 255 divided values already within [0, 1] again. The
# other scalings cannot find it: data.normalize dataset scores the same either way (it undoes any divisor), and
# advising it wrote a bundle formula "(pixel / 255 - mean) / std" with a mean 255 times too small for a device's pixels.
SCALE_NOT_DIVIDED = "data.scale none"


def _divided_twice(data) -> bool:
    """The pixels (data.raw: before normalisation) all within [0, 1/255] after a division by 255: values that were
    already in [0, 1] when saved. Not with data.normalize dataset, whose statistics undo any divisor: the model is fed
    the same either way (scale_array warns of the bundle's formula)."""
    if getattr(data, "divisor", 1) != 255 or data.normalize == "dataset" or not len(data.val):
        return False
    pixels = data.raw(np.asarray(data.val.x[:_BATCH], np.float32))
    return bool(pixels.max() > 0 and pixels.max() <= 1.001 / 255 and pixels.min() >= -1e-6)


def _undivided(data, x: np.ndarray) -> np.ndarray:
    """Model inputs as the configured data.normalize would make them from the values as saved (times the divisor)."""
    mean, std = (np.asarray(v, np.float32)[None, :, None, None] for v in (data.mean, data.std))
    return ((data.raw(x) * data.divisor - mean) / std).astype(np.float32)


def _as_said(choice: str) -> str:
    return choice if choice in (CHANNELS_REVERSED, SCALE_NOT_DIVIDED) else f"data.normalize {choice}"


def _clearly_working(top1: float, labels: np.ndarray) -> bool:
    majority = float(np.bincount(labels).max() / len(labels))
    return top1 > _chance_bar_of(labels) and top1 >= majority + (1 - majority) / 4


def _chance_bar_of(labels: np.ndarray) -> float:
    return chance_bar(float(np.bincount(labels).max() / len(labels)), len(labels))


# A scaling is not tried further once it is this clearly worse than the configured one (one-sided exact McNemar; one
# batch is enough for a far worse one), or when after _NO_LEAD_AFTER images it is right on no more images than the
# configured one (a scaling 4 points better leads by some ten images there, and trails with a chance of about 0.3%).
# With the right scaling configured the check then costs a batch or a few per other scaling, not a pass each.
_RULED_OUT = 1e-4
_NO_LEAD_AFTER = 256


def _probe_parts(data) -> list[tuple]:
    """The images the other scalings are tried on, as (split, count): the validation split, then (a model shipped as
    given was trained elsewhere: edgekd's training split only calibrates it) labelled training images up to
    SCALING_PROBE. Validation alone, 108 images of a 900-image folder, left a 3-point worse scaling within noise."""
    n_val = min(len(data.val), SCALING_PROBE)
    n_train = min(len(data.train), SCALING_PROBE - n_val) if getattr(data, "labeled", True) else 0
    return [(data.val, n_val)] + ([(data.train, n_train)] if n_train > 0 else [])


def given_probe(data, logits: Callable[[np.ndarray], np.ndarray], predictions: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
    """The given model's top-1 predictions and their labels on every validation image (`predictions`, computed already)
    and labelled training images up to SCALING_PROBE in all (a model shipped as given was trained elsewhere: the training
    split only calibrates it), with how to name them: the class-order and chance checks judge on these. On the validation
    split alone, 24 images of a 200-image folder, two swapped classes went unseen and a 95% model was refused."""
    count = min(len(data.train), SCALING_PROBE - len(data.val)) if getattr(data, "labeled", True) else 0
    if count <= 0:
        return predictions, data.val.y, "validation images"
    size, found = batch_rows(data.train.x, limit=_BATCH), [predictions]
    for start in range(0, count, size):
        found.append(logits(np.asarray(data.train.x[start:min(start + size, count)])).argmax(1))
    return np.concatenate(found), np.concatenate([data.val.y, data.train.y[:count]]), "validation and training images"


def _correct_per_scaling(data, logits, choices: dict, predictions: np.ndarray,
                         parts: list[tuple]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Per scaling, whether each probe image (_probe_parts, in order) is right: batch by batch (each batch decoded once,
    then rescaled for every scaling still in the running), until the probe ends or the scaling is ruled out; and
    whether the configured scaling is right on those images (`predictions` on validation, computed here on the
    training images the probe reaches)."""
    correct: dict[str, list] = {name: [] for name in choices}
    running, configured = dict(choices), []
    size = batch_rows(data.val.x, limit=_BATCH)
    for number, (split, count) in enumerate(parts):
        for start in range(0, count, size):
            stop = min(start + size, count)
            x, truth = np.asarray(split.x[start:stop]), split.y[start:stop]
            offset = 0 if number == 0 else len(data.val)  # given_probe's predictions hold the training images' too
            known = offset + stop <= len(predictions)
            configured.append((predictions[offset + start:offset + stop] if known else logits(x).argmax(1)) == truth)
            for name, stats in running.items():
                fed = stats(x) if callable(stats) else rescaled(data, x, *stats)
                correct[name].append(logits(fed).argmax(1) == truth)
            so_far = np.concatenate(configured)
            running = {name: stats for name, stats in running.items() if _still_running(np.concatenate(correct[name]), so_far)}
            if not running:
                return {name: np.concatenate(c) for name, c in correct.items()}, so_far
    return {name: np.concatenate(c) for name, c in correct.items()}, np.concatenate(configured)


def _contenders(correct: dict[str, np.ndarray], configured: np.ndarray) -> int:
    """How many scalings the best one's p-value is corrected for (Bonferroni): every one tried but those the configured
    scaling beats at p < _RULED_OUT. A scaling no better than the configured one is ruled out that way about once in
    10,000 probes, so leaving those out keeps the false alarms near SCALING_SIGNIFICANCE, and a real 1.5-point gap is
    not diluted by far-off scalings (raw pixels on a standardised model) that never stood a chance."""
    ruled_out = sum(mcnemar_exact(configured[:len(c)], c, alternative="greater")[2] < _RULED_OUT for c in correct.values())
    return max(1, len(correct) - ruled_out)


def _still_running(other: np.ndarray, configured: np.ndarray) -> bool:
    if len(other) >= _NO_LEAD_AFTER and other.sum() <= configured.sum():
        return False
    return mcnemar_exact(configured, other, alternative="greater")[2] >= _RULED_OUT


def _normalize_value(mode: Optional[str], stats=None) -> str:
    """How data.normalize spells a choice in a message: its name, or the {mean, std} mapping for custom statistics."""
    if mode not in (None, "custom"):
        return mode
    mean, std = _rounded(stats)
    return f"{{mean: {mean}, std: {std}}}"


def _rounded(stats) -> tuple[list[float], list[float]]:
    """(mean, std) as a message shows them: four decimals."""
    mean, std = ([round(float(v), 4) for v in values] for values in stats)
    return mean, std


def _ship_spelling(name: str, stats) -> str:
    """A data.normalize choice as `edgekd ship --normalize` takes it: its name, or MEAN/STD (one value when every
    channel has the same)."""
    if name in NORMALIZE_MODES:
        return name
    mean, std = _rounded(stats)
    return "/".join(",".join(f"{v:g}" for v in (values[:1] if len(set(values)) == 1 else values)) for values in (mean, std))


def _same_scaling(a, b) -> bool:
    """Whether two (mean, std) feed the model inputs within 1% of a standard deviation of each other (the data's own
    statistics recomputed on a sample, say, against the same numbers typed into the config): not worth a pass."""
    (mean_a, std_a), (mean_b, std_b) = ((np.asarray(m, np.float64), np.asarray(s, np.float64)) for m, s in (a, b))
    return bool(np.all(np.abs(mean_a - mean_b) <= 0.01 * std_b) and np.all(np.abs(std_a / std_b - 1) <= 0.01))
