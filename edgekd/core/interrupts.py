"""SIGTERM (and Ctrl-C) as KeyboardInterrupt, raised only where the interpreter can unwind cleanly.

Python runs a signal handler in the main thread between two bytecodes, wherever they are. Two places are not safe
for the handler to raise there:
- code compiled from a string (exec/eval: namedtuple, dataclasses and numpy's f2py make classes that way while
  sklearn, scipy or a runtime is imported). CPython records a KeyboardInterrupt that leaves such code as
  unhandled, and after edgekd caught it and exited with 130 the interpreter killed itself with SIGINT (exit -2);
- an import in progress (Python's import machinery, also when a C extension imports what it needs while it
  initialises): cut short, it leaves a half-initialised module behind, and a runtime's extension that goes on
  using it crashed (exit -11, one SIGTERM in eight during the bench stage of a resumed run).
There the handler defers: it asks to be called again RETRY_SECONDS later (`_thread.interrupt_main`) until the
main thread is back in ordinary code, at most MAX_DEFER_SECONDS. Once caught, `release` drops the frames the
exception holds, so runtime sessions close while every module is still alive, not during interpreter shutdown.
"""
from __future__ import annotations

import _thread
import gc
import signal
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Optional

RETRY_SECONDS = 0.05
MAX_DEFER_SECONDS = 30.0  # an import this long is stuck: raise anyway rather than ignore the request to stop
_UNSAFE_PREFIXES = ("<frozen importlib", "<string>")


def unsafe_to_raise(frame: Optional[FrameType]) -> bool:
    """True while `frame` or a caller runs code compiled from a string or Python's import machinery. The outermost
    frame does not count: `python -c` runs its program as code from a string, and an interrupt may leave that."""
    while frame is not None and frame.f_back is not None:
        if frame.f_code.co_filename.startswith(_UNSAFE_PREFIXES):
            return True
        frame = frame.f_back
    return False


def _handler():
    first_request: list[float] = []

    def interrupt(signum: int, frame: Optional[FrameType]) -> None:
        now = time.monotonic()
        first_request[:] = first_request or [now]
        if unsafe_to_raise(frame) and now - first_request[0] < MAX_DEFER_SECONDS:
            # Called again from a timer thread; does nothing once the handler is gone (the run ended meanwhile).
            retry = threading.Timer(RETRY_SECONDS, _thread.interrupt_main, (signum,))
            retry.daemon = True
            retry.start()
            return
        raise KeyboardInterrupt

    return interrupt


@contextmanager
def interrupts_raised_safely(signals: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT)) -> Iterator[None]:
    """Within the block, `signals` raise KeyboardInterrupt at the first safe point (see the module's docstring)."""
    handler, previous = _handler(), {}
    try:
        for sig in signals:
            if sig == signal.SIGINT and signal.getsignal(sig) == signal.SIG_IGN:
                continue  # started in the background with Ctrl-C ignored (nohup, `cmd &`): keep it ignored
            previous[sig] = signal.signal(sig, handler)
    except ValueError:  # not the main thread (an embedding application): leave signals alone
        for sig, old in previous.items():
            signal.signal(sig, old)
        yield
        return
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def release(exc: BaseException) -> None:
    """Let go of what a caught interrupt's traceback holds (runtime sessions, arrays), now rather than during
    interpreter shutdown, when the runtimes' modules may be half torn down."""
    tb = exc.__traceback__
    if tb is not None:
        traceback.clear_frames(tb)
    exc.__traceback__ = None
    gc.collect()
