"""Accuracy, fidelity and accuracy drops from logits: plain numpy, one definition of each, used by the
pipeline's stages, quantization, selection, the bench and the gate alike.

Drops, in the units the thresholds use:
    absolute: (reference_top1 - top1) * 100          -> top-1 points (0.99 -> 0.97 is a 2.0 point drop)
    relative: (1 - top1 / reference_top1) * 100      -> percent of the reference (0.99 -> 0.97 is 2.02 %)
When the number of evaluation samples is known, drops are computed from the counts of correct samples
(one division of integers), so a drop exactly at a limit equals it: with floats, 0.95 - 0.94 is
1.0000000000000009 points and a 1.0 limit would fail it. Otherwise a limit is met within DROP_TOLERANCE.
"""
from __future__ import annotations

import hashlib

import numpy as np

# What a report's top-1 measured: against labels, or (data without labels) against the fp32 model's own top-1.
ACCURACY = "top-1 against the labels"
FIDELITY = "fidelity to fp32 (no labels)"
FIDELITY_NOTE = ("measured: fidelity to fp32 (no labels): top-1 is the share of images where the model's top-1 agrees with "
                 "the fp32 model's, and drop is the disagreement in points; the cosine column is the mean cosine of the "
                 "model's outputs with the fp32 model's")


def measured_note(report: dict) -> str | None:
    """The line a report, table or gate shows when its top-1 is fidelity to fp32 rather than accuracy."""
    return FIDELITY_NOTE if report.get("measured") == FIDELITY else None


def sample_count(x) -> int:
    """Samples in model inputs: one array, or a model with several inputs' {input name: array}."""
    return len(next(iter(x.values()))) if isinstance(x, dict) else len(x)


def take_rows(x, index):
    """The same rows of every input."""
    return {name: array[index] for name, array in x.items()} if isinstance(x, dict) else x[index]


# Input bytes per inference call. A runtime's activations grow with the batch, and onnxruntime's and torch's
# allocators keep the largest batch's: at 256 images of 3x224x224 (154 MB of input) a CNN's first layers alone held
# gigabytes, so a mid-size model's ship peaked at ~11 GB. 16 MB is 27 such images, or the whole 256 of small inputs.
BATCH_BYTES = 16 << 20


def sample_bytes(x) -> int:
    """Bytes of one sample's inputs (an image folder's LazyImages has shape and dtype, like an array)."""
    arrays = x.values() if isinstance(x, dict) else [x]
    # numpy arrays and torch tensors have itemsize; LazyImages has a numpy dtype
    return sum(int(np.prod(tuple(a.shape[1:]), dtype=np.int64)) * (a.itemsize if hasattr(a, "itemsize") else np.dtype(a.dtype).itemsize)
               for a in arrays)


