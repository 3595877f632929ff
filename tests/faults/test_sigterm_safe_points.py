"""SIGTERM at any moment ends a run with exit 130: the interrupt is raised where Python can unwind, never inside
code compiled from a string or an import in progress (edgekd/core/interrupts.py).

Raised inside exec'd code (namedtuple, dataclasses and numpy's f2py make classes that way while sklearn or a runtime
is imported), a caught KeyboardInterrupt still made the interpreter kill itself with SIGINT (exit -2); an import cut
short leaves a half-initialised module, which a runtime's extension went on using (exit -11)."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .helpers import REPO, subprocess_env

# The script holds the CLI's handler, then lands the signal inside `where`; exits 130 when it catches the interrupt.
PROBE = """
import os, signal, sys, time
from edgekd.cli import _sigterm_as_interrupt
# Signals itself, runs on for 0.3 s, then leaves a mark: the mark exists only if the code ran to its end.
SELF_SIGNAL = ("import os, signal, time\\nos.kill(os.getpid(), signal.SIGTERM)\\n"
               "end = time.monotonic() + 0.3\\nwhile time.monotonic() < end:\\n    pass\\n"
               f"open({os.path.join(sys.argv[2], 'finished')!r}, 'w').close()\\n")
try:
    with _sigterm_as_interrupt():
        if sys.argv[1] == "exec":
            exec(SELF_SIGNAL, {})
        else:
            sys.path.insert(0, sys.argv[2])
            with open(os.path.join(sys.argv[2], "slow_module.py"), "w") as out:
                out.write(SELF_SIGNAL)
            import slow_module  # noqa: F401
        time.sleep(5)  # the deferred interrupt lands here at the latest, in ordinary code
    print("not interrupted", flush=True)
except KeyboardInterrupt:
    sys.exit(130)
"""


@pytest.mark.parametrize("where", ["exec", "import"])
def test_a_signal_inside_exec_or_an_import_is_raised_once_it_returns(where, tmp_path):
    (tmp_path / "sigterm_probe.py").write_text(PROBE, encoding="utf-8")
    # -m, as `python -m edgekd` runs: there CPython turns a KeyboardInterrupt that left exec'd code into exit -2
    done = subprocess.run([sys.executable, "-m", "sigterm_probe", where, str(tmp_path)], capture_output=True, text=True,
                          env=subprocess_env(PYTHONPATH=os.pathsep.join([str(REPO), str(tmp_path)])), timeout=60, cwd=tmp_path)

    assert done.returncode == 130, (done.returncode, done.stdout, done.stderr[-2000:])
    assert (tmp_path / "finished").is_file()  # the exec'd code or the import ran to its end before the interrupt


def _resumable_copy(finished_run: Path, into: Path) -> Path:
    """The finished run as if it had been stopped during the bench stage: --resume reruns bench and gate."""
    run = shutil.copytree(finished_run, into)
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["stages"]["bench"] = {"status": "failed", "reason": "interrupted"}
    manifest["stages"].pop("gate", None)
    (run / "manifest.json").write_text(json.dumps(manifest))
    return run


# When the signal lands, as a share of the time from "[6/7 bench] running" to the end of an uninterrupted resume on
# this machine: the dataset's import of sklearn, the runtimes' sessions, accuracy, latency rounds and the per-artifact
# memory subprocesses. Shares rather than seconds: a fast CPU finishes the tiny bench before a fixed 3 s delay (exit 0).
SHARES = (0.0, 0.005, 0.01, 0.02, 0.04, 0.07, 0.1, 0.15, 0.2, 0.3, 0.45, 0.6)


def _resume(config: Path, run: Path) -> tuple[subprocess.Popen, float]:
    """The resumed run, once its bench stage has started, and the time it did."""
    process = subprocess.Popen([sys.executable, "-m", "edgekd", "run", str(config), "--out", str(run), "--resume"],
                               cwd=REPO, env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    for line in process.stderr:
        if "bench] running" in line:
            break
    return process, time.monotonic()


def _bench_seconds(config: Path, finished_run: Path, tmp_path: Path) -> float:
    """How long the resumed bench and gate take here, uninterrupted."""
    process, started = _resume(config, _resumable_copy(finished_run, tmp_path / "uninterrupted"))
    process.stderr.read()
    assert process.wait(timeout=300) == 0
    return time.monotonic() - started


@pytest.mark.slow
def test_sigterm_at_many_points_of_a_resumed_bench_stage_always_exits_130(finished_run, tmp_path):
    config = finished_run.parent / "pipeline.yaml"
    seconds = _bench_seconds(config, finished_run, tmp_path)
    codes = {}
    for index, share in enumerate(SHARES):
        process, started = _resume(config, _resumable_copy(finished_run, tmp_path / f"run{index}"))
        time.sleep(max(0.0, started + share * seconds - time.monotonic()))
        process.send_signal(signal.SIGTERM)
        rest = process.stderr.read()
        codes[round(share * seconds, 3)] = (process.wait(timeout=120), rest.strip().splitlines()[-1:] if rest.strip() else [])
        shutil.rmtree(tmp_path / f"run{index}")

    # only the points that went wrong, so that pytest's shortened message still shows them
    assert not {at: got for at, got in codes.items() if got[0] != 130}, (seconds, codes)
    assert not {at: got for at, got in codes.items() if not (got[1] and got[1][0].startswith("edgekd: interrupted"))}, codes


# A worker thread of a runtime's pool, started inside the block; the script prints its and the main thread's blocked
# signals, then sends the process SIGTERM while the worker spins: exit 130 only if the main thread got it.
WORKERS_PROBE = """
import os, signal, threading, time
from edgekd.cli import _sigterm_as_interrupt
def blocked():
    return signal.pthread_sigmask(signal.SIG_BLOCK, set())
seen = {}
def worker():
    seen["worker"] = blocked()
    end = time.monotonic() + 3
    while time.monotonic() < end:
        pass
try:
    with _sigterm_as_interrupt():
        thread = threading.Thread(target=worker, daemon=True)
        thread.start()
        time.sleep(0.2)
        print(signal.SIGTERM in seen["worker"], signal.SIGINT in seen["worker"], flush=True)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
    print("not interrupted", flush=True)
except KeyboardInterrupt:
    print(signal.SIGTERM in blocked(), flush=True)  # the main thread takes signals again once the block is left
    raise SystemExit(130)
"""


def test_the_runtimes_worker_threads_never_take_sigterm_and_the_main_thread_still_does(tmp_path):
    # A process-directed SIGTERM went to any thread that did not block it; one of OpenVINO's or onnxruntime's pool
    # interrupted in a system call corrupted the heap (exit -11 seconds later, in the garbage collector or matplotlib).
    (tmp_path / "workers_probe.py").write_text(WORKERS_PROBE, encoding="utf-8")
    done = subprocess.run([sys.executable, "workers_probe.py"], capture_output=True, text=True, timeout=60, cwd=tmp_path,
                          env=subprocess_env(PYTHONPATH=str(REPO)))

    assert done.returncode == 130, (done.returncode, done.stdout, done.stderr[-2000:])
    assert done.stdout.split() == ["True", "True", "False"], done.stdout
