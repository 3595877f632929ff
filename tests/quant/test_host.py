"""The int8 recipe follows the host's CPU: 7-bit weights where 8-bit products saturate (no VNNI/AMX)."""
import warnings

import pytest

from edgekd.core import environment
from edgekd.quant import host
from edgekd.quant.host import FORCE_ENV, recipe_for_host, saturates_8bit_products
from edgekd.runtimes import load_profile

VNNI_RECIPE = load_profile("x86-cpu").quantization


def _cpu(monkeypatch, arch: str, flags: list[str]) -> None:
    monkeypatch.delenv(FORCE_ENV, raising=False)
    monkeypatch.setattr(host, "cpu_info", lambda: {"model": "test", "arch": arch, "cores": 2, "flags": flags})


@pytest.mark.parametrize("flags, saturates", [(["avx2"], True), (["avx2", "avx512f"], True), (["avx2", "avx512_vnni"], False),
                                              (["avx2", "avx_vnni"], False), (["avx2", "amx_int8"], False)])
def test_x86_without_an_int32_dot_product_saturates(monkeypatch, flags, saturates):
    _cpu(monkeypatch, "x86_64", flags)
    assert saturates_8bit_products() is saturates


def test_arm_hosts_never_adapt(monkeypatch):
    _cpu(monkeypatch, "aarch64", ["asimd", "asimddp"])
    choice = recipe_for_host(VNNI_RECIPE)
    assert choice.recipe is VNNI_RECIPE and not choice.adapted and choice.note is None


def test_avx2_host_switches_to_7bit_weights_and_says_so(monkeypatch):
    _cpu(monkeypatch, "x86_64", ["avx2"])
    choice = recipe_for_host(VNNI_RECIPE, target="x86-cpu")
    assert choice.adapted and choice.recipe.reduce_range and not VNNI_RECIPE.reduce_range
    assert choice.recipe.name == VNNI_RECIPE.name  # same files, same recipe, recorded as adapted
    assert choice.note.startswith("x86-cpu: this CPU has no VNNI/AMX") and "reduce_range" in choice.note
    assert choice.record() == {"adapted_to_host": True, "host_note": choice.note}


def test_keeping_the_profile_recipe_warns_that_the_host_cannot_judge_it(monkeypatch):
    _cpu(monkeypatch, "x86_64", ["avx2"])
    choice = recipe_for_host(VNNI_RECIPE, adapt=False)
    assert choice.recipe is VNNI_RECIPE and not choice.adapted
    assert "int8 accuracy measured here is lower than the device's" in choice.note


def test_a_reduced_range_recipe_needs_nothing(monkeypatch):
    _cpu(monkeypatch, "x86_64", ["avx2"])
    novnni = load_profile("x86-cpu-novnni").quantization
    assert recipe_for_host(novnni).note is None


def test_forced_path_acts_as_avx2_on_any_cpu(monkeypatch):
    monkeypatch.setattr(host, "cpu_info", lambda: {"model": "t", "arch": "x86_64", "cores": 2, "flags": ["amx_int8"]})
    monkeypatch.setenv(FORCE_ENV, "novnni")
    assert saturates_8bit_products() and recipe_for_host(VNNI_RECIPE).adapted


def test_int8_config_uses_the_host_recipe_and_warns(monkeypatch):
    from edgekd.api import Int8Config

    _cpu(monkeypatch, "x86_64", ["avx2"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert Int8Config(target="x86-cpu").recipe().reduce_range
        assert not Int8Config(target="x86-cpu", adapt_to_host=False).recipe().reduce_range
    assert sum("no VNNI/AMX" in str(w.message) for w in caught) == 2


def test_this_hosts_flags_are_real():
    """The detection reads /proc/cpuinfo: on this machine it agrees with the flags the kernel reports."""
    flags = environment.cpu_info()["flags"]
    if environment.cpu_info()["arch"] != "x86_64":
        pytest.skip("x86 only")
    expected = not any(f in flags for f in host.INT32_DOT_PRODUCT_FLAGS)
    assert saturates_8bit_products() is (expected or host.os.environ.get(FORCE_ENV) == "novnni")
