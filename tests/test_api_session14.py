"""Trial defects of the Python API used from one long-lived process (session 14)."""
from __future__ import annotations

import threading
from pathlib import Path

import pytest

from edgekd import api
from edgekd.core.errors import ConfigError, EdgeKDError
from edgekd.pipeline.context import RunContext


def _held_by_another_thread(run_dir: str):
    """A thread that holds the process's run lock until the returned event is set."""
    from edgekd.pipeline.runner import one_run_per_process

    holding, release = threading.Event(), threading.Event()

    def other_run():
        with one_run_per_process(run_dir):
            holding.set()
            release.wait(10)

    thread = threading.Thread(target=other_run)
    thread.start()
    holding.wait(10)
    return thread, release


@pytest.mark.parametrize("function", ["run", "ship"])
def test_a_second_run_in_another_thread_is_refused(monkeypatch, tmp_path, function):
    """Trial defect (session 14): two api.run calls in two threads at once broke each other (one failed at export with
    torch's banner, the other got no edgekd.log): stderr, warnings and torch are process-wide. The second is now
    refused in one line, before it writes anything."""
    monkeypatch.setattr("edgekd.pipeline.runner.run_from_file", lambda *a, **k: pytest.fail("ran"))
    thread, release = _held_by_another_thread("runs/th3")
    try:
        call = (lambda: api.run("c.yaml", out=tmp_path / "th4")) if function == "run" else \
            (lambda: api.ship("m.onnx", data="digits", out=tmp_path / "th4"))
        with pytest.raises(ConfigError, match=r"^another edgekd run is in progress in this process \(runs/th3\); runs "
                                              r"share process-wide state \(stderr, warnings, torch\): run them one after "
                                              r"another, or in separate processes$"):
            call()
    finally:
        release.set()
        thread.join()
    assert not (tmp_path / "th4").exists()
    ctx = RunContext(cfg=None, config_path=tmp_path / "c.yaml", run_dir=tmp_path, manifest=None, outcomes={})
    monkeypatch.setattr("edgekd.pipeline.runner.run_from_file", lambda *a, **k: ctx)
    assert api.run("c.yaml", out=tmp_path / "th4") is ctx  # once the other run is over
    from edgekd.pipeline.runner import one_run_per_process

    with one_run_per_process("a"), one_run_per_process("a"):  # api.ship -> api.run -> run_pipeline: one thread
        pass


def test_resume_into_a_folder_holding_another_run_is_refused(monkeypatch, tmp_path):
    """Trial defect (session 14): resume=True into a folder holding another run (api.ship of another model, or another
    config file with another name) went on as a changed config: it retrained everything, or replaced the run and
    deleted its trained models. Refused now, naming the run the folder holds; the same file edited in place (or a
    dict config, which has no file) still resumes, and manifests from before the name was recorded still work."""
    import json

    from edgekd.pipeline.manifest import RunManifest
    from edgekd.pipeline.runner import refuse_resuming_another_run

    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny.yaml").write_text("name: tiny\n")
    (tmp_path / "other.yaml").write_text("name: other\n")
    run = tmp_path / "runs" / "rep3"
    run.mkdir(parents=True)
    RunManifest.open(run, "h", "tiny.yaml", "image-classification", "tiny").save()
    assert json.loads((run / "manifest.json").read_text())["name"] == "tiny"
    refused = r"^runs/rep3: holds run 'tiny' of tiny\.yaml; --resume \(resume=True\) continues the same run: give its file"
    with pytest.raises(ConfigError, match=refused):
        refuse_resuming_another_run(Path("runs/rep3"), "mlp", Path("runs/rep3/edgekd.yaml"))  # api.ship of mlp.onnx
    with pytest.raises(ConfigError, match=refused):
        refuse_resuming_another_run(Path("runs/rep3"), "other", Path("other.yaml"))
    refuse_resuming_another_run(Path("runs/rep3"), "tiny", tmp_path / "tiny.yaml")  # edited in place: resumes
    refuse_resuming_another_run(Path("runs/rep3"), "tiny", tmp_path / "run(config)")  # its contents as a dict (ctx.cfg)
    old = json.loads((run / "manifest.json").read_text())
    del old["name"]  # written before the name was recorded: judged by its file
    (run / "manifest.json").write_text(json.dumps(old))
    refuse_resuming_another_run(Path("runs/rep3"), "tiny", Path("tiny.yaml"))
    with pytest.raises(ConfigError, match=r"^runs/rep3: holds the run of tiny\.yaml; --resume"):
        refuse_resuming_another_run(Path("runs/rep3"), "other", Path("other.yaml"))
    old["config_path"] = str(tmp_path / "run(config)")  # a dict config: no file to compare
    (run / "manifest.json").write_text(json.dumps(old))
    refuse_resuming_another_run(Path("runs/rep3"), "tiny", tmp_path / "run(config)")


