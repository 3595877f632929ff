"""Labels a metric would only quietly count wrong are refused at intake (TaskMetric.check_labels), found by shipping
a recognizer and a detector as a new user: before, each of these shipped with a PASS and a meaningless score."""
from __future__ import annotations

import numpy as np
import pytest

from edgekd.core.task_metrics import PAD, task_metric


def _ctc_outputs(classes: int = 11, steps: int = 12, samples: int = 2) -> np.ndarray:
    return np.random.default_rng(0).random((samples, steps, classes), dtype=np.float32)


@pytest.mark.parametrize("labels, message", [
    (np.array([[0, 3, PAD], [2, 0, 1]]), r"holds 0, the CTC blank .*shift 0-based labels up by one"),
    # 1-based strings padded with 0 (a trial, session 11: told to shift every character)
    (np.array([[4, 3, 0, 0], [2, 7, 1, 0]]), r"labels are padded with 0 \(the CTC blank.*pad them with -1 instead"),
    (np.array([[11, 3, PAD], [2, 5, 1]]), r"holds 11, outside the model's characters 1..10"),
    (np.array(["12", "345"]), r"labels are <U3 \(2,\), not \(N, L\) whole character indices"),
    (np.array([[1.5, 2.5], [3.5, PAD]]), r"labels are float64 \(2, 2\), not \(N, L\) whole character indices"),
])
def test_ctc_labels_that_decoding_cannot_match_are_refused(labels, message):
    with pytest.raises(ValueError, match=message):
        task_metric("ctc_accuracy").check_labels(labels, _ctc_outputs())


def test_ctc_labels_as_whole_floats_are_taken():
    task_metric("ctc_accuracy").check_labels(np.array([[1.0, 10.0], [3.0, PAD]]), _ctc_outputs())


def _box_outputs(classes: int = 3) -> np.ndarray:
    """One confident box of class 1 at (cx, cy, w, h) = (40, 40, 20, 20) pixels per sample, among 8 weak ones."""
    out = np.zeros((2, 4 + classes, 8), np.float32)
    out[:, :4, 0] = [40, 40, 20, 20]
    out[:, 4 + 1, 0] = 0.9
    return out


@pytest.mark.parametrize("labels, message", [
    (np.array([[[3, 30, 30, 50, 50]], [[1, 30, 30, 50, 50]]]), r"a box has class 3, outside the model's classes 0..2"),
    (np.array([[[1, 0.3, 0.3, 0.5, 0.5]], [[1, 0.3, 0.3, 0.5, 0.5]]]), r"within 0..1, but the model's reach 50"),
    (np.array([[1, 30, 30, 50]]), r"not \(N, M, 5\) rows"),
])
def test_box_labels_the_model_cannot_match_are_refused(labels, message):
    with pytest.raises(ValueError, match=message):
        task_metric("box_f1").check_labels(labels, _box_outputs())


def test_box_labels_in_pixels_with_padding_are_taken():
    labels = np.array([[[1, 30, 30, 50, 50], [PAD] * 5], [[0, 1, 1, 9, 9], [2, 5, 5, 20, 20]]], np.float32)
    task_metric("box_f1").check_labels(labels, _box_outputs())
    assert task_metric("box_f1").score(_box_outputs(), labels) > 0
