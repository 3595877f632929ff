"""Progress: bars in a terminal; in a log, one plain line at most every few seconds with elapsed time and ETA."""
from __future__ import annotations

import io
import time

from tqdm import tqdm

from edgekd.core.progress import LogLines, progress


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_log_gets_plain_lines_with_eta_at_most_once_per_interval(monkeypatch):
    monkeypatch.setenv("EDGEKD_PROGRESS_SECONDS", "0.2")
    log = io.StringIO()
    started = time.time()
    for _ in progress(range(12), desc="calibration", unit="method", file=log):
        time.sleep(0.05)
    seconds = time.time() - started
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue()
    assert 1 <= len(lines) <= seconds / 0.2 + 1, lines
    assert lines[0].startswith("  calibration: ") and "/12 method (" in lines[0] and "elapsed, ETA" in lines[0]


def test_a_short_task_in_a_log_prints_nothing(monkeypatch):
    monkeypatch.delenv("EDGEKD_PROGRESS_SECONDS", raising=False)
    log = io.StringIO()
    bar = progress(total=5, desc="compile", unit="candidate", file=log)
    assert isinstance(bar, LogLines)
    for _ in range(5):
        bar.update(1)
    bar.close()
    assert log.getvalue() == ""


def test_a_terminal_gets_a_tqdm_bar_and_disable_is_kept():
    bar = progress(total=3, desc="latency", file=_Terminal())
    assert isinstance(bar, tqdm) and not isinstance(bar, LogLines) and not bar.disable
    bar.close()
    assert progress(total=3, file=io.StringIO(), disable=True).disable
