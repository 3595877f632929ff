"""Task metrics and tensor fidelity on hand-made arrays whose answers are known."""
import math

import numpy as np
import pytest

from edgekd.core.metrics import MAX_SQNR_DB, accuracy_metrics, fidelity, tensor_fidelity, worst_fidelity
from edgekd.core.task_metrics import METRICS, PAD, ctc_greedy_decode, decode_boxes, nms, task_metric


def test_tensor_fidelity_known_values():
    reference = np.array([[3.0, 4.0], [1.0, 0.0]])
    output = np.array([[3.0, 4.0], [0.0, 1.0]])  # sample 0 identical, sample 1 orthogonal
    numbers = tensor_fidelity(output, reference)
    assert numbers["cosine"] == pytest.approx(0.5)
    # signal 9 + 16 + 1 = 26, noise 1 + 1 = 2
    assert numbers["sqnr_db"] == pytest.approx(10 * math.log10(26 / 2))
    assert numbers["max_abs_error"] == 1.0
    assert numbers["mean_abs_error"] == pytest.approx(0.5)


def test_tensor_fidelity_identical_and_zero():
    x = np.zeros((2, 1, 3, 3), np.float32)
    numbers = tensor_fidelity(x, x)
    assert numbers == {"cosine": 1.0, "sqnr_db": MAX_SQNR_DB, "max_abs_error": 0.0, "mean_abs_error": 0.0}
    with pytest.raises(ValueError, match="shape"):
        tensor_fidelity(x, np.zeros((2, 3)))


def test_blank_samples_agree_and_a_blank_against_a_map_does_not():
    """Trial defect (session 14): PP-OCRv4 det on an empty page gave a map exactly 0 on onnxruntime and 2e-9 on
    OpenVINO, whose cosine was 0, so one blank page of ten took the mean cosine of a model within 1e-6 of its
    reference to 0.9 and `gate --min-cosine 0.95` failed it. Samples blank on both sides (norms at most 1e-6 x the
    batch's largest) now agree; a blank sample against a real map still disagrees."""
    reference = np.random.default_rng(0).random((10, 1, 16, 16))
    output = reference + 1e-6
    reference[9], output[9] = 0.0, 2e-9
    assert tensor_fidelity(output, reference)["cosine"] == pytest.approx(1.0)
    output[9] = np.random.default_rng(1).random((1, 16, 16))  # a map where the reference's page is blank
    assert tensor_fidelity(output, reference)["cosine"] == pytest.approx(0.9)


def test_sqnr_of_scaled_noise():
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(8, 100))
    noise = rng.normal(size=(8, 100))
    noise *= np.linalg.norm(reference) / np.linalg.norm(noise) / 10  # noise energy 1/100 of the signal's: 20 dB
    assert tensor_fidelity(reference + noise, reference)["sqnr_db"] == pytest.approx(20.0)


def test_fidelity_keeps_top1_agreement_for_logits_only():
    logits = np.array([[1.0, 2.0], [2.0, 1.0]])
    assert fidelity(logits, np.array([[0.0, 1.0], [0.0, 1.0]]))["top1_agreement"] == 0.5
    assert "top1_agreement" not in fidelity(np.ones((2, 1, 2, 2)), np.ones((2, 1, 2, 2)))


def test_worst_fidelity():
    worst = worst_fidelity({"a": {"cosine": 0.9, "sqnr_db": 30, "max_abs_error": 0.1, "mean_abs_error": 0.01},
                            "b": {"cosine": 0.99, "sqnr_db": 20, "max_abs_error": 0.5, "mean_abs_error": 0.001}})
    assert worst == {"cosine": 0.9, "sqnr_db": 20, "max_abs_error": 0.5, "mean_abs_error": 0.01}


def test_top1():
    metric = task_metric("top1")
    logits = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    assert metric.score(logits, np.array([1, 0, 0])) == pytest.approx(2 / 3)
    assert metric.score(logits, metric.labels_of(logits)) == 1.0


