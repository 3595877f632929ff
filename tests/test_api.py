"""The Python API behaves like the CLI: gate failures, threshold arguments, defaults."""
from __future__ import annotations

import inspect
import json
import re
from pathlib import Path

import pytest

from edgekd import api, cli
from edgekd.core.errors import ArtifactError, ConfigError, GateFailed
from edgekd.device.gate import Thresholds
from edgekd.pipeline.context import RunContext

from .device.test_gate import make_report


def test_gate_refuses_unknown_keywords_naming_the_valid_ones(report_path):
    with pytest.raises(ConfigError, match=r"unknown keyword 'max_dorp'; valid: reference, max_drop, drop_type"):
        api.gate(report_path, max_dorp=5.0)


def test_gate_leaves_the_callers_thresholds_alone(report_path):
    limits = Thresholds(max_drop=5.0)
    result = api.gate(report_path, limits, max_drop=0.1, min_speedup=1.5)
    assert not result.passed
    assert limits == Thresholds(max_drop=5.0)


def test_bad_threshold_arguments_are_blamed_on_the_argument(report_path):
    with pytest.raises(ConfigError, match=r"drop_type: must be one of absolute, relative, got 'relatve'"):
        api.gate(report_path, drop_type="relatve")
    with pytest.raises(ConfigError, match=r"max_drop: must be a number, not str '1'") as caught:
        api.gate(report_path, max_drop="1")
    assert str(report_path) not in str(caught.value)
    with pytest.raises(ConfigError, match=r"max_drop: must be a finite number, got nan"):
        api.gate(report_path, max_drop=float("nan"))
    with pytest.raises(ValueError, match=r"drop_type\n.*must be one of absolute, relative, got 'relatve'"):
        Thresholds(drop_type="relatve")  # refused where it is built, by the one model's validator


def test_bad_thresholds_saved_in_the_report_are_blamed_on_the_report(tmp_path):
    path = tmp_path / "report.json"
    path.write_text(json.dumps(make_report(max_drop="1")))
    with pytest.raises(ArtifactError, match=r"report.json: gate.max_drop must be a number"):
        api.gate(path)


def _fake_run(monkeypatch, tmp_path, outcomes: dict, passed: bool):
    """api.run around a pipeline that did `outcomes` and left a gate.json saying `passed`."""
    (tmp_path / "gate.json").write_text(json.dumps({"passed": passed, "summary": f"gate: {'PASS' if passed else 'FAIL'} (x)",
                                                    "checks": []}))
    ctx = RunContext(cfg=None, config_path=tmp_path / "c.yaml", run_dir=tmp_path, manifest=None, outcomes=outcomes)
    monkeypatch.setattr("edgekd.pipeline.runner.run_from_file", lambda *a, **k: ctx)
    return ctx


def test_run_raises_gate_failed_with_the_verdict_line(monkeypatch, tmp_path):
    ctx = _fake_run(monkeypatch, tmp_path, {"bench": "ran", "gate": "ran"}, passed=False)
    with pytest.raises(GateFailed, match=r"^gate: FAIL \(x\)$") as caught:
        api.run("c.yaml")
    assert caught.value.context is ctx and caught.value.exit_code == 1
    _fake_run(monkeypatch, tmp_path, {"bench": "ran", "gate": "ran"}, passed=True)
    assert api.run("c.yaml").gate_verdict()["passed"]


def test_run_ignores_a_gate_json_left_by_an_earlier_run(monkeypatch, tmp_path):
    ctx = _fake_run(monkeypatch, tmp_path, {"bench": "ran"}, passed=False)  # --only bench --force
    assert api.run("c.yaml", only=["bench"]) is ctx and ctx.gate_verdict() is None


def test_bench_defaults_match_the_cli(tmp_path):
    given = cli.bench_cmd.make_context("bench", [str(tmp_path)]).params["batch_sizes"]
    # Neither names batch sizes: both time the batches the bundles' profiles name (device/bench.profiles_batch_sizes).
    assert inspect.signature(api.bench).parameters["batch_sizes"].default is None and not given


