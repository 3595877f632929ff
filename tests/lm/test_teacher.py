from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

from edgekd.lm.losses import TopKTargets, forward_kl  # noqa: E402
from edgekd.lm.models import LMShape, build_lm, gpt2_config  # noqa: E402
from edgekd.lm.teacher import cached_targets  # noqa: E402


def test_the_cache_holds_the_teachers_top_k_and_is_reused(tmp_path):
    teacher = build_lm(gpt2_config(120, LMShape(2, 32, 2, 16), eos_id=0), seed=0)
    blocks = np.random.default_rng(0).integers(0, 120, size=(5, 16)).astype(np.int32)
    entry = cached_targets(teacher, blocks, tmp_path, k=8, temperature=2.0, batch_size=2)
    with torch.no_grad():
        logits = teacher(input_ids=torch.from_numpy(blocks.astype(np.int64))).logits
    values, indices = logits.topk(8, dim=-1)
    assert np.array_equal(entry.indices, indices.numpy())
    assert np.allclose(entry.values, values.numpy(), atol=1e-2)  # float16
    assert np.allclose(entry.logsumexp, torch.logsumexp(logits / 2.0, -1).numpy(), atol=1e-5)
    again = cached_targets(teacher, blocks, tmp_path, k=8, temperature=2.0)
    assert again.folder == entry.folder and len(list(tmp_path.iterdir())) == 1
    # the cached targets give the teacher itself (almost) zero loss: float16 values cost a little
    v, i, s = (torch.from_numpy(a) for a in entry.batch(np.arange(5)))
    assert float(forward_kl(logits, TopKTargets(v, i, s), 2.0)) < 1e-3


def _teacher_and_prompts(eos_in_prompt=True):
    teacher = build_lm(gpt2_config(120, LMShape(2, 32, 2, 24), eos_id=0), seed=0)
    prompts = np.random.default_rng(1).integers(1, 120, size=(5, 6)).astype(np.int32)
    if eos_in_prompt:
        prompts[2, 3] = 0  # a document boundary inside a prompt: must not be masked as padding
        prompts[3, 0] = 0  # ... or at its start (transformers then warns about padding: harmless, all positions attend)
    return teacher, prompts


def test_the_cached_sequences_are_the_teachers_greedy_continuations_and_are_reused(tmp_path, monkeypatch):
    from edgekd.lm import teacher as teacher_module
    from edgekd.lm.models import torch_greedy
    from edgekd.lm.sequences import Decoding

    teacher, prompts = _teacher_and_prompts()
    entry = teacher_module.cached_sequences(teacher, prompts, tmp_path, Decoding(new_tokens=10, batch_size=2))
    assert entry.tokens.shape == (5, 16) and entry.prompt_tokens == 6
    assert np.array_equal(entry.tokens[:, :6], prompts)
    for row, prompt in zip(entry.tokens, prompts):
        assert row[6:].tolist() == torch_greedy(teacher, prompt, 10)

    calls = []
    monkeypatch.setattr(teacher_module, "teacher_continuations", lambda *args: calls.append(args))
    again = teacher_module.cached_sequences(teacher, prompts, tmp_path, Decoding(new_tokens=10, batch_size=2))
    assert not calls and again.folder == entry.folder and len(list(tmp_path.iterdir())) == 1
    assert np.array_equal(again.tokens, entry.tokens)


def test_generation_runs_past_end_of_text(tmp_path):
    """A teacher that always predicts end-of-text (id 0): generate would stop after one token if it took 0 as a stop."""
    from edgekd.lm.sequences import Decoding
    from edgekd.lm.teacher import teacher_continuations

    teacher, prompts = _teacher_and_prompts()
    teacher.config.tie_word_embeddings = False
    teacher.lm_head.weight = torch.nn.Parameter(torch.zeros_like(teacher.lm_head.weight))  # all logits 0: argmax is id 0
    out = teacher_continuations(teacher, torch.from_numpy(prompts.astype(np.int64)), Decoding(new_tokens=7))
    assert out.shape == (5, 13) and (out[:, 6:] == 0).all()


def test_an_interrupted_fill_is_redone(tmp_path):
    from edgekd.lm.sequences import Decoding, SequenceCache, sequence_key
    from edgekd.lm.teacher import cached_sequences
    from edgekd.train.distill.cache import weights_digest

    teacher, prompts = _teacher_and_prompts()
    decoding = Decoding(new_tokens=4, batch_size=2)
    key = sequence_key(weights_digest(teacher), prompts, decoding)
    partial = SequenceCache(tmp_path).create(key, 5, 6, 4)
    partial.write(0, np.full((2, 10), 7, dtype=np.int32))  # stopped after one batch, never finished
    entry = cached_sequences(teacher, prompts, tmp_path, decoding)
    assert entry.complete and entry.folder.name == key and not (entry.tokens == 7).all(axis=1).any()
    assert np.array_equal(entry.tokens[:, :6], prompts)


def test_sampled_sequences_are_seeded_and_drawn_from_the_teachers_top_k(tmp_path):
    from edgekd.lm.sequences import Decoding
    from edgekd.lm.teacher import cached_sequences

    teacher, prompts = _teacher_and_prompts()
    sampled = Decoding(new_tokens=8, top_k=3, temperature=1.5, seed=4, batch_size=5)
    before = torch.random.get_rng_state()
    entry = cached_sequences(teacher, prompts, tmp_path / "a", sampled)
    assert torch.equal(before, torch.random.get_rng_state())  # the caller's random state is left alone
    assert np.array_equal(entry.tokens, cached_sequences(teacher, prompts, tmp_path / "b", sampled).tokens)  # seeded
    other = cached_sequences(teacher, prompts, tmp_path / "c", Decoding(new_tokens=8, top_k=3, temperature=1.5, seed=5, batch_size=5))
    assert not np.array_equal(entry.tokens, other.tokens)
    with torch.no_grad():
        logits = teacher(input_ids=torch.from_numpy(entry.tokens.astype(np.int64))).logits
    allowed = logits[:, 5:-1].topk(3, dim=-1).indices  # position t's top 3 for token t + 1, over the continuation
    drawn = torch.from_numpy(entry.tokens[:, 6:].astype(np.int64)).unsqueeze(-1)
    assert (allowed == drawn).any(-1).all()
    greedy = np.array([row[6:] for row in cached_sequences(teacher, prompts, tmp_path / "g", Decoding(new_tokens=8)).tokens])
    assert not np.array_equal(entry.tokens[:, 6:], greedy)  # sampling at T 1.5 departs from the greedy path
