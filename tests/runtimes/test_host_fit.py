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


def test_a_device_without_vnni_timed_on_a_vnni_cpu_warns():
    """Trial defect (session 11): x86-cpu-novnni was timed with VNNI kernels and its int8 chosen for speed, no word."""
    [warning] = host_warnings(_profile("x86-cpu-novnni"), SAPPHIRE_RAPIDS)
    assert warning.startswith("x86-cpu-novnni: this CPU has VNNI and AMX, which the device lacks")
    [warning] = host_warnings(_profile("x86-cpu-novnni"), {"arch": "x86_64", "cores": 2, "flags": ["avx2", "avx512_vnni"]})
    assert warning.startswith("x86-cpu-novnni: this CPU has VNNI, which the device lacks")


def test_timings_transfer_only_to_a_device_of_this_architecture():
    """Trial defect (session 11): an aarch64 profile on the ort backend (latency_measurable_off_device left true) shipped
    int8 or fp32 on x86 timings."""
    from edgekd.runtimes.host_fit import timings_transfer

    arm = load_profile("arm64-cpu").model_copy(update={"backend": "ort", "latency_measurable_off_device": True})
    assert not timings_transfer(arm, AVX2_ONLY) and timings_transfer(arm, {"arch": "aarch64", "flags": []})
    assert timings_transfer(load_profile("x86-cpu"), AVX2_ONLY)
    assert not timings_transfer(load_profile("arm64-cpu"), {"arch": "aarch64", "flags": []})  # the profile says no


def test_too_many_threads_asked_by_the_flag_blame_the_flag_not_the_profile():
    """Trial defect (session 13): `edgekd bench --threads 8` on a 2-core board said "the profile runs 8 threads ...
    slower and noisier than on the device", run on the device."""
    profile = {**_profile("x86-cpu-novnni"), "threads": 8, "threads_from": "--threads"}
    [warning] = host_warnings(profile, AVX2_ONLY)
    assert "--threads asks for 8 threads and this machine has 2 cores" in warning and "than on the device" not in warning
