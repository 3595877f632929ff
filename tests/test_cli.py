"""The CLI's exit codes: 2 bad input, 3 a bug (never 1, which CI reads as a failed gate); `edgekd run`'s gate
verdict is this invocation's, never a leftover gate.json."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from edgekd import api, cli
from edgekd.cli import INTERNAL_ERROR, main
from edgekd.pipeline.context import RunContext

from .device.test_gate import make_report
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


@pytest.mark.parametrize("args", [["--batch", "0"], ["--runs", "0"], ["--threads", "0"], ["--rounds", "0"],
                                  ["--warmup-runs", "-1"], ["--min-seconds", "-1"], ["--warmup-seconds", "-0.5"],
                                  ["--min-seconds", "1e9"], ["--warmup-seconds", "601"]])
def test_bench_refuses_out_of_range_numbers_before_any_work(monkeypatch, tmp_path, args):
    monkeypatch.setattr(api, "bench", _not_called)
    result = CliRunner().invoke(main, ["bench", str(tmp_path), *args])
    assert result.exit_code == 2 and f"Invalid value for '{args[0]}'" in result.output, result.output


@pytest.mark.parametrize("args", [["--max-drop", "-5"], ["--max-drop", "nan"], ["--min-speedup", "0"], ["--min-speedup", "inf"],
                                  ["--max-size-kb", "-1"]])
def test_gate_refuses_out_of_range_thresholds(monkeypatch, tmp_path, args):
    monkeypatch.setattr(api, "gate", _not_called)
    result = CliRunner().invoke(main, ["gate", str(tmp_path / "report.json"), *args])
    assert result.exit_code == 2 and f"Invalid value for '{args[0]}'" in result.output, result.output


def test_every_option_has_help_text():
    import click

    for name, command in main.commands.items():
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.help, f"edgekd {name} {param.opts[0]} has no --help text"


def _run_with(monkeypatch, tmp_path, outcomes: dict, passed: bool):
    (tmp_path / "report.json").write_text(json.dumps(make_report()))
    (tmp_path / "gate.json").write_text(json.dumps({"passed": passed, "summary": f"gate: {'PASS' if passed else 'FAIL'} (1 failed)",
                                                    "checks": []}))
    ctx = RunContext(cfg=None, config_path=tmp_path / "c.yaml", run_dir=tmp_path, manifest=None, outcomes=outcomes)
    monkeypatch.setattr("edgekd.pipeline.runner.run_from_file", lambda *a, **k: ctx)
    (tmp_path / "c.yaml").write_text("name: x\n")
    return CliRunner().invoke(cli.main, ["run", str(tmp_path / "c.yaml"), "--only", "bench", "--force"])


def test_run_without_the_gate_stage_reports_no_verdict(monkeypatch, tmp_path):
    result = _run_with(monkeypatch, tmp_path, {"bench": "ran"}, passed=False)  # gate.json from an earlier, failed run
    assert result.exit_code == 0, result.output
    assert "gate: not run (finish the run: edgekd run " in result.output and "FAIL" not in result.output
    assert "x86-cpu/int8" in result.output  # the fresh bench table is still shown


def test_run_with_the_gate_stage_exits_1_on_its_failure(monkeypatch, tmp_path):
    result = _run_with(monkeypatch, tmp_path, {"bench": "ran", "gate": "ran"}, passed=False)
    assert result.exit_code == 1 and "gate: FAIL (1 failed)" in result.output


def test_edgekd_warnings_print_as_one_warning_within_120_columns(monkeypatch):
    """One `edgekd: warning:` per warning, wrapped within a log's 120 columns (three quickstart warnings once ran past
    them), continued on indented lines."""
    from edgekd.data import calibration

    recipe = calibration.CalibrationRecipe(name="cli-warning-1024", count=1024)
    monkeypatch.setattr(api, "targets", lambda: calibration._warn_pool_too_small(recipe, 400) or [])
    monkeypatch.setattr("warnings.showwarning", __import__("warnings").showwarning)  # restored after the test
    result = CliRunner().invoke(main, ["targets"])
    assert result.exit_code == 0
    lines = result.stderr.splitlines()
    start = next(i for i, line in enumerate(lines) if "cli-warning-1024" in line)
    block = [lines[start]] + [line for line in lines[start + 1:] if line.startswith("  ")]
    assert block[0].startswith("edgekd: warning: ") and len(block) > 1 and all(len(line) <= 120 for line in block)
    assert " ".join(line.strip() for line in block) == (
        "edgekd: warning: calibration recipe 'cli-warning-1024' asks for 1024 samples but the train split "
        "holds 400: using all 400 with the split's own class mix (not balanced); to say so, choose a recipe with at "
        "most 400 samples (e.g. train-256, in quantize.calibration of the pipeline file; edgekd ship writes RUN/edgekd.yaml)")


def test_gate_help_shows_a_single_percent_sign():
    result = CliRunner().invoke(main, ["gate", "--help"])
    assert "3%)" in " ".join(result.output.split()) and "%%" not in result.output


def test_bench_json_says_where_it_wrote(monkeypatch, tmp_path):
    monkeypatch.setattr(api, "bench", lambda *a, **k: {**make_report(), "warnings": []})
    result = CliRunner().invoke(main, ["bench", str(tmp_path), "--json", str(tmp_path / "r.json")])
    assert result.exit_code == 0, result.output
    assert f"wrote {tmp_path / 'r.json'}" in result.output and json.loads((tmp_path / "r.json").read_text())["run"] == "t"


@pytest.mark.parametrize("command", [["run", "c.yaml"], ["ship", "m.onnx", "--data", "digits"]])
def test_resume_and_force_together_are_refused(monkeypatch, command):
    monkeypatch.setattr(api, command[0], _not_called)
    result = CliRunner().invoke(main, [*command, "--resume", "--force"])
    assert_one_line_error(result, f"edgekd {command[0]}: --resume and --force contradict each other", "give one of them")


@pytest.mark.parametrize("option", ["--summary", "--junit"])
def test_gate_refuses_to_write_over_the_report_it_gates(monkeypatch, tmp_path, option):
    report = tmp_path / "report.json"
    report.write_text(json.dumps(make_report()))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["gate", str(report), option, "./sub/../report.json"])
    assert_one_line_error(result, f"edgekd gate: {option} sub/../report.json is REPORT (the report being gated)",
                          f"give {option} another path")
    assert json.loads(report.read_text()) == make_report()


def test_compare_refuses_to_write_over_a_report_it_compares(tmp_path):
    for name in ("a.json", "b.json"):
        (tmp_path / name).write_text(json.dumps(make_report()))
    result = CliRunner().invoke(main, ["compare", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--json", str(tmp_path / "b.json")])
    assert_one_line_error(result, "--json", "is REPORT_B, which it would overwrite")
    assert json.loads((tmp_path / "b.json").read_text()) == make_report()


@pytest.mark.parametrize("args", [["--out", "{run}"], ["--out", "{run}/"], ["--json", "{run}/report.json"]])
@pytest.mark.parametrize("bench_input", ["{run}/bundle/x86-cpu", "{run}"])  # re-benching the run folder itself too
def test_bench_refuses_to_replace_a_run_folders_reports(monkeypatch, tmp_path, args, bench_input):
    """A bench report holds the bundles only: over a pipeline's report.json it would drop the teacher and the
    candidates not shipped (and `gate --reference teacher` would then fail)."""
    run = tmp_path / "run"
    (run / "bundle" / "x86-cpu").mkdir(parents=True)
    (run / "manifest.json").write_text(json.dumps({"schema": "edgekd.run/1", "stages": {}}))
    (run / "report.json").write_text(json.dumps(make_report()))
    monkeypatch.setattr(api, "bench", _not_called)
    fill = [a.format(run=run) for a in (bench_input, *args)]
    result = CliRunner().invoke(main, ["bench", *fill])
    assert_one_line_error(result, f"{args[0]} ", f"would replace the pipeline's report.json of the run folder {run}",
                          f"choose another {args[0]}, e.g. {run / 'device'}")
    assert json.loads((run / "report.json").read_text()) == make_report()


def test_bench_may_rewrite_its_own_earlier_report(monkeypatch, tmp_path):
    (tmp_path / "report.json").write_text('{"schema": "edgekd.report/1"}')  # an earlier bench's report: no run manifest
    monkeypatch.setattr(api, "bench", lambda *a, **k: {**make_report(), "warnings": []})
    result = CliRunner().invoke(main, ["bench", str(tmp_path), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "report.json").read_text())["run"] == "t"


def test_debug_may_follow_the_command(tmp_path):
    """Trial defect (session 12): `edgekd gate FILE --debug`, where the error's advice sends people, was 'No such
    option'; only `edgekd --debug gate FILE` worked."""
    (tmp_path / "r.json").write_text("{}")
    after = CliRunner().invoke(main, ["gate", str(tmp_path / "r.json"), "--debug"])
    before = CliRunner().invoke(main, ["--debug", "gate", str(tmp_path / "r.json")])
    assert after.exit_code == before.exit_code == 2 and "No such option" not in after.output
    assert "Traceback" in after.output and "Traceback" in before.output