@pytest.mark.parametrize("function", ["run", "ship"])
def test_log_none_is_silent_and_a_bad_log_is_refused_first(monkeypatch, tmp_path, function):
    """Trial defect (session 14): api.run(..., log=None) crashed with a TypeError in the first stage and left a half-made
    run folder, which the rerun then refused. None is now silence; a log that is not callable is refused before
    anything is written."""
    seen = {}
    ctx = RunContext(cfg=None, config_path=tmp_path / "c.yaml", run_dir=tmp_path, manifest=None, outcomes={})
    monkeypatch.setattr("edgekd.pipeline.runner.run_from_file", lambda *a, **k: seen.update(k) or ctx)
    if function == "run":
        api.run("c.yaml", log=None)
        seen["log"]("[1/7 teachers] running")  # said to nobody
        call = lambda: api.run("c.yaml", log="quiet")  # noqa: E731
    else:
        call = lambda: api.ship("m.onnx", data="digits", out=tmp_path / "s", log=5)  # noqa: E731
    with pytest.raises(ConfigError, match=rf"^{function}\(log=.*\): expected a function taking one line \(print, the "
                                          r"default\), or None for no stage lines \(notes and warnings still go to stderr and RUN/edgekd.log\)$"):
        call()
    assert not (tmp_path / "s").exists()


def test_run_takes_back_the_config_a_run_returned(monkeypatch, tmp_path, tiny_config):
    """Trial defect (session 14): api.run(ctx.cfg) raised a raw TypeError from pathlib, and api.run(ctx.cfg.model_dump())
    was refused ("data.image_size: applies to image files ... remove it": every default dumped). The config object is
    now taken as the keys it was given; anything else that is no path or dict is one ConfigError."""
    from edgekd.pipeline.config import validate_config

    seen = {}
    ctx = RunContext(cfg=None, config_path=tmp_path / "c.yaml", run_dir=tmp_path, manifest=None, outcomes={})
    monkeypatch.setattr("edgekd.pipeline.runner.run_pipeline",
                        lambda config, config_path, run_dir, **k: seen.update(config=config) or ctx)
    monkeypatch.chdir(tmp_path)
    cfg = validate_config(tiny_config, "tiny.yaml")
    assert api.run(cfg, out="runs/again") is ctx
    assert seen["config"] == cfg
    with pytest.raises(ConfigError, match=r"^run\(config=<int>\): expected a pipeline file's path, a dict of its "
                                          r"contents, or the config of a run \(ctx.cfg\)$"):
        api.run(5)


def test_compare_and_gate_take_report_dicts_wherever_they_take_paths(report_path):
    """Trial defect (session 14): api.compare(dict, path) and api.gate(path, baseline=dict) raised a raw TypeError from
    pathlib, while api.gate(dict) worked. Every report argument now takes the dict bench() returns."""
    import json

    report = json.loads(report_path.read_text())
    assert api.compare(report, report_path) == api.compare(report_path, report_path)
    assert api.gate(report_path, baseline=report).summary == api.gate(report_path, baseline=report_path).summary
    with pytest.raises(ConfigError, match=r"^compare\(\): report_b must be a report.json path or the dict bench\(\) "
                                          r"returns, not int$"):
        api.compare(report, 5)


def test_json_text_given_as_a_report_path_is_one_line(report_path):
    """Trial defect (session 14): api.gate(json_text) raised a raw OSError "File name too long": JSON text where a path
    belongs is now one line saying to give the path, or the dict from json.loads."""
    text = report_path.read_text()
    for call, argument, caller in ((lambda: api.gate(text), "report", "gate"),
                                   (lambda: api.gate(report_path, baseline=text), "baseline", "gate"),
                                   (lambda: api.compare(text, report_path), "report_a", "compare")):
        with pytest.raises(ConfigError, match=rf"^{caller}\(\): {argument} is JSON text, not a path; give the "
                                              r"report.json's path, or the report as a dict \(json.loads it first\)$"):
            call()


def test_compare_of_a_report_page_names_its_report_json(report_path, tmp_path):
    """Trial defect (session 14): api.compare("report.json", "report.md") said "not valid JSON ... cut short or
    edited" of the page; it now says what gate says: the report for people, give the report.json beside it."""
    from tests.faults.helpers import assert_one_line_error, invoke

    page = tmp_path / "report.md"
    page.write_text("# report\n")
    with pytest.raises(ConfigError, match=rf"^compare\(\): report_b {page} is the report for people; give the "
                                          rf"report.json beside it: {report_path}$"):
        api.compare(report_path, page)
    assert_one_line_error(invoke("compare", report_path, page), f"edgekd compare: REPORT_B {page} is the report for "
                                                                f"people; give the report.json beside it: {report_path}")


