"""Every stage's peak resident memory is on record in the run's manifest: its own peak (reset per stage where the OS
allows) and the largest child process it waited for (the bench stage's per-artifact memory probes)."""
import subprocess
import sys

import numpy as np
import pytest

from edgekd.core.fileio import read_json
from edgekd.core.peak_memory import measure_peak
from edgekd.pipeline.registry import STAGE_NAMES


def test_the_manifest_records_each_stages_peak_rss(finished_run):
    stages = read_json(finished_run / "manifest.json")["stages"]

    for name in STAGE_NAMES:
        memory = stages[name]["memory"]
        assert memory["peak_rss_mb"] > 10, (name, memory)  # an interpreter with numpy is tens of MB
        assert memory["peak_since"] in ("stage", "process start")


def test_each_block_has_its_own_peak():
    with measure_peak() as big:
        block = np.ones(300 << 20, np.uint8)  # 300 MB, touched
        del block
    with measure_peak() as small:
        pass
    if small["peak_since"] != "stage":
        pytest.skip("this OS does not let a process reset its peak RSS (/proc/self/clear_refs)")

    assert big["peak_rss_mb"] - small["peak_rss_mb"] > 200, (big, small)


def test_children_are_recorded_when_the_block_waited_for_one():
    with measure_peak() as quiet:
        pass
    with measure_peak() as parent:
        subprocess.run([sys.executable, "-c", "block = bytearray(200 << 20)"], check=True)

    assert "children_peak_rss_mb" not in quiet
    assert parent["children_peak_rss_mb"] > 200


def test_memory_a_stage_freed_goes_back_to_the_os_before_the_next():
    """glibc keeps what a worker thread freed in its malloc arena: 256 MB in 64 KB blocks, one kept, stayed resident
    after the stage that made them. measure_peak trims it at the end of the block and records what is still held."""
    import threading

    from edgekd.core.peak_memory import _glibc

    if _glibc() is None:
        pytest.skip("not glibc: no malloc_trim")
    kept = []

    def stage_work():
        blocks = [np.ones(64 << 10, np.uint8) for _ in range(4000)]
        kept.append(blocks[-1])  # the last block pins the top of the thread's heap, as a result a stage keeps does

    with measure_peak() as record:
        worker = threading.Thread(target=stage_work)
        worker.start()
        worker.join()

    assert record["peak_rss_mb"] - record["rss_after_mb"] > 150, record