def test_nonfinite_outputs_never_score_as_right():
    """Trial defect (session 14): a model giving all-NaN rows for some inputs passed quietly: argmax of an all-NaN row
    is 0, so each NaN row labelled 0 counted as right (top-1 87.5 instead of 86.25), its agreement with an fp32 model
    that gave NaN there too was 1, and cosine was NaN (n/a) with no word. A non-finite row is now wrong everywhere, and
    fidelity counts such rows (nonfinite_rows) and leaves them out of cosine and SQNR."""
    nan = np.full(3, np.nan)
    logits = np.array([[5.0, 1.0, 0.0], nan, [0.0, 1.0, 5.0], [0.0, np.inf, 1.0]])
    labels = np.array([0, 0, 2, 1])
    assert accuracy_metrics(logits, labels)["top1"] == 0.5
    metric = task_metric("top1")
    assert metric.score(logits, labels) == 0.5
    assert metric.score(logits, metric.labels_of(logits)) == 0.5  # fidelity to itself: NaN rows agree with nothing
    assert fidelity(logits, logits)["top1_agreement"] == 0.5
    numbers = tensor_fidelity(logits, logits)
    assert numbers["cosine"] == pytest.approx(1.0) and numbers["sqnr_db"] == MAX_SQNR_DB and numbers["nonfinite_rows"] == 2
    finite = np.nan_to_num(logits, nan=1.0, posinf=1.0)  # an int8 model finite where fp32 gave NaN: they disagree there
    numbers = tensor_fidelity(finite, logits)
    assert numbers["cosine"] == pytest.approx(0.5) and "nonfinite_rows" not in numbers and math.isfinite(numbers["max_abs_error"])
    assert worst_fidelity({"a": tensor_fidelity(logits, logits), "b": numbers})["nonfinite_rows"] == 2


def test_nonfinite_rows_are_warned_in_the_report():
    """Trial defect (session 14): the report said nothing of the NaN rows; now one warning per artifact counts them."""
    from edgekd.device.report.table import nonfinite_warnings

    rows = [{"artifact": "x86-cpu/fp32", "nonfinite_rows": 11}, {"artifact": "x86-cpu/int8"}]
    assert nonfinite_warnings(rows, 80) == [
        "x86-cpu/fp32: 11 of 80 evaluation samples gave non-finite outputs (NaN or inf): they count as wrong and are left "
        "out of cosine and SQNR; check the model on those inputs (a log or sqrt of a negative, a division by zero, an "
        "overflow)"]


def test_top1_refuses_outputs_that_are_not_classes():
    """Trial defect (session 14): top1 of a (t, n, classes) output took argmax over axis 1, a sequence axis."""
    metric, sequence = task_metric("top1"), np.zeros((4, 3, 5))
    for call in (lambda: metric.labels_of(sequence), lambda: metric.score(sequence, np.zeros(4, int))):
        with pytest.raises(ValueError, match=r"top1 scores \(N, classes\) outputs, not shape \(4, 3, 5\)"):
            call()


def _steps(classes, sequence):
    """(T, C) one-hot step scores of a class sequence."""
    return np.eye(classes)[sequence]


def test_ctc_greedy_decode_merges_repeats_and_drops_blanks():
    outputs = np.stack([_steps(5, [1, 1, 0, 1, 2, 2, 0]), _steps(5, [0, 0, 0, 0, 0, 0, 0]), _steps(5, [3, 0, 3, 3, 4, 0, 0])])
    assert ctc_greedy_decode(outputs) == [(1, 1, 2), (), (3, 3, 4)]


def test_ctc_accuracy_against_labels_and_fp32():
    metric = task_metric("ctc_accuracy")
    outputs = np.stack([_steps(5, [1, 1, 0, 1, 2]), _steps(5, [3, 3, 3, 0, 0])])
    labels = np.array([[1, 1, 2], [3, 4, PAD]])  # second string is wrong: the model read (3,)
    assert metric.score(outputs, labels) == 0.5
    as_labels = metric.labels_of(outputs)
    assert as_labels.tolist() == [[1, 1, 2], [3, PAD, PAD]]
    assert metric.score(outputs, as_labels) == 1.0
    other = np.stack([_steps(5, [1, 0, 0, 0, 2]), _steps(5, [3, 3, 3, 0, 0])])  # reads (1, 2): one of two differs
    assert metric.score(other, as_labels) == 0.5


