"""The text training loops on a tiny BERT: length-bucketed batches, outputs in input order, the best epoch kept,
and KD on cached teacher outputs."""
from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")

from edgekd.text import models, training  # noqa: E402

VOCAB, LABELS, LENGTH = 40, 2, 12


def _data(count: int, seed: int) -> training.Encoded:
    """Label 1 when token 7 appears: learnable in a few steps. Right-padded texts of 3..LENGTH tokens."""
    rng = np.random.default_rng(seed)
    ids, mask = np.zeros((count, LENGTH), np.int64), np.zeros((count, LENGTH), np.int64)
    labels = rng.integers(0, LABELS, count)
    for row in range(count):
        length = int(rng.integers(3, LENGTH + 1))
        ids[row, :length] = rng.integers(8, VOCAB, length)
        if labels[row]:
            ids[row, rng.integers(1, length)] = 7
        mask[row, :length] = 1
    return training.Encoded(ids, mask, labels.astype(np.int64))


def _model(seed: int = 0):
    torch.manual_seed(seed)
    return models.classifier(models.config(VOCAB, LABELS, models.Size(16, 2, 2, 32), max_length=LENGTH, dropout=0.0))


def test_batches_cover_every_row_once_with_similar_lengths():
    lengths = np.random.default_rng(0).integers(1, 100, 1000)
    batches = training.batches(lengths, 10, np.random.default_rng(1))
    assert sorted(np.concatenate(batches).tolist()) == list(range(1000))
    spread = np.mean([np.ptp(lengths[b]) for b in batches])
    assert spread < 10, spread  # sorted within windows: far below the ~80 of random batches


def test_outputs_come_back_in_input_order_whatever_the_length_sorting():
    model, data = _model().eval(), _data(50, 0)
    together = training.outputs(model, data, batch_size=7, hidden=True)
    one = training.outputs(model, data.take(np.array([13])), hidden=True)
    np.testing.assert_allclose(together["logits"][13], one["logits"][0], atol=1e-5)
    assert together["cls"].shape == (50, 16)


def test_fit_learns_and_keeps_the_best_validation_epoch():
    model, train, val = _model(), _data(256, 1), _data(128, 2)
    fitted = training.fit(model, train, val, training.Recipe(epochs=4, batch_size=16, lr=5e-3), log=lambda m: None)
    assert fitted["val_top1"] == max(h["val_top1"] for h in fitted["history"]) > 0.9
    assert training.top1(model, val) == pytest.approx(fitted["val_top1"])  # the kept weights are the best epoch's


def test_kd_trains_on_the_teachers_cached_outputs_with_a_narrower_student():
    teacher, train, val = _model(), _data(256, 1), _data(128, 2)
    training.fit(teacher, train, val, training.Recipe(epochs=3, batch_size=16, lr=5e-3), log=lambda m: None)
    cached = training.outputs(teacher, train, hidden=True)
    torch.manual_seed(0)
    student, projection = models.narrow_student(teacher.config, models.Size(12, 1, 2, 24))
    fitted = training.fit(student, train, val, training.Recipe(epochs=5, batch_size=16, lr=1e-2), kd=training.KD(),
                          teacher=cached, projection=projection, log=lambda m: None)
    assert fitted["val_top1"] > 0.8
    with pytest.raises(Exception, match="cached outputs"):
        training.fit(student, train, val, training.Recipe(epochs=1), kd=training.KD(), log=lambda m: None)
