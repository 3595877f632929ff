"""A stage that runs again makes what later stages wrote stale (new-user trial: a changed config resumed and then
interrupted left the old bundles and report.json behind, with quantize..gate still marked done, and `edgekd gate`
passed the old report). Until the run has redone them, `edgekd gate` and `edgekd bench` refuse those files in one
line, --only on a later stage says what to redo, and --resume redoes them."""
from __future__ import annotations

import json
import shutil

from .helpers import assert_one_line_error, invoke


def test_files_of_stages_after_a_rerun_are_refused_until_the_run_redoes_them(tmp_path, finished_run):
    shutil.copyfile(finished_run.parent / "pipeline.yaml", tmp_path / "pipeline.yaml")
    run = shutil.copytree(finished_run, tmp_path / "run")
    assert invoke("gate", run / "report.json").exit_code == 0  # the finished run's report gates

    # The export stage runs again and the run stops there (as a Ctrl-C after it would).
    redone = invoke("run", tmp_path / "pipeline.yaml", "--out", run, "--only", "export", "--force")
    assert redone.exit_code == 0, redone.output[-3000:]
    stages = json.loads((run / "manifest.json").read_text())["stages"]
    assert stages["export"]["status"] == "done"
    assert {name: stages[name]["status"] for name in ("quantize", "compile", "bench", "gate")} == dict.fromkeys(
        ("quantize", "compile", "bench", "gate"), "stale")
    assert "'export' ran again" in stages["gate"]["stale_because"]
    # the gate's CI files said PASS of the model made before: now stale, a failed check naming the stage (a trial)
    verdict = json.loads((run / "gate.json").read_text())
    assert verdict["passed"] is False and verdict["stale"] is True and "'export' ran again" in verdict["summary"]
    assert "stale" in (run / "gate-summary.md").read_text() and "PASS" not in (run / "gate-summary.md").read_text()
    assert "<failure" in (run / "gate-junit.xml").read_text()
    # ... and the reports people read say so at their top (a trial: they kept the old run's numbers without a word)
    assert (run / "report.md").read_text().startswith("> **STALE**: stale: 'export' ran again")
    assert '<body><p class="stale"><b>STALE</b>: stale: &#x27;export&#x27; ran again' in (run / "report.html").read_text()

    assert_one_line_error(invoke("gate", run / "report.json"), "report.json: stale", "'bench' stage has not run again "
                          "since 'export' ran again", "--resume")
    assert_one_line_error(invoke("bench", run), f"the bundles of {run}: stale", "'compile' stage", "--resume")
    assert_one_line_error(invoke("bench", run / "bundle" / "x86-cpu"), "stale")
    assert_one_line_error(invoke("run", tmp_path / "pipeline.yaml", "--out", run, "--only", "gate", "--resume"),
                          "stage 'gate' needs 'quantize' redone", "'export' ran again", "--resume")

    resumed = invoke("run", tmp_path / "pipeline.yaml", "--out", run, "--resume")
    assert resumed.exit_code == 0, resumed.output[-3000:]
    assert "[2/7 distill] up to date" in resumed.output and "[4/7 quantize] running" in resumed.output
    assert invoke("gate", run / "report.json").exit_code == 0
    assert json.loads((run / "gate.json").read_text())["passed"] is True  # the gate stage's own verdict again
    assert "STALE" not in (run / "report.md").read_text() + (run / "report.html").read_text()


def test_resume_says_why_each_stage_runs_again(tmp_path, finished_run):
    """A changed config resumed: the first stage it redoes names the key's part that changed, the later ones the
    stage that ran again before them (new-user trial: only `[4/7 quantize] running`)."""
    import yaml

    config = yaml.safe_load((finished_run.parent / "pipeline.yaml").read_text())
    config["gate"] = {**config.get("gate", {}), "max_drop": 7.5}
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump(config))
    run = shutil.copytree(finished_run, tmp_path / "run")
    resumed = invoke("run", tmp_path / "pipeline.yaml", "--out", run, "--resume")
    assert resumed.exit_code == 0, resumed.output[-3000:]
    lines = [line for line in resumed.output.splitlines() if "] running" in line]
    assert lines and "again: changed since it ran: gate" in lines[0], lines
    assert all("again:" in line for line in lines), lines
    assert "'" + lines[0].split()[1].rstrip("]") + "' ran again" in lines[1], lines


