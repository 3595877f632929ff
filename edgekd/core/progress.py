"""Progress for long work. In a terminal: tqdm bars (elapsed, ETA), cleared when done. Elsewhere (a log
file, a pipe, CI): one plain line at most every LOG_INTERVAL seconds, so a ten-minute stage still says
where it is without filling the log with carriage returns. The run's own log file (core/run_log.py) gets the
plain lines either way."""
from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Optional

from tqdm.auto import tqdm

from edgekd.core import run_log

# Seconds between plain progress lines when stderr is not a terminal; EDGEKD_PROGRESS_SECONDS overrides.
LOG_INTERVAL = 15.0


def log_interval() -> float:
    try:
        return max(0.0, float(os.environ.get("EDGEKD_PROGRESS_SECONDS", LOG_INTERVAL)))
    except ValueError:
        return LOG_INTERVAL


class LogLines(tqdm):
    """tqdm that writes a whole line (`  desc: 40/100 (40%), 12 s elapsed, ETA 18 s`) at most every
    `interval` seconds instead of redrawing a bar. tqdm keeps the counting, rate and ETA estimate."""

    def __init__(self, *args: Any, interval: float = LOG_INTERVAL, **kwargs: Any):
        self._interval, self._last_line = interval, None
        super().__init__(*args, **kwargs)

    def display(self, msg: Optional[str] = None, pos: Optional[int] = None) -> None:
        now = time.time()
        if self._last_line is None:  # tqdm's first draw, at start: nothing to say yet
            self._last_line = now
            return
        if msg == "" or now - self._last_line < self._interval:  # msg "" is tqdm clearing its bar on close
            return
        self._last_line = now
        self.fp.write(self.line() + "\n")
        self.fp.flush()

    def line(self) -> str:
        d = self.format_dict
        elapsed = d["elapsed"]
        text = f"  {self.desc or 'progress'}: {d['n']}"
        if d["total"]:
            text += f"/{d['total']} {d['unit']} ({100 * d['n'] / d['total']:.0f}%)"
        else:
            text += f" {d['unit']}"
        text += f", {_seconds(elapsed)} elapsed"
        rate = d["n"] / elapsed if elapsed > 0 else 0
        if d["total"] and rate > 0:
            text += f", ETA {_seconds((d['total'] - d['n']) / rate)}"
        return text


class LoggedBar(tqdm):
    """A terminal's bar that also writes LogLines' plain line into the run's log file (core/run_log.py) at most every
    log_interval() seconds: the bar itself is redrawn in place, which a log cannot hold."""

    def __init__(self, *args: Any, **kwargs: Any):
        self._logged_at = time.time()
        super().__init__(*args, **kwargs)

    def display(self, msg: Optional[str] = None, pos: Optional[int] = None) -> Any:
        shown = super().display(msg, pos)
        now = time.time()
        if msg != "" and now - self._logged_at >= log_interval():
            self._logged_at = now
            run_log.write_line(LogLines.line(self))
        return shown


def _seconds(value: float) -> str:
    if value < 10:
        return f"{value:.1f} s"
    return f"{value:.0f} s" if value < 120 else f"{value / 60:.1f} min"


# The shortest interval between heartbeat lines (EDGEKD_PROGRESS_SECONDS 0 asks for every progress line, not a spin).
HEARTBEAT_MIN_SECONDS = 1.0


@contextmanager
def heartbeat(what: str, interval: Optional[float] = None) -> Iterator[None]:
    """A line every log_interval() seconds while a call that reports no progress of its own runs (a scikit-learn fit:
    a trial's LogisticRegression took 55 s and the run said nothing): `  fitting teachers[1] LogisticRegression on
    4,000 rows: 30 s elapsed`. A call shorter than the interval says nothing. Written with tqdm.write, above a bar."""
    interval = max(log_interval() if interval is None else interval, HEARTBEAT_MIN_SECONDS)
    done, start = threading.Event(), time.time()

    def beat() -> None:
        while not done.wait(interval):
            tqdm.write(f"  {what}: {_seconds(time.time() - start)} elapsed", file=sys.stderr)

    thread = threading.Thread(target=beat, name="edgekd-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def progress(iterable: Optional[Iterable] = None, **kwargs: Any) -> tqdm:
    kwargs.setdefault("leave", False)
    stream = kwargs.setdefault("file", sys.stderr)
    if kwargs.get("disable") is True:
        return tqdm(iterable, **kwargs)
    if _is_terminal(stream):
        kwargs.setdefault("mininterval", 0.5)
        return (LoggedBar if run_log.active() else tqdm)(iterable, **kwargs)
    kwargs.pop("disable", None)
    interval = log_interval()
    return LogLines(iterable, interval=interval, mininterval=min(interval, 1.0), **kwargs)


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
