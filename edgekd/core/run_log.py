"""The run's log file (RUN/edgekd.log): what a run says on the terminal, kept in its folder as plain lines with the
time, so an hour-long run that scrolled away (or ran under nohup, in CI, over ssh) can be read afterwards.

Everything written to stderr while a run holds its folder is copied there (stage lines, warnings, the checks' notes,
the error that stopped it), except what a terminal redraws in place (tqdm bars: carriage returns, colours); progress
adds a plain line at most every log_interval() seconds instead (core/progress.py). Appended to, one header per
command, so --resume and --force keep the history of the folder. Written by hand: logging's handlers would need
every module that prints to go through a logger; a tee of stderr catches them all. The log never breaks the output
it copies: a line it cannot write turns it off. One run at a time per process keeps a log (a second, in another
thread, runs without one)."""
from __future__ import annotations

import re
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional, TextIO

LOG_NAME = "edgekd.log"

_active: Optional[TextIO] = None
_lock = threading.Lock()  # tqdm's monitor thread and a user's threads write to stderr too
_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")  # colours and cursor moves: a terminal's, not a log's


def _stamp() -> str:
    return time.strftime("%H:%M:%S")


def write_line(text: str) -> None:
    """One line into the active run log (none: nothing), with the time; a line it cannot write turns the log off."""
    global _active
    with _lock:
        handle = _active
        if handle is None or handle.closed:
            return
        try:
            handle.write(f"{_stamp()} {text.rstrip()}\n")
            handle.flush()
        except (OSError, ValueError):  # a full disk, a closed file: the run goes on without its log
            _active = None


def active() -> bool:
    return _active is not None


class _Tee:
    """sys.stderr that also copies whole lines to the log; lines a terminal redraws in place are left out."""

    def __init__(self, stream: Any):
        self._stream, self._pending = stream, ""

    def write(self, text: str) -> int:
        written = self._stream.write(text)
        pending = self._pending + text
        *lines, pending = pending.split("\n")
        self._pending = pending.rpartition("\r")[2]  # a bar redrawn without a newline: only what it shows now
        for line in lines:
            line = _ESCAPES.sub("", line.rpartition("\r")[2])  # what the terminal shows once a bar cleared itself
            if line.strip():
                write_line(line)
        return written

    def flush(self) -> None:
        self._stream.flush()

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding: the terminal's
        return getattr(self._stream, name)


@contextmanager
def run_log(run_dir: Path, command: str, enabled: bool = True) -> Iterator[None]:
    """Copy stderr into RUN/edgekd.log while the block runs, under a header naming the command; the exception that
    ends the block, if any, is written last."""
    global _active
    if not enabled or _active is not None or sys.stderr is None:  # a run inside a run keeps the outer log; no stderr
        yield
        return
    saved = sys.stderr
    handle = open(Path(run_dir) / LOG_NAME, "a", encoding="utf-8", errors="backslashreplace")
    try:
        handle.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {command}\n")
        with _lock:
            _active = handle
        sys.stderr = _Tee(saved)
        yield
    except BaseException as exc:
        write_line(f"stopped: {type(exc).__name__}: {exc}" if str(exc) else f"stopped: {type(exc).__name__}")
        raise
    finally:
        sys.stderr = saved
        with _lock:
            _active = None
            handle.close()


def append(run_dir: Path, text: str) -> None:
    """Lines written after the run released its folder (the result table, the verdict), if the run keeps a log."""
    path = Path(run_dir) / LOG_NAME
    if path.is_file():
        with open(path, "a", encoding="utf-8", errors="backslashreplace") as handle:
            handle.writelines(f"{_stamp()} {line}\n" for line in _ESCAPES.sub("", text).splitlines())
