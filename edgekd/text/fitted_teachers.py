"""Teachers beside the BERT one on text: scikit-learn pipelines that read the raw texts (TfidfVectorizer +
LogisticRegression, ...), fitted by edgekd on the training split (edgekd/train/teacher_kinds.py), their outputs on
every split cached once in the shared teacher-logit cache (keyed by the teacher's config, seed and library versions
and by the data's fingerprint, so a rerun skips the fit), and the ensemble's weights picked on the validation split.

The ensemble's output is the log of the weighted mean of the members' probabilities: logits like a network's, so
the student's KD softens them with its temperature as it would the BERT teacher's alone.

Used by the text pipeline (pipeline/stages/text.py) and benchmarks/distill_text.py.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from edgekd.core.errors import ConfigError

TEXT_STEPS = ("TfidfVectorizer", "CountVectorizer", "HashingVectorizer")  # scikit-learn's steps that read raw texts
SPLITS = ("train", "val", "test")
WEIGHT_STEP = 0.1  # the validation grid's step over the weights (they sum to 1)
MAX_GRID_TEACHERS = 3  # the grid has 66 points for 3 teachers; past that the configured weights are kept


def first_step(spec) -> str | None:
    """The name of a scikit-learn teacher's estimator, or of its pipeline's first step; None for other kinds."""
    if spec.kind != "sklearn":
        return None
    return next(iter(spec.sklearn[0])) if isinstance(spec.sklearn, list) else spec.sklearn


def reads_text(spec) -> bool:
    return first_step(spec) in TEXT_STEPS


def check_text_teacher(spec, index: int) -> None:
    """A teacher beside the BERT one on data.source text must read raw texts: a scikit-learn pipeline whose first step
    is a text vectorizer."""
    if not reads_text(spec):
        got = first_step(spec) or f"kind {spec.kind}"
        raise ConfigError(f"teachers[{index}]: on data.source text a teacher beside the BERT one reads raw texts: a scikit-learn "
                          f"pipeline starting with {' or '.join(TEXT_STEPS)}, e.g. sklearn: [{{TfidfVectorizer: {{}}}}, "
                          f"{{LogisticRegression: {{}}}}]; got {got}")


def text_teacher_refusal(spec, index: int, source: str) -> str | None:
    """The one line refusing a text pipeline given data that is not text (data.source `source`: a table, images),
    None when the teacher does not read texts."""
    if not reads_text(spec):
        return None
    return (f"teachers[{index}].sklearn: {first_step(spec)} reads raw texts (data.source text), and data.source is '{source}'; "
            "use an estimator for that data, or give the texts as data.source text")


@dataclass
class FittedOutputs:
    """One fitted teacher's outputs (logits or log-probabilities) on each split, and whether the cache held them."""
    name: str
    logits: dict[str, np.ndarray]
    cached: bool
    keys: dict[str, str] = field(default_factory=dict)


def fitted_outputs(spec, index: int, fit: tuple[list[str], np.ndarray], texts: dict[str, list[str]], classes: int, seed: int,
                   cache, fingerprint: str, out_of_fold: int | None = None) -> FittedOutputs:
    """The teacher's outputs on texts[split] for every split: from the cache, else fitted on `fit` (texts, labels: the
    training split), run and cached. `fingerprint` names the data (the fit texts and every split's). `out_of_fold`
    (distill.out_of_fold): texts["train"], which must be the fit texts, get outputs from fits on the other folds."""
    from edgekd.train.distill.cache import cache_key
    from edgekd.train.teacher_kinds import check_outputs, describe, fit_teacher, fitted_identity, out_of_fold_logits

    if out_of_fold and list(texts.get("train", [])) != list(fit[0]):
        raise ValueError("fitted_outputs: out_of_fold needs texts['train'] to be the texts the teacher is fitted on")
    identity = fitted_identity(spec, seed)
    keys = {split: cache_key(identity, fingerprint, {"split": split, "outputs": "logits or log-probabilities", "rows": len(rows),
                                                     **({"out_of_fold": out_of_fold} if out_of_fold and split == "train" else {})})
            for split, rows in texts.items()}
    found = {split: cache.load(key) for split, key in keys.items()}
    if all(entry is not None for entry in found.values()):
        return FittedOutputs(describe(spec), {s: np.asarray(e.logits, dtype=np.float32) for s, e in found.items()}, True, keys)
    teacher = fit_teacher(spec, index, fit[0], np.asarray(fit[1]), classes, seed)
    logits = {}
    for split, rows in texts.items():
        outputs = (lambda: out_of_fold_logits(spec, index, fit[0], np.asarray(fit[1]), classes, seed, out_of_fold)
                   ) if out_of_fold and split == "train" else (lambda rows=rows: teacher.logits(rows))
        entry = cache.get_or_compute(keys[split], lambda outputs=outputs: check_outputs(teacher, outputs()),
                                     {"teacher": f"teachers[{index}] ({teacher.name})", "split": split})
        logits[split] = np.asarray(entry.logits, dtype=np.float32)
    return FittedOutputs(teacher.name, logits, False, keys)


def mix(logits: list[np.ndarray], weights: list[float]) -> np.ndarray:
    """log of the weighted mean of the members' probabilities (weights normalized to sum 1)."""
    w = np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    stacked = np.stack([np.asarray(z, dtype=np.float64) for z in logits])
    stacked = stacked - stacked.max(axis=2, keepdims=True)
    probabilities = np.exp(stacked) / np.exp(stacked).sum(axis=2, keepdims=True)
    return np.log(np.clip(np.tensordot(w, probabilities, axes=1), 1e-12, 1.0)).astype(np.float32)


def top1(logits: np.ndarray, labels: np.ndarray) -> float:
    return float((np.asarray(logits).argmax(1) == np.asarray(labels)).mean())


def pick_weights(val_logits: list[np.ndarray], labels: np.ndarray, configured: list[float]) -> tuple[list[float], str]:
    """The weights (summing to 1) whose mix scores best on validation, over a grid of step WEIGHT_STEP; ties go to
    the point nearest equal weights. Past MAX_GRID_TEACHERS teachers, the configured weights. Returns (weights, how)."""
    n = len(val_logits)
    if n == 1:
        return [1.0], "one teacher"
    if n > MAX_GRID_TEACHERS:
        total = float(sum(configured))
        return [w / total for w in configured], f"configured (more than {MAX_GRID_TEACHERS} teachers: no grid)"
    steps = int(round(1 / WEIGHT_STEP))
    grid = [np.array(p) / steps for p in itertools.product(range(steps + 1), repeat=n) if sum(p) == steps]
    equal = np.full(n, 1.0 / n)
    best = max(grid, key=lambda w: (top1(mix(val_logits, list(w)), labels), -float(np.abs(w - equal).sum())))
    return [round(float(x), 4) for x in best], f"validation grid, step {WEIGHT_STEP}"