def test_only_a_later_stage_without_a_run_leaves_no_folder(tmp_path, finished_run):
    """A trial: `edgekd run CONFIG --out NEW --only gate` was refused but left NEW/manifest.json with no stage, and the
    next plain run then said "a run already exists here"."""
    shutil.copyfile(finished_run.parent / "pipeline.yaml", tmp_path / "pipeline.yaml")
    assert_one_line_error(invoke("run", tmp_path / "pipeline.yaml", "--out", tmp_path / "new", "--only", "gate"),
                          "--only gate", "holds no run yet", "leave out --only")
    assert not (tmp_path / "new").exists()


def test_the_ci_files_and_the_reports_name_one_cause_the_first_stage_that_ran_again(tmp_path):
    """Trial defect (session 12): after a --force rerun killed in bench, gate.json said 'bench' ran again (rewritten at
    each stage) while report.md and edgekd bench said 'teachers' (the first)."""
    from types import SimpleNamespace

    from edgekd.pipeline.stale_outputs import mark_gate_outputs_stale

    layout = SimpleNamespace(run_dir=tmp_path, gate_json=tmp_path / "gate.json", gate_junit=tmp_path / "gate-junit.xml",
                             gate_summary=tmp_path / "gate-summary.md")
    layout.gate_json.write_text(json.dumps({"passed": True, "summary": "gate: PASS", "checks": []}))
    (tmp_path / "report.md").write_text("# edgekd report: r\n")
    for stage in ("teachers", "distill", "bench"):
        mark_gate_outputs_stale(layout, "r", f"'{stage}' ran again at 17:46")
    summary = json.loads(layout.gate_json.read_text())["summary"]
    assert "'teachers' ran again" in summary and "'bench'" not in summary
    assert (tmp_path / "report.md").read_text().startswith("> **STALE**: stale: 'teachers' ran again")


def test_a_refused_rerun_leaves_the_later_stages_as_they_were(tmp_path, finished_run, monkeypatch):
    """Trial defect (session 14): a changed config resumed and refused in a stage's run (the old result kept) marked
    the later stages stale "'distill' ran again at T" before the attempt failed; the old config resumed next then
    skipped that stage ("up to date") and still redid export..gate, saying it had run again, which it never did."""
    import yaml

    from edgekd.core.errors import StageError
    from edgekd.pipeline.stages.export import ExportStage

    config = yaml.safe_load((finished_run.parent / "pipeline.yaml").read_text())
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "changed.yaml").write_text(yaml.safe_dump({**config, "export": {"parity_samples": 17}}))
    run = shutil.copytree(finished_run, tmp_path / "run")
    gate_json = (run / "gate.json").read_text()

    def refuse(self):
        raise StageError("export: refused for this test")

    with monkeypatch.context() as patched:
        patched.setattr(ExportStage, "run", refuse)
        refused = invoke("run", tmp_path / "changed.yaml", "--out", run, "--resume")
    assert refused.exit_code != 0 and "refused for this test" in refused.output
    stages = json.loads((run / "manifest.json").read_text())["stages"]
    assert stages["export"]["status"] == "done"  # the earlier result stays, and so do the later ones
    assert {stages[name]["status"] for name in ("quantize", "compile", "bench", "gate")} == {"done"}
    assert (run / "gate.json").read_text() == gate_json and "STALE" not in (run / "report.md").read_text()
    assert invoke("gate", run / "report.json").exit_code == 0

    resumed = invoke("run", tmp_path / "pipeline.yaml", "--out", run, "--resume")
    assert resumed.exit_code == 0, resumed.output[-3000:]
    assert "ran again" not in resumed.output and "running" not in resumed.output, resumed.output