def batch_rows(x, limit: int = 256, budget: int = BATCH_BYTES) -> int:
    """Rows per inference call: at most `limit`, and no more than `budget` bytes of input."""
    return max(1, min(limit, budget // max(1, sample_bytes(x))))


def predict(run, x: np.ndarray, batch_size: int | None = None) -> np.ndarray:
    """`run` over `x` in batches (batch_rows(x) unless given), each sliced before it is decoded or converted."""
    size = batch_size or batch_rows(x)
    return np.concatenate([run(take_rows(x, slice(i, i + size))) for i in range(0, sample_count(x), size)])


def topk(logits: np.ndarray, labels: np.ndarray, k: int = 1) -> float:
    if k == 1:
        return float((logits.argmax(1) == labels).mean())
    best = np.argpartition(-logits, kth=min(k, logits.shape[1] - 1), axis=1)[:, :k]
    return float((best == labels[:, None]).any(1).mean())


def fidelity(logits: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    diff = np.abs(logits.astype(np.float64) - reference)
    a, b = logits.reshape(len(logits), -1).astype(np.float64), reference.reshape(len(reference), -1)
    cosine = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
    return {"top1_agreement": float((logits.argmax(1) == reference.argmax(1)).mean()),
            "max_abs_error": float(diff.max()), "mean_abs_error": float(diff.mean()),
            "cosine": float(cosine.mean())}


def accuracy_metrics(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    metrics = {"top1": topk(logits, labels, 1)}
    if logits.shape[1] > 5:
        metrics["top5"] = topk(logits, labels, 5)
    return metrics


def eval_set_hash(x: np.ndarray, y: np.ndarray) -> str:
    """Content hash of an evaluation set, the same for the pipeline's subset and a bundle's eval.npz
    (dtypes fixed first, so float64 vs float32 copies of the same data cannot disagree)."""
    if isinstance(x, dict):  # several named inputs: each by name, in name order, in its own dtype
        digest = hashlib.sha256()
        for name in sorted(x):
            digest.update(name.encode() + np.ascontiguousarray(x[name]).tobytes())
    else:
        digest = hashlib.sha256(np.ascontiguousarray(x, dtype=np.float32).tobytes())
    digest.update(np.ascontiguousarray(y, dtype=np.int64).tobytes())
    return digest.hexdigest()


DROP_TYPES = ("absolute", "relative")


def accuracy_drop(reference: float, value: float, drop_type: str = "absolute", samples: int | None = None) -> float:
    """The drop from `reference` to `value` (top-1 fractions); `samples`: how many samples both were measured on."""
    if drop_type not in DROP_TYPES:
        raise ValueError(f"unknown drop_type {drop_type!r}")
    counts = correct_counts(samples, reference, value)
    if counts is not None:
        reference_correct, correct = counts
        lost = (reference_correct - correct) * 100
        if drop_type == "absolute":
            return lost / samples
        return lost / reference_correct if reference_correct else 0.0
    if drop_type == "absolute":
        return (reference - value) * 100.0
    return (1.0 - value / reference) * 100.0 if reference else 0.0


def correct_counts(samples: int | None, *top1: float) -> tuple[int, ...] | None:
    """How many of `samples` each top-1 fraction got right, or None when a fraction is no whole number of
    samples (measured on another set, rounded by hand) and the counts are not known."""
    if not samples or isinstance(samples, bool) or not isinstance(samples, int):
        return None
    counts = tuple(round(fraction * samples) for fraction in top1)
    exact = all(abs(fraction * samples - count) <= COUNT_ROUNDING for fraction, count in zip(top1, counts))
    return counts if exact else None


# fraction * samples is off a whole number only by float rounding (~1e-16 * samples) when it came from a count.
COUNT_ROUNDING = 1e-6
# Drops not computed from counts carry float rounding (about 1e-14 points); this is far below one sample of any
# evaluation set (100 / samples points), so it only absorbs rounding and never lets a real extra error through.
DROP_TOLERANCE = 1e-9


def within_limit(value: float, limit: float) -> bool:
    """value <= limit, up to float rounding: the comparison every accuracy budget uses (gate, selection, quantize)."""
    return value <= limit + DROP_TOLERANCE * max(1.0, abs(limit))


def at_least(value: float, limit: float) -> bool:
    """value >= limit, up to float rounding (a speedup computed from two latencies)."""
    return value >= limit - DROP_TOLERANCE * max(1.0, abs(limit))


def mcnemar_exact(a_correct: np.ndarray, b_correct: np.ndarray, alternative: str = "two-sided") -> tuple[int, int, float]:
    """Exact McNemar test on paired per-sample correctness of two models (or two ways of feeding one model) on the same
    samples: (samples only a gets right, samples only b gets right, p-value). Only the discordant pairs carry
    information, and under "equally accurate" each falls either way with probability 1/2: a binomial test.
    `alternative` "greater" asks whether a is more accurate than b. scipy is imported here only, for `edgekd bench`'s
    lean imports."""
    from scipy.stats import binomtest

    a, b = np.asarray(a_correct, bool), np.asarray(b_correct, bool)
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(b & ~a))
    if only_a + only_b == 0:
        return 0, 0, 1.0
    return only_a, only_b, float(binomtest(only_a, only_a + only_b, 0.5, alternative=alternative).pvalue)
