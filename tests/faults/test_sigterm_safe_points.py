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


# Seconds after "[6/7 bench] running": the dataset's import of sklearn, the runtimes' sessions, accuracy, latency
# rounds and the per-artifact memory subprocesses (the bench takes ~5 s here on this tiny run).
DELAYS = (0.0, 0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)


@pytest.mark.slow
def test_sigterm_at_many_points_of_a_resumed_bench_stage_always_exits_130(finished_run, tmp_path):
    config = finished_run.parent / "pipeline.yaml"
    codes = {}
    for index, delay in enumerate(DELAYS):
        run = _resumable_copy(finished_run, tmp_path / f"run{index}")
        process = subprocess.Popen([sys.executable, "-m", "edgekd", "run", str(config), "--out", str(run), "--resume"],
                                   cwd=REPO, env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for line in process.stderr:
            if "bench] running" in line:
                break
        time.sleep(delay)
        process.send_signal(signal.SIGTERM)
        rest = process.stderr.read()
        codes[delay] = (process.wait(timeout=120), rest.strip().splitlines()[-1:] if rest.strip() else [])
        shutil.rmtree(run)

    assert all(code == 130 for code, _ in codes.values()), codes
    assert all(last and last[0].startswith("edgekd: interrupted") for _, last in codes.values()), codes
