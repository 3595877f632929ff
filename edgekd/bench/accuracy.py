"""Accuracy and fidelity from logits: plain numpy."""
from __future__ import annotations

import hashlib

import numpy as np

# What a report's top-1 measured: against labels, or (data without labels) against the fp32 model's own top-1.
ACCURACY = "top-1 against the labels"
FIDELITY = "fidelity to fp32 (no labels)"
FIDELITY_NOTE = ("measured: fidelity to fp32 (no labels): top-1 is the share of images where the model's top-1 agrees with "
                 "the fp32 model's, and drop is the disagreement in points; the fidelity column has the output cosine")


def measured_note(report: dict) -> str | None:
    """The line a report, table or gate shows when its top-1 is fidelity to fp32 rather than accuracy."""
    return FIDELITY_NOTE if report.get("measured") == FIDELITY else None


def sample_count(x) -> int:
    """Samples in model inputs: one array, or a model with several inputs' {input name: array}."""
    return len(next(iter(x.values()))) if isinstance(x, dict) else len(x)


def take_rows(x, index):
    """The same rows of every input."""
    return {name: array[index] for name, array in x.items()} if isinstance(x, dict) else x[index]


def predict(run, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    return np.concatenate([run(take_rows(x, slice(i, i + batch_size))) for i in range(0, sample_count(x), batch_size)])


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
