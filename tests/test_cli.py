"""The CLI's exit codes: 2 bad input, 3 a bug (never 1, which CI reads as a failed gate)."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from edgekd import api
from edgekd.cli import INTERNAL_ERROR, main

from .faults.helpers import assert_one_line_error


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


def _not_called(*_args, **_kwargs):
    raise AssertionError("measured before checking where the results go")


@pytest.mark.parametrize("command,api_name", [
    (["bench", "{tmp}", "--out", "{bad}"], "bench"),
    (["bench", "{tmp}", "--json", "{bad}/report.json"], "bench"),
    (["gate", "{tmp}/report.json", "--junit", "{bad}/x.xml"], "gate"),
    (["gate", "{tmp}/report.json", "--summary", "{bad}/summary.md"], "gate"),
    (["compare", "{tmp}/a.json", "{tmp}/b.json", "--json", "{bad}/y.json"], "compare"),
    (["compare", "{tmp}/a.json", "{tmp}/b.json", "--markdown", "{bad}/y.md"], "compare"),
], ids=["bench-out", "bench-json", "gate-junit", "gate-summary", "compare-json", "compare-markdown"])
def test_unwritable_output_is_refused_before_any_work(monkeypatch, tmp_path, command, api_name):
    # Tests run as root, so chmod would not stop a write; a path below a regular file cannot be created by anyone.
    (tmp_path / "file.txt").write_text("not a folder")
    bad = tmp_path / "file.txt" / "out"
    monkeypatch.setattr(api, api_name, _not_called)
    args = [a.format(tmp=tmp_path, bad=bad) for a in command]
    option = next(a for a in args if a.startswith("--"))
    assert_one_line_error(CliRunner().invoke(main, args), str(bad), "not writable", option)


def test_output_folder_for_bench_is_created(monkeypatch, tmp_path):
    monkeypatch.setattr(api, "bench", _boom)
    CliRunner().invoke(main, ["bench", str(tmp_path), "--out", str(tmp_path / "new" / "reports")])
    assert (tmp_path / "new" / "reports").is_dir() and not list((tmp_path / "new" / "reports").iterdir())
