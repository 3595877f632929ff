"""Task metrics: what counts as right for a model that is not (only) a classifier, as small pure numpy functions a
task names by string (`task: {kind: fidelity, metric: mask_iou}`). Used by the pipeline and by `edgekd bench` on
the device alike, so both judge by the same code (numpy only: no torch here).

Each metric has one label format and three functions:
    labels_of(outputs)       -> labels: the model's outputs turned into labels of that format. Data without labels
                                is labelled with the fp32 model's own outputs this way, so every score measured on
                                it is agreement with fp32 (as top-1 agreement is for an unlabeled classifier).
    parts(outputs, labels)   -> (N, k) per-sample counts whose column sums the metric is a function of (correct and
                                1 for a mean; true positives and predicted + actual for an F1);
    combine(sums)            -> that function: a fraction in [0, 1], higher is better, over the last axis.
    score(outputs, labels) is combine(parts(...).sum(0)). Drops are in points of it, as top-1's are. Writing every
    metric as sums of per-sample parts is what lets drop_bound resample samples without rerunning a metric.

Adding a metric: its label and parts functions and one line in METRICS (and a line in the README's list).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# Label rows are padded with this value (CTC strings of different lengths, images with different numbers of boxes).
PAD = -1
# PaddleOCR's CTC head puts the blank at class 0 (ppocr/postprocess/rec_postprocess.py, CTCLabelDecode).
CTC_BLANK = 0
# PP-OCR's DB postprocess binarizes the text probability map at 0.3 (det_db_thresh).
MASK_THRESHOLD = 0.3
# Silero VAD's default speech threshold on its per-frame probability.
SPEECH_THRESHOLD = 0.5
# Box decoding: the confidence and NMS overlap of YOLO-style predictors' usual defaults, and the IoU a predicted box
# needs to count as finding a ground-truth box (PASCAL VOC's 0.5).
BOX_CONFIDENCE = 0.25
NMS_IOU = 0.45
MATCH_IOU = 0.5


def mean_of(sums: np.ndarray) -> np.ndarray:
    """Parts (value, 1): the mean of the values."""
    sums = np.asarray(sums, dtype=np.float64)
    return sums[..., 0] / np.maximum(sums[..., 1], 1)


def f1_of(sums: np.ndarray) -> np.ndarray:
    """Parts (true positives, predicted + actual): 2 TP / (predicted + actual); 1.0 when nothing was to be found and
    nothing was found."""
    sums = np.asarray(sums, dtype=np.float64)
    return np.where(sums[..., 1] == 0, 1.0, 2 * sums[..., 0] / np.maximum(sums[..., 1], 1))


def _means(values) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    return np.stack([values, np.ones_like(values)], 1)


@dataclass(frozen=True)
class TaskMetric:
    name: str
    labels_of: Callable[[np.ndarray], np.ndarray]
    parts: Callable[[np.ndarray, np.ndarray], np.ndarray]
    labels: str  # the label format, for error messages and the README
    combine: Callable[[np.ndarray], np.ndarray] = mean_of
    # Raises ValueError naming what is wrong with labels the model's outputs cannot be scored against as meant (a
    # 0-based CTC string whose 0s the blank would swallow, a box class beyond the model's); checked on every label
    # at intake, where scoring would only quietly count them wrong.
    check_labels: Callable[[np.ndarray, np.ndarray], None] = lambda labels, outputs: None

    def score(self, outputs: np.ndarray, labels: np.ndarray) -> float:
        return float(self.combine(self.parts(outputs, labels).sum(0)))


# --- top-1 (classification): outputs (N, classes), labels (N,) class indices -------------------------------------

def finite_rows(outputs: np.ndarray) -> np.ndarray:
    """Per sample (first axis): whether every value of its output is finite. numpy's argmax of an all-NaN row is 0,
    so a model that gives NaN would otherwise "predict" class 0 and be scored right wherever the label is 0."""
    outputs = np.asarray(outputs)
    if outputs.dtype.kind not in "fc":  # integers and booleans are always finite
        return np.ones(len(outputs), bool)
    return np.isfinite(outputs.reshape(len(outputs), -1)).all(1)


def _classifier_outputs(outputs: np.ndarray) -> np.ndarray:
    """`outputs` as (N, classes) scores; a ValueError for any other shape: argmax(1) of a (t, n, classes) or
    (n, t, classes) output takes a sequence axis for the classes, and agreement on it measures nothing."""
    outputs = np.asarray(outputs)
    if outputs.ndim != 2:
        raise ValueError(f"top1 scores (N, classes) outputs, not shape {outputs.shape}")
    return outputs


def _top1_labels(outputs: np.ndarray) -> np.ndarray:
    outputs = _classifier_outputs(outputs)
    # a non-finite row has no class: PAD, which no row's argmax equals, so agreeing with it is never right
    return np.where(finite_rows(outputs), outputs.argmax(1), PAD).astype(np.int64)


def _top1(outputs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    # metrics.topk(..., 1) written out: core/metrics.py imports this module (accuracy_metrics), so this one does not
    # import it back (tests/test_import_contracts.py: no import circles)
    outputs = _classifier_outputs(outputs)
    return _means((outputs.argmax(1) == np.asarray(labels)) & finite_rows(outputs))


# --- greedy CTC string accuracy (recognizers): outputs (N, T, C) per-step class scores, labels (N, L) -----------

def ctc_greedy_decode(outputs: np.ndarray, blank: int = CTC_BLANK) -> list[tuple[int, ...]]:
    """Per sample: the best class at each step, repeats merged, blanks dropped (PaddleOCR's CTCLabelDecode)."""
    best = np.asarray(outputs).argmax(-1)
    strings = []
    for steps in best:
        keep = np.ones(len(steps), bool)
        keep[1:] = steps[1:] != steps[:-1]
        strings.append(tuple(int(c) for c in steps[keep] if c != blank))
    return strings


def pad_rows(rows: list[tuple], width: int | None = None, fill: float = PAD, dtype=np.int64) -> np.ndarray:
    """Rows of different lengths as one array, padded with `fill` (at least one column: numpy needs a width)."""
    width = max([len(r) for r in rows] + [1]) if width is None else width
    out = np.full((len(rows), width), fill, dtype=dtype)
    for i, row in enumerate(rows):
        out[i, :len(row)] = row
    return out


def _ctc_labels(outputs: np.ndarray) -> np.ndarray:
    return pad_rows(ctc_greedy_decode(outputs))


def _label_strings(labels: np.ndarray) -> list[tuple[int, ...]]:
    """Label rows without their padding (PAD, and the blank, which no character can be)."""
    return [tuple(int(c) for c in row if c != PAD and c != CTC_BLANK) for row in np.asarray(labels)]


def _zeros_only_trail(labels: np.ndarray) -> bool:
    """Whether every 0 in every row comes after the row's last non-zero (padding at the end, not a character)."""
    for row in labels:
        nonzero = np.flatnonzero(row != CTC_BLANK)
        last = nonzero[-1] if len(nonzero) else -1
        if (row[: last + 1] == CTC_BLANK).any():
            return False
    return True


def _check_ctc_labels(labels: np.ndarray, outputs: np.ndarray) -> None:
    labels, classes = np.asarray(labels), np.asarray(outputs).shape[-1]
    whole = labels.dtype.kind in "iu" or (labels.dtype.kind == "f" and bool(np.all(np.mod(labels, 1) == 0)))
    if labels.ndim != 2 or not whole:
        raise ValueError(f"labels are {labels.dtype} {labels.shape}, not (N, L) whole character indices")
    characters = labels[labels != PAD]
    if (characters == CTC_BLANK).any():
        if _zeros_only_trail(labels):  # 1-based strings padded with 0 at their ends: the padding, not characters
            raise ValueError(f"labels are padded with {CTC_BLANK} (the CTC blank, PaddleOCR's class {CTC_BLANK}); pad them "
                             f"with {PAD} instead (characters are 1..{classes - 1}, as they are)")
        raise ValueError(f"a label holds {CTC_BLANK}, the CTC blank (PaddleOCR's class {CTC_BLANK}), which decoding drops: "
                         f"characters are 1..{classes - 1}; shift 0-based labels up by one")
    outside = characters[(characters < 0) | (characters >= classes)]
    if len(outside):
        raise ValueError(f"a label holds {int(outside[0])}, outside the model's characters 1..{classes - 1}")


def _ctc_accuracy(outputs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The share of samples whose greedy-decoded string equals the label string exactly."""
    decoded, truth = ctc_greedy_decode(outputs), _label_strings(labels)
    _same_count(len(decoded), len(truth), "ctc_accuracy")
    return _means([a == b for a, b in zip(decoded, truth)])


# --- IoU of the thresholded probability map (segmentation, text detection) ---------------------------------------

def _without_unit_axis(array: np.ndarray, ndim: int, what: str) -> np.ndarray:
    """`array` with `ndim` dimensions, its axis 1 dropped when it has one more and that axis has size 1 (a channel or
    output axis of one); otherwise a ValueError saying `what` was expected."""
    array = np.asarray(array)
    if array.ndim == ndim + 1 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != ndim:
        raise ValueError(f"{what}, got shape {array.shape}")
    return array


def _as_maps(array: np.ndarray) -> np.ndarray:
    """(N, H, W) from (N, 1, H, W) or (N, H, W)."""
    return _without_unit_axis(array, 3, "mask_iou: expected (N, 1, H, W) or (N, H, W) maps")


def _mask_labels(outputs: np.ndarray) -> np.ndarray:
    return (_as_maps(outputs) > MASK_THRESHOLD).astype(np.uint8)


def _mask_iou(outputs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Mean over samples of |predicted & true| / |predicted | true|, the prediction thresholded at MASK_THRESHOLD
    and labels true where nonzero; a sample where both are empty counts 1 (nothing to find, nothing found)."""
    predicted, truth = _as_maps(outputs) > MASK_THRESHOLD, _as_maps(labels) != 0
    if predicted.shape != truth.shape:
        raise ValueError(f"mask_iou: maps of shape {predicted.shape[1:]} against labels of shape {truth.shape[1:]}")
    inter = (predicted & truth).reshape(len(truth), -1).sum(1)
    union = (predicted | truth).reshape(len(truth), -1).sum(1)
    return _means(np.where(union == 0, 1.0, inter / np.maximum(union, 1)))


# --- box F1 (YOLO-style detectors): outputs (N, 4 + classes, boxes) as cx, cy, w, h, class scores ----------------
# Labels (N, M, 5): class, x1, y1, x2, y2 per row, rows padded with class PAD.

def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one (x1, y1, x2, y2) box with each of (K, 4) boxes."""
    x1, y1 = np.maximum(box[0], boxes[:, 0]), np.maximum(box[1], boxes[:, 1])
    x2, y2 = np.minimum(box[2], boxes[:, 2]), np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = lambda b: np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)  # noqa: E731
    return inter / np.maximum(area(box) + area(boxes) - inter, 1e-12)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float = NMS_IOU) -> list[int]:
    """Indices kept by greedy non-maximum suppression, best first. Written here because the device side runs on numpy
    alone (torchvision's and OpenCV's NMS would add a dependency to every device); it is the textbook loop."""
    order, keep = list(np.argsort(-scores, kind="stable")), []
    while order:
        best, order = order[0], order[1:]
        keep.append(int(best))
        if order:
            overlaps = box_iou(boxes[best], boxes[order])
            order = [i for i, o in zip(order, overlaps) if o <= iou]
    return keep


def decode_boxes(outputs: np.ndarray, confidence: float = BOX_CONFIDENCE, iou: float = NMS_IOU) -> list[np.ndarray]:
    """Per sample: (K, 6) rows of class, x1, y1, x2, y2, score, best first, after class-wise NMS."""
    outputs = np.asarray(outputs, dtype=np.float64)
    if outputs.ndim != 3 or outputs.shape[1] < 5:
        raise ValueError(f"box_f1: expected (N, 4 + classes, boxes) outputs, got shape {outputs.shape}")
    decoded = []
    for sample in outputs:
        cx, cy, w, h = sample[:4]
        scores = sample[4:]
        cls, score = scores.argmax(0), scores.max(0)
        keep = score >= confidence
        boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)[keep]
        cls, score = cls[keep], score[keep]
        rows = []
        for c in np.unique(cls):
            index = np.flatnonzero(cls == c)
            rows += [(c, *boxes[i], score[i]) for i in index[nms(boxes[index], score[index], iou)]]
        rows.sort(key=lambda r: -r[5])
        decoded.append(np.asarray(rows, dtype=np.float64).reshape(-1, 6))
    return decoded


def _box_labels(outputs: np.ndarray) -> np.ndarray:
    decoded = decode_boxes(outputs)
    width = max([len(d) for d in decoded] + [1])
    out = np.full((len(decoded), width, 5), PAD, dtype=np.float32)
    for i, rows in enumerate(decoded):
        out[i, :len(rows)] = rows[:, :5]
    return out


def _check_box_labels(labels: np.ndarray, outputs: np.ndarray) -> None:
    labels, classes = np.asarray(labels, dtype=np.float64), np.asarray(outputs).shape[1] - 4
    if labels.ndim != 3 or labels.shape[2] != 5:
        raise ValueError(f"labels have shape {labels.shape}, not (N, M, 5) rows of class, x1, y1, x2, y2")
    rows = labels[labels[..., 0] != PAD]
    bad = rows[(rows[:, 0] < 0) | (rows[:, 0] >= classes) | (np.mod(rows[:, 0], 1) != 0), 0]
    if len(bad):
        raise ValueError(f"a box has class {bad[0]:g}, outside the model's classes 0..{classes - 1} (0-based)")
    found = [boxes for boxes in decode_boxes(outputs) if len(boxes)]
    largest = max((float(np.abs(boxes[:, 1:5]).max()) for boxes in found), default=0.0)
    if len(rows) and np.abs(rows[:, 1:]).max() <= 1.0 < largest / 2:  # the model's boxes are in pixels
        raise ValueError(f"the boxes' coordinates are within 0..1, but the model's reach {largest:.0f}: give x1, y1, x2, y2 "
                         "in the model's input pixels")


def _box_f1(outputs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """F1 over all samples: a predicted box is a true positive when it overlaps a not yet matched true box of its class
    by IoU >= MATCH_IOU (predictions matched best score first); 1.0 when there is nothing to find and nothing found."""
    decoded, labels = decode_boxes(outputs), np.asarray(labels, dtype=np.float64)
    if labels.ndim != 3 or labels.shape[2] != 5:
        raise ValueError(f"box_f1: labels must be (N, M, 5) rows of class, x1, y1, x2, y2, got shape {labels.shape}")
    _same_count(len(decoded), len(labels), "box_f1")
    parts = np.zeros((len(decoded), 2))
    for part, found, truth in zip(parts, decoded, labels):
        truth = truth[truth[:, 0] != PAD]
        part[1] = len(found) + len(truth)
        matched = np.zeros(len(truth), bool)
        for row in found:
            candidates = np.flatnonzero((truth[:, 0] == row[0]) & ~matched)
            if len(candidates):
                overlaps = box_iou(row[1:5], truth[candidates, 1:5])
                if overlaps.max() >= MATCH_IOU:
                    matched[candidates[overlaps.argmax()]] = True
                    part[0] += 1
    return parts


# --- speech F1 (voice activity detection): outputs (N,) or (N, 1) speech probability per frame, labels (N,) 0 or 1 --

def _speech_frames(outputs: np.ndarray) -> np.ndarray:
    probabilities = _without_unit_axis(outputs, 1, "speech_f1: expected (N,) or (N, 1) speech probabilities")
    return probabilities > SPEECH_THRESHOLD


def _speech_labels(outputs: np.ndarray) -> np.ndarray:
    return _speech_frames(outputs).astype(np.int64)


def _speech_f1(outputs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """F1 of the frames called speech (probability > SPEECH_THRESHOLD) against the labelled ones; 1.0 when there is no
    speech and none is called (F1 rather than accuracy: most frames of a recording are often silence)."""
    called, truth = _speech_frames(outputs), np.asarray(labels).reshape(-1) != 0
    _same_count(len(called), len(truth), "speech_f1")
    return np.stack([called & truth, called.astype(np.int64) + truth], 1).astype(np.float64)


def _same_count(outputs: int, labels: int, name: str) -> None:
    if outputs != labels:
        raise ValueError(f"{name}: {outputs} outputs against {labels} labels")


METRICS: dict[str, TaskMetric] = {m.name: m for m in (
    TaskMetric("top1", _top1_labels, _top1, "(N,) class indices"),
    TaskMetric("ctc_accuracy", _ctc_labels, _ctc_accuracy, "(N, L) character indices (1..classes-1), padded with -1",
               check_labels=_check_ctc_labels),
    TaskMetric("mask_iou", _mask_labels, _mask_iou, "(N, H, W) or (N, 1, H, W) masks, nonzero where true"),
    TaskMetric("box_f1", _box_labels, _box_f1, "(N, M, 5) rows of class, x1, y1, x2, y2, padded with class -1", f1_of,
               check_labels=_check_box_labels),
    TaskMetric("speech_f1", _speech_labels, _speech_f1, "(N,) 1 for a frame of speech, 0 for none", f1_of),
)}


# One-sided confidence of drop_bound, and its bootstrap rounds: 1,000 resamples put the 95th percentile within one
# sample's worth (100/n points) of where 100,000 do on 300 samples (tests/core/test_drop_bound.py checks 20,000).
DROP_CONFIDENCE, BOOTSTRAP_ROUNDS = 0.95, 1000


def drop_bound(metric: TaskMetric, reference_parts: np.ndarray, parts: np.ndarray, drop_type: str = "absolute",
               confidence: float = DROP_CONFIDENCE, rounds: int = BOOTSTRAP_ROUNDS, seed: int = 0) -> float:
    """The drop (points, as core.metrics.accuracy_drop) that the candidate's true drop stays under with `confidence`:
    a paired bootstrap over the samples both were measured on (the same resampled samples score both, so what they
    agree on cancels). A drop measured on a few hundred samples is a noisy number: a candidate that changes one answer
    in ten moves the metric by +-3 points from one set of 120 samples to the next, and a 1-point limit met on 120
    validation samples says little about the test split. This bound says how little."""
    reference_parts, parts = np.asarray(reference_parts, np.float64), np.asarray(parts, np.float64)
    n = len(parts)
    if n == 0 or len(reference_parts) != n:
        raise ValueError(f"drop_bound: {len(reference_parts)} reference samples against {n}")
    rng, drops = np.random.default_rng(seed), []
    for start in range(0, rounds, 250):  # 250 resamples at a time: weights of (250, n) stay small on large sets
        weights = rng.multinomial(n, np.full(n, 1.0 / n), size=min(250, rounds - start)).astype(np.float64)
        reference, value = metric.combine(weights @ reference_parts), metric.combine(weights @ parts)
        drops.append((reference - value) * 100 if drop_type == "absolute"
                     else np.where(reference > 0, (1 - value / np.maximum(reference, 1e-12)) * 100, 0.0))
    return float(np.quantile(np.concatenate(drops), confidence))


def task_metric(name: str) -> TaskMetric:
    """The metric named `name`; ValueError listing the known ones otherwise."""
    if name not in METRICS:
        raise ValueError(f"unknown task metric {name!r}; known: {', '.join(METRICS)}")
    return METRICS[name]
