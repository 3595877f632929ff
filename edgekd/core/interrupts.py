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

The signal itself never reaches the runtimes' worker threads. The kernel hands a process-directed SIGTERM to any
thread that does not block it, and a worker of OpenVINO's (TBB) or onnxruntime's pool interrupted in a system call
corrupted the heap: the interpreter crashed seconds later wherever the garbage collector or matplotlib next touched
it (exit -11 when SIGTERM landed near the end of a bench stage, on a fast AVX-512 host). So within the block the
signals are blocked in the main thread, which every thread started from it inherits, and one watcher thread takes
them with sigwait and hands them to the main thread as Python-level interrupts (`_thread.interrupt_main`).
A child process started within the block inherits the blocked mask: edgekd's own (the memory probe, the
screenshot's browser) are started by subprocess.run, which kills its child when the interrupt unwinds it.
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
    watcher = _SignalWatcher(set(previous))
    try:
        yield
    finally:
        watcher.stop()
        for sig, old in previous.items():
            signal.signal(sig, old)


class _SignalWatcher:
    """Blocks `signals` in the main thread (and so in every thread started from it meanwhile) and takes them in a
    thread of its own with sigwait, handing each to the main thread's Python handler (module docstring)."""

    def __init__(self, signals: set[int]):
        self.signals, self.active = signals, True
        self.mask_before = signal.pthread_sigmask(signal.SIG_BLOCK, signals) if signals else set()
        self.thread = threading.Thread(target=self._watch, name="edgekd-signals", daemon=True)
        if signals:
            self.thread.start()

    def _watch(self) -> None:
        while True:
            sig = signal.sigwait(self.signals)
            if not self.active:  # the block is over: the signal goes to the main thread's handler of now
                signal.pthread_sigmask(signal.SIG_UNBLOCK, self.signals)  # this thread too, then it ends
                signal.pthread_kill(threading.main_thread().ident, sig)
                return
            _thread.interrupt_main(sig)

    def stop(self) -> None:
        """Unblock the signals in the main thread; a signal still pending there arrives now, under the handler
        of the block (restored by the caller only after this)."""
        if not self.signals:
            return
        self.active = False
        signal.pthread_sigmask(signal.SIG_SETMASK, self.mask_before)


def release(exc: BaseException) -> None:
    """Let go of what a caught interrupt's traceback holds (runtime sessions, arrays), now rather than during
    interpreter shutdown, when the runtimes' modules may be half torn down."""
    tb = exc.__traceback__
    if tb is not None:
        traceback.clear_frames(tb)
    exc.__traceback__ = None
    gc.collect()
