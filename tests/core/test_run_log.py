"""RUN/edgekd.log (core/run_log.py): stderr copied as plain timed lines while a run holds its folder."""
from __future__ import annotations

import io
import sys

import pytest

from edgekd.core import run_log
from edgekd.core.progress import progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_stderr_lines_are_copied_and_redraws_and_colours_left_out(tmp_path, monkeypatch):
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.setenv("EDGEKD_PROGRESS_SECONDS", "0")
    with run_log.run_log(tmp_path, "edgekd run c.yaml --out run"):
        print("[1/7 teachers] running", file=sys.stderr)
        sys.stderr.write("\r  epochs:  40%|####      | 4/10\r  epochs:  50%|#####     | 5/10")  # a bar's redraws,
        sys.stderr.write("\r" + " " * 40 + "\r")  # then tqdm clearing it (leave=False)
        print("\x1b[33medgekd: warning: a note\x1b[0m", file=sys.stderr)
        for _ in progress(range(3), desc="calibration", unit="batch"):  # a bar on the terminal, lines in the log
            pass
    log = (tmp_path / run_log.LOG_NAME).read_text()
    assert "=== " in log and "edgekd run c.yaml --out run" in log
    assert "[1/7 teachers] running" in log and "edgekd: warning: a note" in log and "calibration: " in log
    assert "\r" not in log and "\x1b" not in log and "epochs:" not in log
    assert "[1/7 teachers] running" in terminal.getvalue()  # the terminal still gets everything
    assert sys.stderr is terminal and not run_log.active()


def test_the_error_that_stops_a_run_is_its_last_line_and_a_rerun_appends(tmp_path):
    with pytest.raises(ValueError), run_log.run_log(tmp_path, "first"):
        raise ValueError("data.path 'x': not found")
    with run_log.run_log(tmp_path, "second --resume"):
        print("resumed", file=sys.stderr)
    run_log.append(tmp_path, "gate: PASS (1 passed)")
    lines = (tmp_path / run_log.LOG_NAME).read_text().splitlines()
    stopped = next(i for i, line in enumerate(lines) if "stopped: ValueError: data.path 'x': not found" in line)
    assert lines.index("=== " + lines[stopped + 2].split("=== ")[-1]) == stopped + 2 and "second --resume" in lines[stopped + 2]
    assert lines[-1].endswith("gate: PASS (1 passed)") and any(line.endswith("resumed") for line in lines)



def test_the_header_names_the_command_typed_and_the_run_it_does(monkeypatch, tmp_path):
    """Trial defect (session 12): a ship's log named `edgekd run RUN/edgekd.yaml --out RUN`, never typed by the user."""
    from pathlib import Path

    from edgekd.pipeline.runner import _command

    monkeypatch.setattr(sys, "argv", ["/usr/bin/edgekd", "ship", "model.onnx", "--data", "my images", "--out", "r"])
    assert _command(Path("r/edgekd.yaml"), Path("r"), True, False, None) == \
        "edgekd ship model.onnx --data 'my images' --out r (as edgekd run r/edgekd.yaml --out r --resume)"
    monkeypatch.setattr(sys, "argv", ["script.py"])  # the Python API: the run it does
    assert _command(Path("c.yaml"), Path("r"), False, True, ["gate"]) == "edgekd run c.yaml --out r --force --only gate"


def test_the_log_never_breaks_the_output_it_copies(tmp_path, monkeypatch):
    """Review (session 12): a line of undecodable bytes (a Latin-1 file name) stopped the run with UnicodeEncodeError,
    no stderr at all (2>&-) raised AttributeError, and a redrawn bar's buffer grew without end."""
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    with run_log.run_log(tmp_path, "edgekd run c.yaml"):
        print("data/img/" + b"caf\xe9.jpg".decode("utf-8", "surrogateescape"), file=sys.stderr)
        for i in range(10_000):
            sys.stderr.write(f"\r  bar {i}")
        assert len(sys.stderr._pending) < 100
    assert "caf\\udce9.jpg" in (tmp_path / run_log.LOG_NAME).read_text()
    monkeypatch.setattr(sys, "stderr", None)
    with run_log.run_log(tmp_path, "no stderr"):
        assert sys.stderr is None and not run_log.active()


def test_a_folder_holding_only_a_log_is_a_run_folder_not_a_users(tmp_path):
    """Review (session 12): a run stopped before its manifest left edgekd.log, and every later run into the folder was
    refused as one holding a user's file, --force or not."""
    from edgekd.pipeline.runner import refuse_existing_run

    (tmp_path / run_log.LOG_NAME).write_text("\n=== 2026-12-07 edgekd run c.yaml --out run\n")
    refuse_existing_run(tmp_path, resume=False, force=False)