def test_ship_arguments_are_named_in_pythons_words(monkeypatch, tmp_path):
    """Trial defect (session 14): api.ship(targets=[]) answered in the CLI's words ("separated by commas ... or leave
    --targets out"), max_drop="0.5" was "edgekd ship: gate.max_drop: must be a number", and
    targets=["x86-cpu,arm64-cpu"] one unknown target ("did you mean 'arm64-cpu'?"). Each now names ship()'s argument,
    and a comma inside a list item separates targets as --targets' does."""
    from edgekd.pipeline.ship_options import check_targets, name_gate_limits, target_list, typed_on_the_command_line

    monkeypatch.chdir(tmp_path)
    model = tmp_path / "m.onnx"
    model.write_bytes(b"")
    with pytest.raises(ConfigError, match=r"^targets: no target named; give a list of device profiles \(see "
                                          r"edgekd.api.targets\(\)\), or leave targets out \(None\) for x86-cpu$"):
        api.ship(model, "digits", targets=[])
    with typed_on_the_command_line(), pytest.raises(ConfigError, match=r"^--targets: no target named; give device "
                                                                       r"profiles separated by commas"):
        check_targets([])
    with pytest.raises(ConfigError, match=r"^max_drop: must be a number, not str '0.5'$"):
        api.ship(model, "digits", max_drop="0.5")
    assert name_gate_limits("edgekd ship: gate.max_size_kb: must be > 0, got -1") == "max_size_kb: must be > 0, got -1"
    with typed_on_the_command_line():
        assert name_gate_limits("edgekd ship: gate.min_speedup: must be > 0") == "--min-speedup: must be > 0"
    assert target_list(["x86-cpu,arm64-cpu", " intel-cpu ", ","]) == ["x86-cpu", "arm64-cpu", "intel-cpu"]
    assert target_list("x86-cpu, intel-cpu") == ["x86-cpu", "intel-cpu"] and target_list(None) is None
    assert not (tmp_path / "runs").exists()


def test_a_refused_resume_leaves_the_other_runs_log_alone(monkeypatch, tmp_path):
    """Review (session 14): a --resume refused because the folder holds another run wrote the refused command's header
    and its error into that other run's edgekd.log, the folder the refusal exists to leave alone."""
    import shutil

    from edgekd import api
    from edgekd.pipeline.manifest import RunManifest

    monkeypatch.chdir(tmp_path)
    shutil.copy(Path(__file__).resolve().parents[1] / "configs" / "quickstart.yaml", tmp_path / "other.yaml")
    (tmp_path / "tiny.yaml").write_text("name: tiny\n")
    run = tmp_path / "runs" / "tiny"
    run.mkdir(parents=True)
    RunManifest.open(run, "h", "tiny.yaml", "image-classification", "tiny").save()
    (run / "edgekd.log").write_text("the tiny run's log\n")
    with pytest.raises(ConfigError, match=r"holds run 'tiny' of tiny\.yaml"):
        api.run("other.yaml", out="runs/tiny", resume=True)
    assert (run / "edgekd.log").read_text() == "the tiny run's log\n"


def test_a_folder_holding_another_run_is_not_offered_resume(monkeypatch, tmp_path):
    """Regression trial (session 14): `edgekd run tiny.yaml --out runs/ens` into a folder holding run 'ens' advised
    --resume, which the refusal of resuming another run then refused; the folder's run is named and only --force or
    another --out offered. The same run without --resume is still told to pass --resume."""
    from edgekd.pipeline.manifest import RunManifest
    from edgekd.pipeline.runner import refuse_existing_run

    run = tmp_path / "ens"
    run.mkdir()
    RunManifest.open(run, "h", "ens.yaml", "image-classification", "ens").save()
    with pytest.raises(ConfigError, match=r"ens: holds run 'ens', not 'tiny'; give --out \(out=\) a new folder, or pass "
                                          r"--force") as refused:
        refuse_existing_run(run, False, False, tmp_path / "tiny.yaml", "tiny")
    assert "--resume" not in str(refused.value)
    with pytest.raises(ConfigError, match=r"a run already exists here; pass --resume"):
        refuse_existing_run(run, False, False, tmp_path / "ens.yaml", "ens")


def test_a_report_dict_is_named_as_the_dict_given_not_as_bench_output():
    """Regression trial (session 14): api.gate({...}) named its report 'the report given to gate() (from bench())',
    a claim about where the dict came from, beside CLI words (--baseline) in a Python call."""
    with pytest.raises(EdgeKDError) as refused:
        api.gate({"foo": 1})
    assert "from bench()" not in str(refused.value) and "--baseline" not in str(refused.value)