def test_run_takes_a_single_stage_given_as_a_string(monkeypatch, tmp_path):
    seen = {}
    ctx = RunContext(cfg=None, config_path=tmp_path / "c.yaml", run_dir=tmp_path, manifest=None, outcomes={})
    monkeypatch.setattr("edgekd.pipeline.runner.run_from_file", lambda *a, **k: seen.update(k) or ctx)
    api.run("c.yaml", only="gate")
    assert seen["only"] == ["gate"]
    with pytest.raises(ConfigError, match=r"run\(only=5\): expected a stage name or a list of them"):
        api.run("c.yaml", only=5)


@pytest.mark.parametrize("function", ["run", "ship"])
def test_resume_and_force_together_are_refused(monkeypatch, function):
    monkeypatch.setattr("edgekd.pipeline.runner.run_from_file", lambda *a, **k: pytest.fail("ran"))
    call = (lambda: api.run("c.yaml", resume=True, force=True)) if function == "run" else \
        (lambda: api.ship("m.onnx", data="digits", resume=True, force=True))
    with pytest.raises(ConfigError, match=rf"^{function}\(\): resume=True and force=True contradict each other"):
        call()


@pytest.mark.parametrize("kwargs, fragment", [
    ({"threads": -3}, "'threads' (--threads): -3; expected an integer in the range x>=1, or None"),
    ({"threads": "2"}, "'threads' (--threads): '2'; expected an integer"),
    ({"threads": 2.5}, "'threads' (--threads): 2.5; expected an integer"),
    ({"runs": 0}, "'runs' (--runs): 0; expected an integer in the range x>=1"),
    ({"rounds": 0}, "'rounds' (--rounds): 0; expected an integer in the range x>=1"),
    ({"warmup_runs": -1}, "'warmup_runs' (--warmup-runs): -1; expected an integer in the range x>=0"),
    ({"min_seconds": -1}, "'min_seconds' (--min-seconds): -1; expected a finite number in the range x>=0"),
    ({"warmup_seconds": float("inf")}, "'warmup_seconds' (--warmup-seconds): inf; expected a finite number"),
    ({"batch_sizes": [0]}, "'batch_sizes' (--batch): 0; expected an integer in the range x>=1"),
    ({"batch_sizes": 8}, "'batch_sizes' (--batch): 8; expected a list of batch sizes"),
    ({"memory": "no"}, "'memory' (--no-memory): 'no'; expected True or False"),
])
def test_bench_refuses_what_the_cli_refuses_naming_the_argument_and_range(monkeypatch, tmp_path, kwargs, fragment):
    monkeypatch.setattr("edgekd.device.bench.bench_bundles", lambda *a, **k: pytest.fail("measured"))
    with pytest.raises(ConfigError) as caught:
        api.bench(tmp_path, **kwargs)
    assert str(caught.value).startswith("bench(): invalid value for ") and fragment in str(caught.value), str(caught.value)


def test_bench_passes_checked_numbers_on(monkeypatch, tmp_path):
    import numpy as np

    seen = []
    monkeypatch.setattr("edgekd.device.bench.bench_bundles", lambda *a: seen.append(a) or {})
    api.bench(tmp_path, threads=np.int64(2), batch_sizes=[1, 4], rounds=2)
    _path, spec, threads, batch_sizes, *_ = seen[0]
    assert threads == 2 and type(threads) is int and batch_sizes == (1, 4) and spec.rounds == 2


def test_gate_of_a_folder_names_its_report_json(tmp_path, report_path):
    with pytest.raises(ConfigError, match=rf"^gate\(\): report {tmp_path} is a folder; give its report.json: {report_path}$"):
        api.gate(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"gate\(\): baseline .*empty is a folder; give a report.json file$"):
        api.gate(report_path, baseline=tmp_path / "empty")


def test_the_cli_gate_of_a_folder_or_a_page_names_the_command_and_its_report_json(tmp_path, report_path):
    """Trial defect (session 14): `edgekd gate runs/q` gave click's "File 'runs/q' is a directory." while api.gate("runs/q")
    named its report.json, and `edgekd gate runs/q/report.md` said "gate(): report ... is the report for people",
    telling a CLI user about a Python function. The CLI now reaches the same check, naming itself and its arguments."""
    from tests.faults.helpers import assert_one_line_error, invoke

    assert_one_line_error(invoke("gate", tmp_path), f"edgekd gate: REPORT {tmp_path} is a folder; give its report.json: "
                                                    f"{report_path}")
    page = tmp_path / "report.md"
    page.write_text("# report\n")
    message = assert_one_line_error(invoke("gate", page), f"edgekd gate: REPORT {page} is the report for people; give the "
                                                          f"report.json beside it: {report_path}")
    assert "gate()" not in message
    assert_one_line_error(invoke("gate", report_path, "--baseline", tmp_path), f"edgekd gate: --baseline {tmp_path} is a folder")
    with pytest.raises(ConfigError, match=r"^gate\(\): report .*report.md is the report for people"):
        api.gate(page)  # from Python: the function and its argument


