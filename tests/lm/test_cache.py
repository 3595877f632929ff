from __future__ import annotations

import json

import numpy as np
import pytest

from edgekd.core.errors import ConfigError, DataError
from edgekd.lm.cache import TopKLogitCache, cache_key, entry_bytes


def _fill(cache, key, blocks=3, length=4, k=2):
    entry = cache.create(key, blocks, length, k, temperature=2.0)
    rng = np.random.default_rng(0)
    values = rng.normal(size=(blocks, length, k)).astype(np.float16)
    indices = rng.integers(0, 100, size=(blocks, length, k)).astype(np.int32)
    lse = rng.normal(size=(blocks, length)).astype(np.float32)
    entry.write(0, values[:2], indices[:2], lse[:2])
    entry.write(2, values[2:], indices[2:], lse[2:])
    return entry, values, indices, lse


def test_round_trip_through_memmaps(tmp_path):
    cache = TopKLogitCache(tmp_path)
    entry, values, indices, lse = _fill(cache, "k1")
    assert cache.open("k1") is None  # not finished: not trusted
    entry.finish()
    opened = cache.open("k1")
    assert isinstance(opened.values, np.memmap) and opened.values.dtype == np.float16 and opened.indices.dtype == np.int32
    assert np.array_equal(opened.values, values) and np.array_equal(opened.indices, indices) and np.array_equal(opened.logsumexp, lse)
    assert opened.temperature == 2.0
    v, i, s = opened.batch(np.array([2, 0]))
    assert v.dtype == np.float32 and i.dtype == np.int64 and np.array_equal(i, indices[[2, 0]])
    with pytest.raises(DataError, match="read-only"):
        opened.write(0, values[:1], indices[:1], lse[:1])
    with pytest.raises(DataError, match="complete cache entry exists"):
        cache.create("k1", 3, 4, 2, temperature=2.0)
    assert np.array_equal(cache.open("k1").values, values)  # untouched


def test_size_is_checked_before_anything_is_written(tmp_path):
    assert entry_bytes(10, 128, 32) == 10 * 128 * 32 * 6 + 10 * 128 * 4
    cache = TopKLogitCache(tmp_path, max_bytes=1000)
    with pytest.raises(ConfigError, match="over the .* budget; lower k"):
        cache.create("big", 100, 128, 32, 1.0)
    assert not (tmp_path / "big").exists()


def test_damaged_or_mismatched_entries_are_not_trusted(tmp_path):
    cache = TopKLogitCache(tmp_path)
    entry, *_ = _fill(cache, "k2")
    entry.finish()
    meta = json.loads((tmp_path / "k2" / "meta.json").read_text())
    meta["shapes"]["values"] = [9, 9, 9]
    (tmp_path / "k2" / "meta.json").write_text(json.dumps(meta))
    assert cache.open("k2") is None
    (tmp_path / "k2" / "meta.json").write_text("{broken")
    assert cache.open("k2") is None
    entry, *_ = _fill(cache, "k2")  # refilling replaces the damaged entry
    entry.finish()
    assert cache.open("k2") is not None


def test_the_key_follows_teacher_tokens_k_and_temperature():
    blocks = np.arange(12, dtype=np.int32).reshape(3, 4)
    base = cache_key("teacher", blocks, 8, 2.0)
    assert base == cache_key("teacher", blocks.copy(), 8, 2.0)
    changed = blocks.copy()
    changed[0, 0] = 99
    others = {cache_key("other", blocks, 8, 2.0), cache_key("teacher", changed, 8, 2.0),
              cache_key("teacher", blocks, 4, 2.0), cache_key("teacher", blocks, 8, 1.0)}
    assert base not in others and len(others) == 4
