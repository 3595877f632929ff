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
