"""The teachers stage judges each member of an image ensemble, as the table pipeline does."""
from __future__ import annotations

import warnings
from types import SimpleNamespace

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgekd.data.datasets import Split  # noqa: E402
from edgekd.pipeline.stages.teachers import _say_weak_members  # noqa: E402
from edgekd.pipeline.task import Classification  # noqa: E402


class _Answers(torch.nn.Module):
    """Reads the label written in each image's first pixel and answers it shifted by `shift` (0: always right)."""

    def __init__(self, shift: int, classes: int = 8):
        super().__init__()
        self.shift, self.classes = shift, classes
        self.unused = torch.nn.Parameter(torch.zeros(1))  # predict_logits places the input on the weights' device

    def forward(self, x):
        label = (x[:, 0, 0, 0].round().long() + self.shift) % self.classes
        return torch.nn.functional.one_hot(label, self.classes).float() * 10


def _ctx(teachers: int = 2):
    y = np.arange(400) % 8
    x = np.zeros((400, 1, 4, 4), np.float32)
    x[:, 0, 0, 0] = y
    cfg = SimpleNamespace(teachers=[SimpleNamespace(weight=1.0)] * teachers, distill=SimpleNamespace(ensemble="prob_mean"))
    return SimpleNamespace(dataset=SimpleNamespace(val=Split(x, y)), task=Classification(), cfg=cfg)


def test_an_image_teacher_below_chance_is_named(capsys):
    """Trial defect (session 13): an image teacher far below chance (7.5% top-1 with 8 classes, chance 12.5%) was
    averaged into the ensemble with no word; tables named such a member."""
    report = [({"name": "teacher-0"}, _Answers(0)), ({"name": "teacher-1"}, _Answers(1))]
    with pytest.warns(UserWarning, match=r"^teachers\[1\] teacher-1: top-1 0.0% on 400 validation images, not clearly above "
                                         r"chance .*; it pulls the ensemble down: remove it, or lower its weight"):
        _say_weak_members(_ctx(), report)
    assert "[teachers] validation top-1: teachers[0] teacher-0 100.0%, teachers[1] teacher-1 0.0%" in capsys.readouterr().err
    assert report[1][0]["val_top1"] == 0.0  # recorded beside the test top-1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _say_weak_members(_ctx(), [({"name": "teacher-0"}, _Answers(0)), ({"name": "teacher-1"}, _Answers(0))])
        _say_weak_members(_ctx(1), [({"name": "teacher-0"}, _Answers(1))])  # no ensemble: the bench stage says it
