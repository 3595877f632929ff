"""BERT teacher and the DistilBERT-recipe students, on tiny configurations (no download, ever)."""
from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers")

from edgekd.core.errors import ModelError  # noqa: E402
from edgekd.text import models  # noqa: E402

TINY = models.Size(hidden=32, layers=4, heads=2, intermediate=64)


@pytest.fixture(scope="module")
def teacher():
    torch.manual_seed(0)
    return models.classifier(models.config(vocab_size=50, num_labels=3, size=TINY, max_length=16)).eval()


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_half_depth_student_takes_every_other_teacher_layer(teacher):
    student, chosen = models.half_depth_student(teacher)
    assert chosen == [0, 2] and student.config.num_hidden_layers == 2
    for student_index, teacher_index in enumerate(chosen):
        assert _same(student.bert.encoder.layer[student_index], teacher.bert.encoder.layer[teacher_index])
    assert not _same(student.bert.encoder.layer[1], teacher.bert.encoder.layer[1])  # not simply the first two
    for part in ("bert.embeddings", "bert.pooler", "classifier"):
        assert _same(student.get_submodule(part), teacher.get_submodule(part)), part
    assert models.parameters(student) < models.parameters(teacher)


def test_student_is_a_copy_not_a_view_of_the_teacher(teacher):
    student, _ = models.half_depth_student(teacher)
    before = teacher.bert.encoder.layer[0].attention.self.query.weight.clone()
    with torch.no_grad():
        student.bert.encoder.layer[0].attention.self.query.weight.add_(1.0)
    assert torch.equal(teacher.bert.encoder.layer[0].attention.self.query.weight, before)


def test_chosen_layers_and_bad_choices(teacher):
    student, chosen = models.half_depth_student(teacher, layers=[1, 3])
    assert _same(student.bert.encoder.layer[1], teacher.bert.encoder.layer[3])
    with pytest.raises(ModelError, match=r"student layers \[0, 4\]: each must be a teacher layer in 0..3"):
        models.half_depth_student(teacher, layers=[0, 4])


def test_narrow_student_and_its_projection_reach_the_teacher_width(teacher):
    student, projection = models.narrow_student(teacher.config, models.Size(hidden=16, layers=2, heads=2, intermediate=32))
    ids, mask = torch.randint(1, 50, (2, 10)), torch.ones(2, 10, dtype=torch.long)
    logits, hidden = models.logits_and_hidden(student.eval(), ids, mask)
    assert logits.shape == (2, 3) and len(hidden) == 3 and hidden[-1].shape == (2, 10, 16)
    assert projection(hidden[-1]).shape == (2, 10, 32)
    assert isinstance(models.narrow_student(teacher.config, TINY)[1], torch.nn.Identity)
    with pytest.raises(ModelError, match="not a multiple of 3 attention heads"):
        models.narrow_student(teacher.config, models.Size(hidden=16, layers=2, heads=3, intermediate=32))


def test_aligned_layers_pair_the_same_relative_depth():
    assert models.aligned_layers(2, 4) == [(0, 0), (1, 2), (2, 4)]
    assert models.aligned_layers(3, 6)[-1] == (3, 6) and models.aligned_layers(4, 4) == [(k, k) for k in range(5)]


def test_half_depth_student_starts_close_to_the_teacher(teacher):
    """Its copied embeddings and classifier make its first hidden state the teacher's, exactly."""
    student, _ = models.half_depth_student(teacher)
    ids, mask = torch.randint(1, 50, (3, 12)), torch.ones(3, 12, dtype=torch.long)
    with torch.inference_mode():
        _, teacher_hidden = models.logits_and_hidden(teacher, ids, mask)
        _, student_hidden = models.logits_and_hidden(student.eval(), ids, mask)
    assert torch.equal(student_hidden[0], teacher_hidden[0]) and torch.allclose(student_hidden[1], teacher_hidden[1])
