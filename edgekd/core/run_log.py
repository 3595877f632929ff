"""The run's log file (RUN/edgekd.log): what a run says on the terminal, kept in its folder as plain lines with the
time, so an hour-long run that scrolled away (or ran under nohup, in CI, over ssh) can be read afterwards.

Everything written to stderr while a run holds its folder is copied there (stage lines, warnings, the checks' notes,
the error that stopped it), except what a terminal redraws in place (tqdm bars: carriage returns, colours); progress
adds a plain line at most every log_interval() seconds instead (core/progress.py). Appended to, one header per
command, so --resume and --force keep the history of the folder. Written by hand: logging's handlers would need
every module that prints to go through a logger; a tee of stderr catches them all."""
from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional, TextIO

LOG_NAME = "edgekd.log"

_active: Optional[TextIO] = None
_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")  # colours and cursor moves: a terminal's, not a log's


def _stamp() -> str:
    return time.strftime("%H:%M:%S")


def write_line(text: str) -> None:
    """One line into the active run log (none: nothing), with the time."""
    if _active is not None and not _active.closed:
        _active.write(f"{_stamp()} {text.rstrip()}\n")
        _active.flush()


def active() -> bool:
    return _active is not None


class _Tee:
    """sys.stderr that also copies whole lines to the log; lines a terminal redraws in place are left out."""

    def __init__(self, stream: Any):
        self._stream, self._pending = stream, ""

    def write(self, text: str) -> int:
        written = self._stream.write(text)
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
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
    if not enabled or _active is not None:  # a run inside a run (api calls from a stage) keeps the outer log
        yield
        return
    handle = open(Path(run_dir) / LOG_NAME, "a", encoding="utf-8")
    handle.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {command}\n")
    saved, _active = sys.stderr, handle
    sys.stderr = _Tee(saved)
    try:
        yield
    except BaseException as exc:
        write_line(f"stopped: {type(exc).__name__}: {exc}" if str(exc) else f"stopped: {type(exc).__name__}")
        raise
    finally:
        sys.stderr, _active = saved, None
        handle.close()


def append(run_dir: Path, text: str) -> None:
    """Lines written after the run released its folder (the result table, the verdict), if the run keeps a log."""
    path = Path(run_dir) / LOG_NAME
    if path.is_file():
        with open(path, "a", encoding="utf-8") as handle:
            handle.writelines(f"{_stamp()} {line}\n" for line in _ESCAPES.sub("", text).splitlines())
