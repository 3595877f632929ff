"""Peak resident memory (RSS) of a piece of work in this process, and of the child processes it waited for.

A process's peak RSS (VmHWM, ru_maxrss) only grows, so per stage it says nothing after the first large stage.
On Linux writing "5" to /proc/self/clear_refs resets VmHWM to the current RSS: each stage then reports its own peak.
Where that is refused (another OS, a locked-down /proc) the peak is the process's since it started, and the record
says so. Children: getrusage(RUSAGE_CHILDREN) gives the largest child process waited for so far, which cannot be
reset; it is recorded for a stage that waited for a child, as the largest child of the run up to that stage's end.
It is an upper bound: Linux's execve keeps the parent's high-water mark in the child's ru_maxrss, so a child counts
at least what this process held (since its stage began) when the child started. The bench stage's rows have each
memory probe's own peak (VmHWM, device/memory.py).
Plain standard library: the lean device side may use it too.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import gc
import resource
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_STATUS, _CLEAR_REFS = Path("/proc/self/status"), Path("/proc/self/clear_refs")
# ru_maxrss is in kilobytes on Linux, in bytes on macOS
_MAXRSS_UNIT = 1 if sys.platform == "darwin" else 1024


def reset_peak() -> bool:
    """Reset this process's peak RSS to its current RSS; False where the OS does not allow it."""
    try:
        _CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    """This process's peak RSS in MB: VmHWM (since the last reset_peak), else ru_maxrss (since the process started)."""
    peak = _status_mb("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * _MAXRSS_UNIT / 2**20


def _rss_mb() -> float:
    """This process's resident set now (VmRSS), 0 where /proc has none."""
    return _status_mb("VmRSS") or 0.0


def _status_mb(field: str) -> float | None:
    """A kB field of /proc/self/status in MB; None where there is none (not Linux)."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _children() -> tuple[float, float]:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_maxrss * _MAXRSS_UNIT / 2**20, usage.ru_utime + usage.ru_stime


def release_freed_memory() -> None:
    """Hand memory freed by a finished stage back to the OS. glibc keeps freed blocks in per-thread malloc arenas
    (torch's and the runtimes' worker threads, the image decoders) and returns them only on malloc_trim: without it a
    ship's resident set crept up by the largest of each stage's buffers (a 224x224 ResNet-18 from ~0.9 GB to ~1.5 GB
    before bench). Python's own cycles first, so their buffers are among the freed ones. No-op off glibc."""
    gc.collect()
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


def _glibc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "malloc_trim") else None  # musl has no malloc_trim
    except OSError:
        return None


@contextmanager
def measure_peak() -> Iterator[dict[str, Any]]:
    """Fills the yielded dict, on exit, with `peak_rss_mb` (this process during the block), `peak_since`
    ("stage", or "process start" where the peak cannot be reset) and, when the block waited for child
    processes, `children_peak_rss_mb`."""
    record: dict[str, Any] = {}
    since = "stage" if reset_peak() else "process start"
    before = _children()
    try:
        yield record
    finally:
        record.update(peak_rss_mb=round(peak_rss_mb(), 1), peak_since=since)
        after = _children()  # before collecting: a collected Popen reaps its child, which is not this block's
        if after != before:  # a child process ended in the block (its CPU time or its peak was added)
            record["children_peak_rss_mb"] = round(after[0], 1)
        release_freed_memory()  # before the next stage, whose peak then starts from what is really still held
        record["rss_after_mb"] = round(_rss_mb(), 1)
