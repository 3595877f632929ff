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
from dataclasses import dataclass

import numpy as np

from edgekd.core.task_metrics import finite_rows, task_metric

# What a report's top-1 measured: against labels, or (data without labels) against the fp32 model's own top-1.
ACCURACY = "top-1 against the labels"
FIDELITY = "fidelity to fp32 (no labels)"
FIDELITY_NOTE = ("measured: fidelity to fp32 (no labels): top-1 is the share of images where the model's top-1 agrees with "
                 "the fp32 model's, and drop is the disagreement in points; the cosine column is the mean cosine of the "
                 "model's outputs with the fp32 model's")


def measured_note(report: dict) -> str | None:
    """The line a report, table or gate shows when its top-1 is fidelity to fp32 rather than accuracy, or a task metric."""
    metric = report.get("task_metric") or "top1"
    if metric == PERPLEXITY.key:  # its own columns and words (device/report/table.intro): no top-1 to explain
        return None
    if metric != "top1":
        against = "the fp32 model's outputs as labels (no labels)" if report.get("measured") == FIDELITY else "the labels"
        return (f"measured: {metric} against {against}: the top-1 column holds {metric} and drop is in its points; "
                "the cosine column is the worst output's cosine with fp32's (report.md and report.json's fidelity: "
                "each output's cosine and SQNR)")
    return FIDELITY_NOTE if report.get("measured") == FIDELITY else None


@dataclass(frozen=True)
class MetricSpec:
    """How a report's metric is read and judged: the row and reference key that holds it, its direction, its unit,
    and the gate thresholds that judge it (others are refused for its reports rather than ignored)."""

    key: str
    higher_is_better: bool
    unit: str
    limits: tuple[str, ...]


# top-1, and every task metric (core/task_metrics.py: a fraction, higher is better, held under `top1`)
TOP1 = MetricSpec("top1", True, "fraction", ("reference", "max_drop", "drop_type", "max_metric_drop", "min_cosine",
                                             "min_sqnr_db", "min_speedup", "max_size_kb"))
# a language model's: lower is better, judged as an increase over the reference (and greedy agreement with fp32)
PERPLEXITY = MetricSpec("perplexity", False, "ratio", ("max_increase", "min_greedy_agreement"))


def metric_spec(name: str | None) -> MetricSpec:
    """The spec of a report's task_metric (a task's `metric`): perplexity, else top-1's."""
    return PERPLEXITY if name == PERPLEXITY.key else TOP1


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


def predict_outputs(session, x, batch_axes: dict[str, int] | None = None, batch_size: int | None = None) -> dict[str, np.ndarray]:
    """Every output of a session (runtimes' run_outputs) on x, batch by batch (batch_rows(x) unless given, as predict),
    joined along each output's batch axis: `batch_axes`, else found_output_axes (a recurrent state may hold the
    samples on another axis than the first)."""
    batch_size = batch_size or batch_rows(x)
    starts = range(0, sample_count(x), batch_size)
    parts = [session.run_outputs(take_rows(x, slice(i, i + batch_size))) for i in starts]
    rows = [min(batch_size, sample_count(x) - i) for i in starts]
    axes = batch_axes if batch_axes is not None else found_output_axes(session, parts, rows)
    return {name: np.concatenate([part[name] for part in parts], axis=axes.get(name, 0)) for name in parts[0]}


def found_output_axes(session, parts: list[dict[str, np.ndarray]], rows: list[int]) -> dict[str, int]:
    """Each output's batch axis: the one axis whose size is every call's row count, else as the session declares it (a
    named batch dimension), else 0. Silero VAD declares its next state [?, ?, ?] and returns [2, batch, 128]: only
    its arrays say where the samples are."""
    declared = session.output_batch_axes() if hasattr(session, "output_batch_axes") else {}
    found = {}
    for name in parts[0]:
        fits = [axis for axis in range(parts[0][name].ndim)
                if all(part[name].ndim > axis and part[name].shape[axis] == n for part, n in zip(parts, rows))]
        found[name] = fits[0] if len(fits) == 1 else declared.get(name, fits[0] if fits else 0)
    return found