@pytest.mark.parametrize("command", [["bench", "BUNDLE", "--json", "newdir/"], ["schema", "--out", "newdir/"],
                                     ["compare", "a.json", "b.json", "--markdown", "newdir/"],
                                     ["gate", "report.json", "--junit", "newdir/"]])
def test_an_output_file_given_as_a_folder_is_refused(tmp_path, monkeypatch, command):
    """Carried defect (session 13): `edgekd bench --json newdir/` wrote a file named newdir (click's Path drops the
    trailing slash); a file option ending in / is refused before any work, naming the option."""
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, command)
    assert result.exit_code == 2
    assert "names a folder; give a file path inside it" in result.output
    assert not (tmp_path / "newdir").exists()


def test_init_given_a_folder_suggests_a_yaml_file_it_takes(tmp_path, monkeypatch):
    """Trial defect (session 14): `edgekd init newdir/` suggested newdir/out.json, which init then refused (a
    pipeline file ends in .yaml); the suggestion is a name the command takes, and following it works."""
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["init", "newdir/"])
    assert result.exit_code == 2 and "e.g. newdir/edgekd.yaml" in result.output
    assert CliRunner().invoke(main, ["init", "newdir/edgekd.yaml"]).exit_code == 0
    assert (tmp_path / "newdir" / "edgekd.yaml").is_file()
    existing = CliRunner().invoke(main, ["init", "newdir"])  # an existing folder without the slash: the same advice
    assert existing.exit_code == 2 and "e.g. newdir/edgekd.yaml" in existing.output
