"""The pieces together on a tiny corpus: tokenizer on the train split, blocks, a teacher trained a little, its
top-k cache, and a student that learns from the cache. Minutes of CPU would be needed for good models; here
only that distillation moves the student towards the teacher is checked."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

from edgekd.lang.lm_tokenizer import LMTokenizer, blocks, train_on_corpus  # noqa: E402
from edgekd.lm.corpus import folder_corpus  # noqa: E402
from edgekd.lm.losses import TopKTargets, distill_loss, forward_kl, lm_cross_entropy  # noqa: E402
from edgekd.lm.models import LMShape, build_lm, gpt2_config, student_config  # noqa: E402
from edgekd.lm.teacher import cached_targets  # noqa: E402


def _train(model, steps, loss_fn):
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for step in range(steps):
        optimizer.zero_grad()
        loss_fn(model, step).backward()
        optimizer.step()
    model.eval()


def test_a_student_learns_the_teacher_from_its_top_k_cache(text_folder, tmp_path):
    corpus = folder_corpus(text_folder)
    tokenizer = LMTokenizer(train_on_corpus(corpus, 320, tmp_path / "tokenizer.json"))
    train = torch.from_numpy(blocks(tokenizer.encode_documents(corpus.texts("train")), 32)[:16].astype(np.int64))
    config = gpt2_config(tokenizer.vocab_size, LMShape(2, 64, 2, 32), tokenizer.eos_id)
    teacher = build_lm(config, seed=0)
    _train(teacher, 30, lambda model, step: lm_cross_entropy(model(input_ids=train).logits, train))
    entry = cached_targets(teacher, train.numpy().astype(np.int32), tmp_path / "cache", k=16, temperature=2.0)
    values, indices, lse = (torch.from_numpy(a) for a in entry.batch(np.arange(len(train))))
    targets = TopKTargets(values, indices, lse)

    student = build_lm(student_config(config, layers=1, width=32), seed=1)
    with torch.no_grad():
        before = float(forward_kl(student(input_ids=train).logits, targets, 2.0))
    _train(student, 30, lambda model, step: distill_loss(model(input_ids=train).logits, train, targets, 2.0, alpha=0.9)[0])
    with torch.no_grad():
        logits = student(input_ids=train).logits
        teacher_top = teacher(input_ids=train).logits.argmax(-1)
    assert float(forward_kl(logits, targets, 2.0)) < 0.5 * before
    assert float((logits.argmax(-1) == teacher_top).float().mean()) > 0.3  # chance is 1 / 320