def test_mask_iou():
    metric = task_metric("mask_iou")
    prob = np.zeros((2, 1, 4, 4), np.float32)
    prob[0, 0, :2, :2] = 0.9      # 4 pixels predicted
    prob[0, 0, 3, 3] = 0.29       # below the 0.3 threshold: not predicted
    truth = np.zeros((2, 4, 4), np.uint8)
    truth[0, :2, :1] = 1          # 2 pixels, both inside the prediction: IoU 2/4
    # sample 1: nothing predicted, nothing true: IoU 1
    assert metric.score(prob, truth) == pytest.approx((0.5 + 1.0) / 2)
    assert metric.score(prob, metric.labels_of(prob)) == 1.0
    with pytest.raises(ValueError, match="shape"):
        metric.score(prob, np.zeros((2, 3, 3)))


def test_nms_keeps_the_best_of_overlapping_boxes():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]], float)
    assert nms(boxes, np.array([0.8, 0.9, 0.5])) == [1, 2]


def _yolo(boxes_and_scores, classes=2, slots=4):
    """(1, 4 + classes, slots) output from [(cx, cy, w, h, class, score)], other slots empty."""
    out = np.zeros((1, 4 + classes, slots), np.float32)
    for i, (cx, cy, w, h, c, s) in enumerate(boxes_and_scores):
        out[0, :4, i] = cx, cy, w, h
        out[0, 4 + c, i] = s
    return out


def test_decode_boxes():
    out = _yolo([(5, 5, 10, 10, 0, 0.9), (5, 5, 10, 10, 0, 0.8), (5, 5, 10, 10, 1, 0.7), (50, 50, 2, 2, 0, 0.1)])
    rows = decode_boxes(out)[0]
    # the 0.8 duplicate is suppressed, the class-1 box is kept (NMS is per class), the 0.1 one is below confidence
    assert rows[:, 0].tolist() == [0, 1]
    assert rows[0, 1:5].tolist() == [0, 0, 10, 10]


def test_box_f1():
    metric = task_metric("box_f1")
    out = _yolo([(5, 5, 10, 10, 0, 0.9), (30, 30, 10, 10, 1, 0.8), (60, 60, 10, 10, 0, 0.7)])
    labels = np.full((1, 3, 5), PAD, np.float32)
    labels[0, 0] = [0, 0, 0, 10, 10]      # found (IoU 1)
    labels[0, 1] = [0, 25, 25, 35, 35]    # the box there is class 1: not found
    # 3 predicted, 2 true, 1 match: F1 = 2 * 1 / (3 + 2)
    assert metric.score(out, labels) == pytest.approx(0.4)
    assert metric.score(out, metric.labels_of(out)) == 1.0
    shifted = labels.copy()
    shifted[0, 0] = [0, 6, 0, 16, 10]     # IoU 4/16 with the prediction: below 0.5
    assert metric.score(out, shifted) == 0.0
    empty = np.zeros((1, 6, 4), np.float32)
    assert metric.score(empty, np.full((1, 1, 5), PAD, np.float32)) == 1.0


def test_speech_f1():
    metric = task_metric("speech_f1")
    probability = np.array([[0.9], [0.6], [0.2], [0.5], [0.8]])  # called speech: frames 0, 1, 4 (0.5 is not above)
    labels = np.array([1, 0, 0, 1, 1])                           # speech: 0, 3, 4 -> 2 found of 3 called, 3 true
    assert metric.score(probability, labels) == pytest.approx(2 * 2 / 6)
    assert metric.labels_of(probability).tolist() == [1, 1, 0, 0, 1]
    assert metric.score(np.zeros(4), np.zeros(4)) == 1.0
    with pytest.raises(ValueError, match="speech_f1: expected"):
        metric.score(np.zeros((4, 2)), np.zeros(4))


