"""The teacher-sequence cache of sequence-level KD (edgekd/lm/sequences.py): numpy only."""
from __future__ import annotations

import json

import numpy as np
import pytest

from edgekd.core.errors import ConfigError, DataError
from edgekd.lm.sequences import Decoding, SequenceCache, prompts_from_blocks, sequence_key


def _fill(cache, key, prompts=5, prompt_tokens=3, new_tokens=4, finish=True):
    rows = np.random.default_rng(0).integers(0, 100, size=(prompts, prompt_tokens + new_tokens)).astype(np.int32)
    entry = cache.create(key, prompts, prompt_tokens, new_tokens)
    entry.write(0, rows[:2])
    entry.write(2, rows[2:])
    if finish:
        entry.finish()
    return entry, rows


def test_round_trip_through_a_memmap(tmp_path):
    cache = SequenceCache(tmp_path)
    entry, rows = _fill(cache, "s1", finish=False)
    assert cache.open("s1") is None  # not finished: not trusted
    entry.finish()
    opened = cache.open("s1")
    assert isinstance(opened.tokens, np.memmap) and opened.tokens.dtype == np.int32
    assert np.array_equal(opened.tokens, rows) and opened.prompt_tokens == 3
    batch = opened.batch(np.array([4, 1]))
    assert batch.dtype == np.int64 and np.array_equal(batch, rows[[4, 1]])
    with pytest.raises(DataError, match="read-only"):
        opened.write(0, rows[:1])
    with pytest.raises(DataError, match="complete cache entry exists"):
        cache.create("s1", 5, 3, 4)
    assert np.array_equal(cache.open("s1").tokens, rows)  # untouched


def test_an_interrupted_or_damaged_fill_is_redone(tmp_path):
    cache = SequenceCache(tmp_path)
    _fill(cache, "s2", finish=False)  # a run stopped midway
    entry, rows = _fill(cache, "s2")  # the next one starts the entry again
    assert np.array_equal(cache.open("s2").tokens, rows)
    meta = json.loads((tmp_path / "s2" / "meta.json").read_text())
    (tmp_path / "s2" / "meta.json").write_text(json.dumps({**meta, "shape": [9, 9]}))
    assert cache.open("s2") is None
    (tmp_path / "s2" / "tokens.npy").write_bytes(b"not an array")
    (tmp_path / "s2" / "meta.json").write_text(json.dumps(meta))
    assert cache.open("s2") is None


def test_size_is_checked_before_anything_is_written(tmp_path):
    cache = SequenceCache(tmp_path, max_bytes=1000)
    with pytest.raises(ConfigError, match=r"distill.sequence: 100 prompts x 128 tokens .* over the 0 MiB budget"):
        cache.create("big", 100, 32, 96)
    assert not (tmp_path / "big").exists()


def test_the_key_follows_teacher_prompts_and_decoding():
    prompts = np.arange(12, dtype=np.int32).reshape(3, 4)
    greedy = Decoding(new_tokens=8)
    base = sequence_key("teacher", prompts, greedy)
    assert base == sequence_key("teacher", prompts.copy(), Decoding(new_tokens=8, temperature=0.5, seed=7))  # greedy ignores both
    changed = prompts.copy()
    changed[0, 0] = 99
    sampled = Decoding(new_tokens=8, top_k=5)
    others = {sequence_key("other", prompts, greedy), sequence_key("teacher", changed, greedy),
              sequence_key("teacher", prompts[:, :3], greedy), sequence_key("teacher", prompts, Decoding(new_tokens=9)),
              sequence_key("teacher", prompts, Decoding(new_tokens=8, batch_size=4)), sequence_key("teacher", prompts, sampled),
              sequence_key("teacher", prompts, Decoding(new_tokens=8, top_k=5, seed=1)),
              sequence_key("teacher", prompts, Decoding(new_tokens=8, top_k=5, temperature=0.7))}
    assert base not in others and len(others) == 8


def test_prompts_are_the_starts_of_distinct_blocks():
    blocks = np.arange(40, dtype=np.int32).reshape(10, 4) * 10
    prompts = prompts_from_blocks(blocks, 6, 3, seed=0)
    assert prompts.shape == (6, 3) and prompts.dtype == np.int32
    starts = {tuple(row) for row in blocks[:, :3]}
    assert all(tuple(row) in starts for row in prompts) and len({tuple(row) for row in prompts}) == 6
    assert np.array_equal(prompts, prompts_from_blocks(blocks, 6, 3, seed=0))
    assert not np.array_equal(prompts, prompts_from_blocks(blocks, 6, 3, seed=1))
    with pytest.raises(ConfigError, match=r"distill.sequence.prompts: 11 prompts .* only 10 blocks"):
        prompts_from_blocks(blocks, 11, 3, seed=0)
    with pytest.raises(ConfigError, match="distill.sequence.prompt_tokens: 5 is longer than a block"):
        prompts_from_blocks(blocks, 2, 5, seed=0)
