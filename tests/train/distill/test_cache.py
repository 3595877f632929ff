import numpy as np
import pytest
import torch

from edgekd.train.distill.cache import TeacherLogitCache, cache_key, resolve_cache_dir, weights_digest


def _model(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))


def _fill(cache, model, dataset="d1", transform=None):
    calls = []
    key = cache_key(weights_digest(model), dataset, transform or {"augment": None})

    def compute():
        calls.append(1)
        return np.arange(12, dtype=np.float32).reshape(4, 3)

    return cache.get_or_compute(key, compute, {"teacher": "teachers[0]"}), calls


def test_second_lookup_hits_and_is_memory_mapped_float16(tmp_path):
    cache, model = TeacherLogitCache(tmp_path), _model()
    first, calls = _fill(cache, model)
    second, calls_again = _fill(cache, model)
    assert (first.hit, second.hit) == (False, True)
    assert calls == [1] and calls_again == []
    assert isinstance(second.logits, np.memmap) and second.logits.dtype == np.float16
    np.testing.assert_array_equal(second.logits, np.arange(12).reshape(4, 3))
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temporary files


def test_changing_a_teacher_weight_misses(tmp_path):
    cache, model = TeacherLogitCache(tmp_path), _model()
    _fill(cache, model)
    with torch.no_grad():
        model[0].weight[0, 0] += 1e-3
    entry, calls = _fill(cache, model)
    assert not entry.hit and calls == [1]


def test_changing_a_buffer_the_dataset_or_the_transform_misses(tmp_path):
    cache, model = TeacherLogitCache(tmp_path), _model()
    _fill(cache, model)
    assert not _fill(cache, model, dataset="d2")[0].hit
    assert not _fill(cache, model, transform={"augment": {"shift": 2, "epoch": 0}})[0].hit
    model[1].running_mean += 1.0
    assert not _fill(cache, model)[0].hit


def test_a_damaged_entry_is_recomputed(tmp_path):
    cache, model = TeacherLogitCache(tmp_path), _model()
    entry, _ = _fill(cache, model)
    (tmp_path / f"{entry.key}.npy").write_bytes(b"not numpy")
    again, calls = _fill(cache, model)
    assert not again.hit and calls == [1]


def test_nan_logits_are_refused(tmp_path):
    from edgekd.core.errors import DataError

    with pytest.raises(DataError, match="NaN"):
        TeacherLogitCache(tmp_path).get_or_compute("k", lambda: np.full((2, 2), np.nan), {"teacher": "teachers[1]"})


def test_cache_dir_resolution(tmp_path, monkeypatch):
    monkeypatch.delenv("EDGEKD_CACHE_DIR", raising=False)
    assert str(resolve_cache_dir(None)) == "runs/.cache/teacher-logits"
    assert resolve_cache_dir(None, run_dir=tmp_path / "runs" / "demo") == tmp_path / "runs" / ".cache" / "teacher-logits"
    monkeypatch.setenv("EDGEKD_CACHE_DIR", str(tmp_path))
    assert resolve_cache_dir(None) == tmp_path
    assert resolve_cache_dir("c", tmp_path) == tmp_path / "c"


def test_the_same_weights_under_edited_code_miss(tmp_path, monkeypatch):
    """Trial defect (session 12): a teacher factory file edited to swap two classes in forward() (same checkpoint) read
    the earlier run's cached outputs, and the student learned from a teacher the report no longer measured."""
    import importlib
    import sys

    source = ("import torch\nPERM = {perm}\nclass Teacher(torch.nn.Linear):\n"
              "    def forward(self, x):\n        return super().forward(x)[:, PERM]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    digests = []
    for perm in ([0, 1, 2], [0, 2, 1], [0, 1, 2]):
        (tmp_path / "user_teacher.py").write_text(source.format(perm=perm) + f"# {len(digests)}\n" * (perm == [0, 2, 1]))
        sys.modules.pop("user_teacher", None)
        module = importlib.import_module("user_teacher")
        torch.manual_seed(0)
        digests.append(weights_digest(module.Teacher(4, 3)))
    sys.modules.pop("user_teacher", None)
    assert digests[0] != digests[1] and digests[0] == digests[2]  # edited: a miss; edited back: the entry again