def test_registry_names_and_unknown():
    assert set(METRICS) == {"top1", "ctc_accuracy", "mask_iou", "box_f1", "speech_f1"}
    with pytest.raises(ValueError, match="unknown task metric 'iou'; known: top1"):
        task_metric("iou")


class _TwoOutputs:
    """A session whose second output holds the samples on axis 1, as a recurrent state [2, batch, H] does."""

    def run_outputs(self, batch):
        return {"score": batch[:, :1] * 2, "state": np.stack([batch, batch + 1])}

    def output_batch_axes(self):
        return {"score": 0, "state": 1}


class _BatchRecorder:
    """A session that records how many rows each call received."""

    def __init__(self):
        self.rows = []

    def run_outputs(self, batch):
        self.rows.append(len(batch))
        return {"out": batch.reshape(len(batch), -1)[:, :2]}


def test_predict_outputs_bounds_input_bytes_per_call():
    """A detector's pages at 3x960x960 (11 MB each): 256 of them per call made the fidelity pass hold gigabytes of
    activations; calls take at most BATCH_BYTES of input, as predict's do."""
    from edgekd.core.metrics import BATCH_BYTES, predict_outputs, sample_bytes

    x = np.zeros((6, 3, 960, 960), np.float32)
    session = _BatchRecorder()
    assert predict_outputs(session, x)["out"].shape == (6, 2)
    assert sum(session.rows) == 6 and max(session.rows) * sample_bytes(x) <= BATCH_BYTES


def test_predict_outputs_joins_each_output_on_its_batch_axis():
    from edgekd.core.metrics import batch_axes_of, outputs_fidelity, predict_outputs

    x = np.arange(12, dtype=np.float32).reshape(6, 2)
    outputs = predict_outputs(_TwoOutputs(), x, batch_size=4)  # two batches: 4 and 2 samples
    assert outputs["score"].shape == (6, 1) and outputs["state"].shape == (2, 6, 2)
    assert np.array_equal(outputs["state"][1], x + 1)
    assert batch_axes_of(outputs, 6) == {"score": 0, "state": 1}
    drifted = {"score": outputs["score"], "state": outputs["state"] + np.float32(0.5)}
    numbers = outputs_fidelity(drifted, outputs, {"score": 0, "state": 1})
    assert numbers["outputs"]["score"]["sqnr_db"] == MAX_SQNR_DB
    assert numbers["outputs"]["state"]["max_abs_error"] == 0.5
    assert numbers["sqnr_db"] == numbers["outputs"]["state"]["sqnr_db"] < 40  # the worst output's, at the top
    with pytest.raises(ValueError, match="outputs state of the reference model are missing"):
        outputs_fidelity({"score": outputs["score"]}, outputs)


def test_outputs_with_nothing_finite_to_compare_show_no_agreement():
    """Review (session 14): an output of NaN everywhere read cosine 1.0 and SQNR 300 dB with one value per sample (the
    non-finite samples were dropped, leaving an empty vector taken as blank), and 300 dB for any shape, so min_cosine
    and min_sqnr_db passed a model that computes nothing. Nothing finite to compare is now cosine 0 and 0 dB, and a
    sample non-finite on one side counts as disagreeing with one value per sample too."""
    import numpy as np

    from edgekd.core.metrics import tensor_fidelity

    nan = np.nan
    for output, reference in ((np.full((3, 1), nan), np.array([[1.0], [2.0], [3.0]])), (np.full((3, 4), nan), np.ones((3, 4)))):
        numbers = tensor_fidelity(output, reference)
        assert numbers["cosine"] == 0.0 and numbers["sqnr_db"] == 0.0 and numbers["nonfinite_rows"] == 3
    one_broken = tensor_fidelity(np.array([[1.0], [nan], [3.0]]), np.array([[1.0], [2.0], [3.0]]))
    assert one_broken["cosine"] == pytest.approx(2 / 3) and one_broken["nonfinite_rows"] == 1
    assert tensor_fidelity(np.ones((3, 4)), np.ones((3, 4)))["cosine"] == pytest.approx(1.0)  # as before
