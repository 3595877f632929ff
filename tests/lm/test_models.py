from __future__ import annotations

import json

import pytest

from edgekd.core.errors import ConfigError, ModelError

pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

from edgekd.lm.models import (  # noqa: E402
    LMShape,
    build_lm,
    gpt2_config,
    load_given_teacher,
    load_pretrained,
    parameter_count,
    save_pretrained,
    student_config,
    torch_greedy,
)

TEACHER = LMShape(layers=4, width=64, heads=4, context=32)


def test_teacher_and_student_are_built_from_a_configuration():
    config = gpt2_config(300, TEACHER, eos_id=0)
    teacher = build_lm(config)
    student = build_lm(student_config(config, layers=2, width=32))
    assert student.config.n_head == 2  # the teacher's head size (16) is kept
    assert student.config.vocab_size == 300 and student.config.n_positions == 32
    assert parameter_count(student) < parameter_count(teacher) / 2
    logits = student(input_ids=torch.zeros(1, 5, dtype=torch.long)).logits
    assert logits.shape == (1, 5, 300)
    # tied embeddings are counted once
    assert parameter_count(teacher) == sum(p.numel() for p in teacher.parameters())


def test_the_same_seed_builds_the_same_model():
    config = gpt2_config(300, TEACHER, eos_id=0)
    a, b = build_lm(config, seed=3), build_lm(config, seed=3)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


@pytest.mark.parametrize("layers, width, message", [(5, 32, "not smaller"), (2, 128, "not smaller"), (2, 30, "multiple of heads")])
def test_bad_students_are_refused(layers, width, message):
    config = gpt2_config(300, TEACHER, eos_id=0)
    with pytest.raises(ConfigError, match=message):
        student_config(config, layers=layers, width=width, heads=4 if width == 30 else None)


def test_a_local_save_pretrained_folder_loads(tmp_path):
    model = build_lm(gpt2_config(300, TEACHER, eos_id=0), seed=1)
    model.save_pretrained(tmp_path / "mine")
    loaded = load_pretrained(tmp_path / "mine")
    ids = torch.arange(8).view(1, -1)
    with torch.no_grad():
        assert torch.allclose(loaded(input_ids=ids).logits, model(input_ids=ids).logits)
    assert torch_greedy(loaded, [1, 2, 3], 5) == torch_greedy(model, [1, 2, 3], 5)


def test_bad_local_folders_get_one_line(tmp_path):
    with pytest.raises(ModelError, match="no config.json"):
        load_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(ModelError, match="only GPT-2"):
        load_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    (tmp_path / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(ModelError, match="no .safetensors"):
        load_pretrained(tmp_path)


def test_torch_greedy_matches_a_full_recompute():
    """The cached loop against argmax over the whole sequence each step (no cache): same tokens."""
    model = build_lm(gpt2_config(300, TEACHER, eos_id=0), seed=2)
    ids = [5, 6, 7]
    expected = list(ids)
    with torch.no_grad():
        for _ in range(6):
            expected.append(int(model(input_ids=torch.tensor([expected])).logits[0, -1].argmax()))
    assert torch_greedy(model, ids, 6) == expected[3:]


def test_a_given_teacher_must_fit_the_tokenizer_and_the_context(tmp_path):
    files = save_pretrained(build_lm(gpt2_config(300, TEACHER, eos_id=0), seed=1), tmp_path / "teacher")
    assert any(f.suffix == ".safetensors" for f in files) and not (tmp_path / "teacher.partial").exists()
    assert load_given_teacher(tmp_path / "teacher", 300, 32).config.n_layer == 4
    with pytest.raises(ModelError, match="the model has 300 tokens and teacher.tokenizer 500; give the tokenizer"):
        load_given_teacher(tmp_path / "teacher", 500, 32)
    with pytest.raises(ModelError, match="context is 32 tokens, shorter than data.context 64; lower data.context"):
        load_given_teacher(tmp_path / "teacher", 300, 64)
