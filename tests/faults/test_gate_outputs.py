"""`edgekd gate --junit FILE --summary FILE` replaced any file (a trial, session 11: a user's notes, a bundle's
manifest.json, which bench then refused as not JSON); they replace only what a gate wrote there before."""
from __future__ import annotations

import shutil

from tests.faults.helpers import assert_one_line_error, invoke


def test_gate_outputs_never_replace_a_users_file_but_replace_their_own(tmp_path, finished_run):
    report = finished_run / "report.json"
    notes = tmp_path / "notes.md"
    notes.write_text("important\n")
    assert_one_line_error(invoke("gate", report, "--summary", notes), "--summary", "notes.md: exists and is not a gate's summary")
    bundle = shutil.copytree(finished_run / "bundle" / "x86-cpu", tmp_path / "bundle")
    manifest = (bundle / "manifest.json").read_text()
    assert_one_line_error(invoke("gate", report, "--junit", bundle / "manifest.json"), "--junit", "is not a gate's JUnit XML")
    assert notes.read_text() == "important\n" and (bundle / "manifest.json").read_text() == manifest

    for _ in range(2):  # the second run replaces what the first wrote
        result = invoke("gate", report, "--junit", tmp_path / "gate.xml", "--summary", tmp_path / "gate.md")
        assert result.exit_code == 0, result.output[-2000:]
    assert "<testsuites" in (tmp_path / "gate.xml").read_text() and "### edgekd gate: PASS" in (tmp_path / "gate.md").read_text()
