"""The CLI's exit codes: 2 bad input, 3 a bug (never 1, which CI reads as a failed gate)."""
from __future__ import annotations

from click.testing import CliRunner

from edgekd import api
from edgekd.cli import INTERNAL_ERROR, main


def _boom(*_args, **_kwargs):
    raise RuntimeError("boom\nsecond line")


def test_unexpected_exception_exits_3_with_one_line(monkeypatch, tmp_path):
    monkeypatch.setattr(api, "bench", _boom)
    result = CliRunner().invoke(main, ["bench", str(tmp_path)])
    assert result.exit_code == INTERNAL_ERROR == 3
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("edgekd: internal error")]
    assert len(lines) == 1 and "RuntimeError: boom" in lines[0] and "--debug" in lines[0]


def test_debug_shows_the_traceback_and_still_exits_3(monkeypatch, tmp_path):
    monkeypatch.setattr(api, "bench", _boom)
    result = CliRunner().invoke(main, ["--debug", "bench", str(tmp_path)])
    assert result.exit_code == 3 and "Traceback" in result.stderr and "second line" in result.stderr


def test_usage_errors_keep_clicks_exit_code(tmp_path):
    assert CliRunner().invoke(main, ["bench", str(tmp_path / "missing")]).exit_code == 2
