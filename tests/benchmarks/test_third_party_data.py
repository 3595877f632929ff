"""The third-party benchmark's data generators and tiny graphs: deterministic by seed, with ground truth that
is right by construction (checked on cases with known answers)."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from benchmarks.helpers import third_party_data as data
from benchmarks.helpers.tiny_graphs import GRAPHS
from edgekd.core.task_metrics import task_metric


def test_line_preprocessing_keeps_the_aspect_ratio_and_pads_right():
    white = np.full((10, 20, 3), 255, np.uint8)
    x = data.ocr_line_input(white, 48, 192)
    assert x.shape == (3, 48, 192)
    assert (x[:, :, :96] == 1.0).all() and (x[:, :, 96:] == 0.0).all()  # 48 / 10 * 20 = 96 wide, then zeros
    wide = data.ocr_line_input(np.zeros((10, 1000, 3), np.uint8), 48, 192)
    assert (wide == -1.0).all()  # cut to 192: nothing padded


def test_cls_lines_are_deterministic_and_half_turned():
    first, again, other = data.cls_dataset(40, 0), data.cls_dataset(40, 0), data.cls_dataset(40, 1)
    assert np.array_equal(first["x"], again["x"]) and np.array_equal(first["y"], again["y"])
    assert not np.array_equal(first["x"], other["x"])
    assert first["x"].shape == (40, 3, 48, 192) and set(first["y"].tolist()) == {0, 1}
    assert 0.25 < first["y"].mean() < 0.75


def test_a_rotated_line_is_the_upright_one_turned_180_degrees():
    upright = data.render_line("edge 42", np.random.default_rng(3))
    turned = data.render_line("edge 42", np.random.default_rng(3), rotate=True)
    assert turned.rotated and np.array_equal(turned.image, upright.image[::-1, ::-1])


def test_ctc_labels_of_rendered_strings():
    charset = list("abc ")
    assert data.encode_strings(["ab", "c a"], charset).tolist() == [[1, 2, -1], [3, 4, 1]]
    with pytest.raises(ValueError, match="not in the dictionary: 'z'"):
        data.encode_strings(["az"], charset)
    rec = data.rec_dataset(6, 0, list("0123456789"))
    assert rec["x"].shape == (6, 3, 48, 320) and rec["y"].min() == -1 and rec["y"].max() <= 10
    # a recognizer that reads each label exactly (one step per character, blanks between) scores 1 against them
    steps = np.zeros((6, 2 * rec["y"].shape[1], 11))
    for i, row in enumerate(rec["y"]):
        for j, c in enumerate(row):
            steps[i, 2 * j, c if c > 0 else 0] = 1
            steps[i, 2 * j + 1, 0] = 1
    assert task_metric("ctc_accuracy").score(steps, rec["y"]) == 1.0


def test_db_shrink_and_page_masks():
    # area 1000, perimeter 220: offset 1000 * 0.84 / 220 = 3.82 on every side
    assert data.shrink_box((0, 0, 100, 10)) == (4, 4, 96, 6)
    page = data.text_page(np.random.default_rng(0))
    mask = page.mask()
    assert page.boxes and len(page.boxes) == len(page.texts) and mask.any()
    inside = np.zeros_like(mask)
    for x1, y1, x2, y2 in page.boxes:
        inside[y1:y2, x1:x2] = 1
    assert not (mask & ~inside.astype(bool)).any()  # text marked only within the lines' boxes
    det = data.det_dataset(3, 0, (64, 128))
    assert det["x"].shape == (3, 3, 64, 128) and det["y"].shape == (3, 1, 64, 128)
    assert np.array_equal(det["y"], data.det_dataset(3, 0, (64, 128))["y"])


def _tone(text, speed=160, pitch=50):
    """A stand-in voice: 0.5 s of a tone, to check the clip assembly without espeak-ng."""
    return (0.5 * np.sin(np.arange(data.SAMPLE_RATE // 2) * 2 * np.pi * 220 / data.SAMPLE_RATE)).astype(np.float32)


def test_vad_frames_and_labels():
    made = data.vad_dataset(2, 0, speak_fn=_tone)
    assert made["input"].shape[1] == data.VAD_WINDOW and len(made["input"]) == len(made["y"])
    assert made["clip_starts"][0] == 0 and 0 < made["y"].mean() < 1
    speech_rms = np.sqrt((made["input"][made["y"] == 1] ** 2).mean())
    silence_rms = np.sqrt((made["input"][made["y"] == 0] ** 2).mean())
    assert speech_rms > 1.5 * silence_rms  # labelled speech is louder than the noise alone
    assert np.array_equal(made["input"], data.vad_dataset(2, 0, speak_fn=_tone)["input"])


@pytest.mark.skipif(not data.espeak_available(), reason="espeak-ng not installed (make espeak-ng)")
def test_espeak_speech_at_16_khz():
    voice = data.speak("edge model")
    assert voice.dtype == np.float32 and 0.3 * data.SAMPLE_RATE < len(voice) < 3 * data.SAMPLE_RATE
    assert 0.3 < np.abs(voice).max() <= 1.01 and data.frame_labels(voice).any()


def test_tiny_graphs_have_the_third_party_models_io(tmp_path):
    feeds = {"det": {"x": np.random.rand(2, 3, 32, 64).astype(np.float32)},
             "rec": {"x": np.random.rand(2, 3, 48, 64).astype(np.float32)},
             "cls": {"x": np.random.rand(2, 3, 48, 192).astype(np.float32)},
             "vad": {"input": np.random.rand(2, 512).astype(np.float32), "state": np.zeros((2, 2, 16), np.float32),
                     "sr": np.array(16000, np.int64)}}
    shapes = {"det": [(2, 1, 32, 64)], "rec": [(2, 16, 12)], "cls": [(2, 2)], "vad": [(2, 1), (2, 2, 16)]}
    for name, make in GRAPHS.items():
        outputs = ort.InferenceSession(str(make(tmp_path / f"{name}.onnx"))).run(None, feeds[name])
        assert [o.shape for o in outputs] == shapes[name], name
    probs = ort.InferenceSession(str(tmp_path / "rec.onnx")).run(None, feeds["rec"])[0]
    assert np.allclose(probs.sum(-1), 1, atol=1e-5)  # softmax per step, as CTC heads give