def test_gate_writes_ci_outputs_but_never_over_its_inputs(tmp_path, report_path):
    from edgekd.core.errors import OutputError

    for output in ("junit", "summary"):
        with pytest.raises(OutputError, match=rf"^gate\(\): {output} .* is report \(the report being gated\), which it would"):
            api.gate(report_path, **{output: report_path})
    with pytest.raises(OutputError, match=r"summary .*x.xml is junit, which it would overwrite"):
        api.gate(report_path, junit=tmp_path / "x.xml", summary=tmp_path / "x.xml")
    assert json.loads(report_path.read_text()) == make_report()
    api.gate(report_path, junit=tmp_path / "gate.xml", summary=tmp_path / "gate.md")
    assert "<testcase" in (tmp_path / "gate.xml").read_text() and "### edgekd gate" in (tmp_path / "gate.md").read_text()


def test_bench_with_images_and_texts_is_refused_as_the_cli_refuses_it(tmp_path):
    """Trial defect (session 12): api.bench(images=..., texts=...) raised an error about --texts alone."""
    with pytest.raises(ConfigError, match=r"images and texts \(--images and --texts\): give one of them"):
        api.bench(tmp_path, images=tmp_path, texts=tmp_path / "t.txt")


def test_run_takes_a_config_dict_read_from_the_working_directory(monkeypatch, tmp_path, tiny_config):
    """Trial defect (session 13): api.run(dict_config, out=...) raised a bare TypeError from pathlib; a dict is now
    validated as a pipeline file's contents would be, its relative paths read from the working directory."""
    seen = {}
    ctx = RunContext(cfg=None, config_path=tmp_path / "c.yaml", run_dir=tmp_path, manifest=None, outcomes={})
    monkeypatch.setattr("edgekd.pipeline.runner.run_pipeline",
                        lambda config, config_path, run_dir, **k: seen.update(config=config, path=config_path, run=run_dir) or ctx)
    monkeypatch.chdir(tmp_path)
    assert api.run(tiny_config, out="runs/x") is ctx
    assert seen["config"].name == "tiny" and seen["path"].parent == tmp_path and seen["run"] == Path("runs/x")
    tiny_config["distill"]["temprature"] = 2
    with pytest.raises(ConfigError, match=r"^run\(config\): unknown key 'distill.temprature'"):
        api.run(tiny_config, out="runs/x")


@pytest.mark.parametrize("only", ["gat", ["teachers", "gat"]])
def test_an_unknown_stage_is_blamed_on_the_only_argument(monkeypatch, only):
    """Trial defect (session 13): api.run(only='gat') raised "--only gat: unknown stage", naming a CLI flag the
    caller never used."""
    monkeypatch.setattr("edgekd.pipeline.runner.run_from_file", lambda *a, **k: pytest.fail("ran"))
    with pytest.raises(ConfigError, match=rf"^run\(only={re.escape(repr(only))}\): unknown stage 'gat'; stages are teachers, "):
        api.run("c.yaml", only=only)


def test_run_returns_a_context_whose_config_is_the_one_its_docstring_names(tmp_path):
    """Trial defect (session 14): api.run's docstring promised a RunContext with (run_dir, manifest, config), but the
    attribute was ctx.cfg and ctx.config raised AttributeError. `config` is now a read-only name for it."""
    from edgekd.pipeline.config import PipelineConfig

    cfg = PipelineConfig.model_construct()
    ctx = RunContext(cfg=cfg, config_path=tmp_path / "c.yaml", run_dir=tmp_path, manifest=None)
    assert ctx.config is ctx.cfg is cfg
    with pytest.raises(AttributeError):
        ctx.config = None
    assert "config" in api.run.__doc__ and all(hasattr(ctx, name) for name in ("run_dir", "manifest", "config"))
