"""What each distill step trains on (edgekd/lm/distill_steps.py), with a tiny random teacher."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

from edgekd.lm.config import LMDistillConfig, LMSequenceConfig, LMTrainConfig  # noqa: E402
from edgekd.lm.distill_steps import DistillSteps  # noqa: E402
from edgekd.lm.losses import continuation_cross_entropy, lm_cross_entropy  # noqa: E402
from edgekd.lm.models import LMShape, build_lm, gpt2_config  # noqa: E402


def _setup(mode, steps=6, share=0.5):
    teacher = build_lm(gpt2_config(90, LMShape(1, 16, 1, 16), eos_id=0), seed=0)
    train = np.random.default_rng(0).integers(0, 90, size=(20, 16)).astype(np.int32)
    settings = LMDistillConfig(mode=mode, top_k=4, train=LMTrainConfig(steps=steps, batch_size=3),
                               sequence=LMSequenceConfig(prompts=5, prompt_tokens=4, new_tokens=6, batch_size=2, share=share))
    return teacher, train, settings


def test_mode_token_reads_the_blocks_it_read_before_modes_existed(tmp_path):
    teacher, train, settings = _setup("token")
    steps = DistillSteps.prepare(settings, teacher, train, tmp_path, seed=0)
    seen = train[np.resize(np.random.default_rng(1).permutation(20), 6 * 3)]  # the stage's order before this change
    assert np.array_equal(np.concatenate([steps.batch(s).numpy() for s in range(6)]), seen)
    assert steps.sequences is None and not (tmp_path / "sequences").exists()
    assert steps.metrics()["steps"] == {"token": 6, "sequence": 0}


def test_mode_both_interleaves_token_and_sequence_steps(tmp_path):
    teacher, train, settings = _setup("both")
    steps = DistillSteps.prepare(settings, teacher, train, tmp_path, seed=0)
    assert steps.on_sequences.tolist() == [False, True] * 3
    logits_for = lambda ids: torch.randn(ids.shape[0], ids.shape[1], 90, generator=torch.Generator().manual_seed(0))  # noqa: E731
    token_ids, sequence_ids = steps.batch(0), steps.batch(1)
    assert token_ids.shape == (3, 16) and sequence_ids.shape == (3, 10)
    rows = {tuple(row) for row in steps.sequences.tokens}
    assert all(tuple(row) in rows for row in sequence_ids.numpy())  # teacher continuations, from the cache
    logits = logits_for(sequence_ids)
    assert torch.allclose(steps.loss(logits, sequence_ids, 1), continuation_cross_entropy(logits, sequence_ids, 4))
    logits = logits_for(token_ids)
    assert not torch.allclose(steps.loss(logits, token_ids, 0), lm_cross_entropy(logits, token_ids))  # KD, not plain CE
    # the three token steps read the first three token batches; the sequence steps walk a shuffled order
    assert np.array_equal(steps.batch(2).numpy(), steps.blocks[3:6]) and len(steps.topk.values) == 9
    assert steps.metrics()["steps"] == {"token": 3, "sequence": 3} and steps.metrics()["sequence_cache"]["decoding"] == "greedy"


def test_mode_sequence_needs_no_top_k_cache(tmp_path):
    teacher, train, settings = _setup("sequence", steps=4)
    steps = DistillSteps.prepare(settings, teacher, train, tmp_path, seed=0)
    assert steps.topk is None and len(steps.blocks) == 0 and steps.on_sequences.all()
    used = np.concatenate([steps.batch(s).numpy() for s in range(4)])
    assert len({tuple(row) for row in used}) == 5  # 12 rows drawn from 5 continuations: every one of them is used
