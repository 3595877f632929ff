"""benchmarks/gpu_step_profile.py's variants: one that cannot run (CUDA graphs without CUDA, or any error) becomes a
row saying why, so a device run keeps the other rows; a CPU variant is timed through edgekd's train()."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def profile(load_benchmark):
    return load_benchmark("gpu_step_profile")


def _images(n: int = 64):
    generator = torch.Generator().manual_seed(0)
    return torch.rand(n, 1, 28, 28, generator=generator), torch.randint(0, 10, (n,), generator=generator)


def test_graphed_variant_on_a_cpu_is_a_row_with_its_reason(profile):
    x, y = _images()
    assert profile.timed_variant("convnet", 4, x, y, 1, {"graphed": True, "amp": "off"}) == {"error": "CUDA graphs need a CUDA device"}


def test_a_failing_variant_records_its_error_and_restores_the_switches(profile, monkeypatch):
    x, y = _images()

    def broken(model, cfg):
        raise RuntimeError("no optimizer today")

    monkeypatch.setattr(profile.trainer, "make_optimizer", broken)
    row = profile.timed_variant("convnet", 4, x, y, 1, {"bench": True})
    assert row == {"error": "RuntimeError: no optimizer today"}
    assert torch.backends.cudnn.benchmark is False


def test_a_cpu_variant_is_timed(profile):
    x, y = _images()
    row = profile.timed_variant("convnet", 4, x, y, 1, {"amp": "off"})
    assert set(row) == {"epoch_seconds"} and row["epoch_seconds"] > 0