def batch_axes_of(references: dict[str, np.ndarray], samples: int) -> dict[str, int]:
    """Each reference output's batch axis, read from the arrays (a bundle's eval.npz): the first axis of `samples` rows
    (axis 0 when it has them)."""
    return {name: next((axis for axis, size in enumerate(array.shape) if size == samples), 0)
            for name, array in references.items()}


def outputs_fidelity(outputs: dict[str, np.ndarray], references: dict[str, np.ndarray],
                     batch_axes: dict[str, int] | None = None) -> dict:
    """tensor_fidelity of each output against the reference model's output of that name (samples moved to the first
    axis), and their worst (worst_fidelity) at the top level, where the gate and selection read it."""
    axes = batch_axes or {}
    missing = sorted(set(references) - set(outputs))
    if missing:
        raise ValueError(f"outputs {', '.join(missing)} of the reference model are missing from the model compared with it")
    per_output = {name: tensor_fidelity(np.moveaxis(outputs[name], axes.get(name, 0), 0),
                                        np.moveaxis(references[name], axes.get(name, 0), 0)) for name in references}
    return {**worst_fidelity(per_output), "outputs": per_output}


def topk(logits: np.ndarray, labels: np.ndarray, k: int = 1) -> float:
    """The share of samples whose label is among their k best classes; a sample with a non-finite output (NaN, inf)
    is wrong whatever its label (argmax of an all-NaN row is 0: it would count as right on every label 0)."""
    finite = finite_rows(logits)
    if k == 1:
        return float(((logits.argmax(1) == labels) & finite).mean())
    best = np.argpartition(-logits, kth=min(k, logits.shape[1] - 1), axis=1)[:, :k]
    return float(((best == labels[:, None]).any(1) & finite).mean())


def nonfinite_count(outputs: np.ndarray) -> int:
    """How many samples (first axis) have a NaN or infinite value anywhere in their output."""
    return int((~finite_rows(outputs)).sum())


