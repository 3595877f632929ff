"""Warnings when this machine is not the device a profile describes."""
from __future__ import annotations

from edgekd.runtimes import load_profile
from edgekd.runtimes.host_fit import host_warnings

AVX2_ONLY = {"arch": "x86_64", "cores": 2, "flags": ["avx2"]}
SAPPHIRE_RAPIDS = {"arch": "x86_64", "cores": 32, "flags": ["avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile",
                                                           "amx_int8", "amx_bf16"]}


def _profile(name):
    return load_profile(name).model_dump()


def test_a_vnni_profile_on_an_avx2_cpu_warns_and_a_vnni_cpu_does_not():
    [warning] = host_warnings(_profile("x86-cpu"), AVX2_ONLY)
    assert warning.startswith("x86-cpu: this CPU has no VNNI") and "do not rank candidates as the device would" in warning
    assert host_warnings(_profile("x86-cpu"), SAPPHIRE_RAPIDS) == []
    assert host_warnings(_profile("x86-cpu-novnni"), AVX2_ONLY) == []


def test_bf16_without_native_kernels_warns():
    [warning] = host_warnings(_profile("intel-cpu"), AVX2_ONLY)
    assert warning.startswith("intel-cpu: this CPU has no BF16")
    assert host_warnings(_profile("intel-cpu"), SAPPHIRE_RAPIDS) == []


def test_another_architecture_warns_once_and_says_to_bench_on_the_device():
    [warning] = host_warnings(_profile("arm64-cpu"), AVX2_ONLY)
    assert "for aarch64 CPUs and this machine is x86_64" in warning and "edgekd bench on the device" in warning
    assert host_warnings(_profile("arm64-cpu"), {"arch": "aarch64", "cores": 4, "flags": ["asimd"]}) == []


def test_fewer_cores_than_the_profile_threads_warns():
    profile = {**_profile("x86-cpu-novnni"), "threads": 8}
    [warning] = host_warnings(profile, AVX2_ONLY)
    assert "runs 8 threads and this machine has 2 cores" in warning


def test_gpu_profiles_are_not_judged_by_the_cpu():
    assert host_warnings(_profile("jetson-orin"), AVX2_ONLY) == []
