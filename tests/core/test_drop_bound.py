"""core.task_metrics.drop_bound: how far a candidate's drop may really be, from the samples it was measured on (the
PP-OCRv4 rec case of issue 34: int8 +3.3 points on 120 validation lines, -6.5 on 200 test lines)."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from edgekd.core.task_metrics import METRICS, drop_bound, task_metric
from edgekd.pipeline.selection import unconfirmed_drop

TOP1 = task_metric("top1")


def _classifier_pair(samples: int, changed: int, broken: int, classes: int = 4):
    """Reference logits right on every sample; a candidate that changes `changed` answers, `broken` of them from right
    to wrong and the rest from wrong to right (so the reference is wrong on those)."""
    labels = np.arange(samples) % classes
    reference = np.eye(classes)[labels]
    candidate = reference.copy()
    fixed = changed - broken
    reference[:fixed] = np.eye(classes)[(labels[:fixed] + 1) % classes]  # the reference wrong where the candidate fixes
    candidate[fixed:changed] = np.eye(classes)[(labels[fixed:changed] + 1) % classes]
    return TOP1.parts(reference, labels), TOP1.parts(candidate, labels)


def test_the_same_outputs_have_no_drop_to_bound():
    parts, _ = _classifier_pair(120, 0, 0)
    assert drop_bound(TOP1, parts, parts) == 0.0


def test_one_answer_in_ten_changed_on_120_samples_cannot_confirm_a_1_point_limit():
    # 12 answers changed, as many fixed as broken: a drop of 0 measured, but the paired standard error is
    # sqrt(12)/120 = 2.9 points, so the one-sided 95% bound is about 1.645 * 2.9 = 4.7 points
    reference, candidate = _classifier_pair(120, 12, 6)
    assert TOP1.combine(candidate.sum(0)) == TOP1.combine(reference.sum(0))
    assert 3.5 < drop_bound(TOP1, reference, candidate) < 6.0


def test_a_hundred_times_the_samples_bound_it_ten_times_tighter():
    reference, candidate = _classifier_pair(12_000, 1_200, 600)
    assert 0.35 < drop_bound(TOP1, reference, candidate) < 0.6


def test_the_bound_sits_above_the_measured_drop():
    reference, candidate = _classifier_pair(300, 30, 20)  # 10 more broken than fixed: 3.33 points
    assert drop_bound(TOP1, reference, candidate) > 100 * 10 / 300


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_1000_rounds_land_within_one_sample_of_20000(seed):
    reference, candidate = _classifier_pair(300, 30, 18)
    few, many = drop_bound(TOP1, reference, candidate, seed=seed), drop_bound(TOP1, reference, candidate, rounds=20_000, seed=9)
    assert abs(few - many) <= 100 / 300 + 1e-9  # the bound moves in steps of one sample: 0.33 points here


def test_f1_metrics_resample_their_counts_not_their_scores():
    speech = METRICS["speech_f1"]
    truth = np.r_[np.ones(50), np.zeros(150)].astype(np.int64)
    probabilities = truth * 0.9 + 0.05
    missed = probabilities.copy()
    missed[:5] = 0.1  # 5 speech frames missed
    reference, candidate = speech.parts(probabilities, truth), speech.parts(missed, truth)
    assert speech.score(missed, truth) == pytest.approx(2 * 45 / 95)
    assert drop_bound(speech, reference, candidate) > (1 - 2 * 45 / 95) * 100


def test_a_relative_drop_is_bounded_in_relative_points():
    reference, candidate = _classifier_pair(200, 20, 20)  # 10 points absolute from 100%: 10 relative
    absolute, relative = (drop_bound(TOP1, reference, candidate, kind) for kind in ("absolute", "relative"))
    assert relative == pytest.approx(absolute, rel=0.05)


def test_mismatched_sample_counts_are_refused():
    reference, candidate = _classifier_pair(20, 2, 1)
    with pytest.raises(ValueError, match="19 reference samples against 20"):
        drop_bound(TOP1, reference[:19], candidate)


def _gate(max_drop: float):
    from edgekd.core.thresholds import Thresholds

    return Thresholds(max_drop=max_drop)


def _profile():
    return SimpleNamespace(name="intel-cpu", gate=SimpleNamespace(given=lambda: {}))


def test_a_choice_the_validation_split_cannot_confirm_is_said():
    row = {"name": "int8", "precision": "int8", "val_drop": 0.5, "val_drop_bound": 4.8}
    text = unconfirmed_drop(_gate(1.0), _profile(), "top1", row, 120)
    assert "intel-cpu: int8 drops 0.50 points of top1 on 120 validation samples (limit 1)" in text
    assert "up to 4.80 points" in text and "data.val_fraction" in text


@pytest.mark.parametrize("row", [
    {"name": "int8", "precision": "int8", "val_drop": 0.1, "val_drop_bound": 0.8},   # confirmed
    {"name": "fp32", "precision": "fp32", "val_drop": 0.0, "val_drop_bound": 0.0},   # the model as given
    {"name": "int8", "precision": "int8", "val_drop": 0.1},                          # no metric to bound it by
])
def test_a_confirmed_or_unbounded_choice_says_nothing(row):
    assert unconfirmed_drop(_gate(1.0), _profile(), "top1", row, 2000) is None


def test_the_bench_report_repeats_what_compile_could_not_confirm(tmp_path):
    """The compile stage's warning scrolls past in a log; the report, which people read, says it again per target."""
    from edgekd.pipeline.records import CompileRecord, TargetBuild
    from edgekd.pipeline.stages.bench import unconfirmed_choices

    rows = [{"name": "fp32", "precision": "fp32", "val_drop": 0.0, "val_drop_bound": 0.0},
            {"name": "int8", "precision": "int8", "val_drop": 0.5, "val_drop_bound": 4.8}]
    record = CompileRecord({"x86-cpu": TargetBuild("onnxruntime", "int8", "int8", rows, "bundle/x86-cpu"),
                            "arm64-cpu": TargetBuild("ort-arm64", "fp32", "fp32", rows, "bundle/arm64-cpu")})
    metrics = {"compile": record.to_metrics()}
    ctx = SimpleNamespace(manifest=SimpleNamespace(metrics=lambda stage: metrics.get(stage, {})), base_dir=tmp_path,
                          cfg=SimpleNamespace(gate=_gate(1.0), targets=["intel-cpu"]), task=SimpleNamespace(metric="ctc_accuracy"),
                          dataset=SimpleNamespace(val=SimpleNamespace(y=[0] * 120)))
    notes = unconfirmed_choices(ctx)
    assert len(notes) == 1 and notes[0].startswith("x86-cpu: int8 drops 0.50 points of ctc_accuracy on 120 validation")