def fidelity(logits: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """How close a model's outputs are to the reference (fp32) model's on the same samples: tensor_fidelity, and for
    (batch, classes) logits the share of samples whose top-1 agrees."""
    numbers = tensor_fidelity(logits, reference)
    if np.ndim(logits) == 2:
        agree = (logits.argmax(1) == reference.argmax(1)) & finite_rows(logits) & finite_rows(reference)
        numbers["top1_agreement"] = float(agree.mean())
    return numbers


# SQNR of outputs identical to the reference is infinite; reports are JSON, which has no infinity, so it is capped
# here (float32 rounding alone gives ~140 dB, so a real difference never reaches the cap).
MAX_SQNR_DB = 300.0


# A sample is blank when its norm is below this share of the largest sample norm in the batch (both tensors).
BLANK_NORM = 1e-6


def blank_samples(norm_a: np.ndarray, norm_b: np.ndarray) -> np.ndarray:
    """Per sample: whether both sides are blank (norm at most BLANK_NORM x the batch's largest): they agree. A text
    detector's map of an empty page is exactly 0 on one runtime and 2e-9 on another; the cosine of that pair is noise
    (0 here), and one such page of ten took the mean cosine of a model within 4e-5 of its reference to 0.9."""
    scale = max(float(norm_a.max(initial=0.0)), float(norm_b.max(initial=0.0)))
    return (norm_a <= BLANK_NORM * scale) & (norm_b <= BLANK_NORM * scale)


def tensor_fidelity(output: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """The numbers that hold for any pair of tensors of one shape, batch first: cosine (mean over samples of the
    flattened samples' cosine; two blank samples agree, 1.0 (blank_samples); with one value per sample, the cosine of
    all of them),
    SQNR in dB (10 log10 of the reference's energy over
    the error's, over the whole tensor, capped at MAX_SQNR_DB), and the largest and mean absolute errors.
    Samples with a non-finite value (NaN, inf): one non-finite on one side only has cosine 0 (they disagree), one
    non-finite on both sides is left out of the cosine (nothing to compare), and SQNR and errors are over the samples
    finite on both sides; with no sample finite on both sides, cosine and SQNR are 0 (no agreement shown);
    `nonfinite_rows` (only when some) counts the output's non-finite samples."""
    a = np.asarray(output, dtype=np.float64)
    b = np.asarray(reference, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"outputs of shape {a.shape} compared with a reference of shape {b.shape}")
    a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    broken = int((~finite_rows(a)).sum())
    share = 1.0  # of the samples to compare, those finite on both sides: the others disagree (cosine 0)
    if a.shape[1] == 1:  # one value per sample: its own cosine is only its sign; the samples' values are the vector
        keep = finite_rows(a) & finite_rows(b)  # the vector of the samples finite on both sides
        share = float(keep.sum()) / max(int((finite_rows(a) | finite_rows(b)).sum()), 1)
        a, b = a[keep].reshape(1, -1), b[keep].reshape(1, -1)
    finite_a, finite_b = finite_rows(a), finite_rows(b)
    both = finite_a & finite_b
    a, b = np.where(both[:, None], a, 0.0), np.where(both[:, None], b, 0.0)  # errors and SQNR over `both` alone
    norm_a, norm_b = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    cosine = np.where(blank_samples(norm_a, norm_b), 1.0, (a * b).sum(1) / np.maximum(norm_a * norm_b, 1e-300))
    cosine = np.where(finite_a != finite_b, 0.0, cosine)[finite_a | finite_b]
    error = (a - b)[both]
    noise, signal = float((error ** 2).sum()), float((b ** 2).sum())
    sqnr = MAX_SQNR_DB if noise == 0 else min(MAX_SQNR_DB, 10 * np.log10(max(signal, 1e-300) / noise))
    if broken and not error.size:  # nothing finite to compare: no agreement shown (a NaN model once read 1.0, 300 dB)
        cosine, sqnr = np.zeros(0), 0.0
    numbers = {"cosine": float(cosine.mean()) * share if cosine.size else 0.0, "sqnr_db": float(sqnr),
               "max_abs_error": float(np.abs(error).max(initial=0.0)),
               "mean_abs_error": float(np.abs(error).mean()) if error.size else 0.0}
    return {**numbers, "nonfinite_rows": broken} if broken else numbers


def worst_fidelity(per_output: dict[str, dict[str, float]]) -> dict[str, float]:
    """One summary of several outputs' tensor_fidelity: the lowest cosine and SQNR, the largest errors (a gate on
    the summary holds for every output)."""
    values = list(per_output.values())
    worst = {"cosine": min(v["cosine"] for v in values), "sqnr_db": min(v["sqnr_db"] for v in values),
             "max_abs_error": max(v["max_abs_error"] for v in values),
             "mean_abs_error": max(v["mean_abs_error"] for v in values)}
    broken = max(v.get("nonfinite_rows", 0) for v in values)
    return {**worst, "nonfinite_rows": broken} if broken else worst


def accuracy_metrics(logits: np.ndarray, labels: np.ndarray, metric: str = "top1") -> dict[str, float]:
    """top-1 (and top-5 over 5 classes) of a classifier's logits; for a named task metric (core/task_metrics.py), its
    score, kept under `top1` where reports, the gate and selection read the task's score (the report's task_metric
    says which metric it is)."""
    if metric != "top1":
        return {"top1": task_metric(metric).score(logits, labels)}
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
    # class indices as int64 (as always); a task metric's float labels (box coordinates) in float32, not truncated
    digest.update(np.ascontiguousarray(y, dtype=np.float32 if np.asarray(y).dtype.kind == "f" else np.int64).tobytes())
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


def shown_against(value: float, limit: float, digits: int = 2, style: str = "f") -> str:
    """`value` with `digits` (decimals for style f, significant digits for g), and more while it would read as the
    limit it differs from: a failing speed-up of 1.098x shown "1.10x (limit 1.1x)" reads as meeting the limit; this
    shows 1.098x. Every check that prints a value beside its limit (gate, selection) formats it so. A value equal to
    the limit up to float rounding (DROP_TOLERANCE, as within_limit and at_least judge it) is shown as the limit."""
    text = f"{value:.{digits}{style}}"
    apart = abs(value - limit) > DROP_TOLERANCE * max(1.0, abs(limit))
    while apart and text == f"{limit:.{digits}{style}}" and digits < 12:
        digits += 1
        text = f"{value:.{digits}{style}}"
    return text


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
