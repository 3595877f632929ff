"""Release gate: drops as documented in edgekd/device/gate.py and edgekd/core/metrics.py, every threshold, baselines, CI outputs."""
from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from edgekd.core.errors import ArtifactError
from edgekd.core.metrics import accuracy_drop
from edgekd.device.ci_outputs import junit_xml
from edgekd.device.gate import Thresholds, evaluate_report, gate_report, reference_top1, verdicts


def make_report(eval_sha="a" * 64, **gate) -> dict:
    def row(name, precision, top1, p50, kb, shipped=True):
        return {"artifact": name, "target": name.split("/")[0], "precision": precision, "shipped": shipped,
                "top1": top1, "p50_ms": p50, "bytes": int(kb * 1024)}
    return {"schema": "edgekd.report/1", "run": "t", "eval_set": {"samples": 100, "sha256": eval_sha},
            "references": {"teacher": {"top1": 0.95}, "student_fp32": {"top1": 0.90}},
            "gate": {"reference": "student_fp32", "max_drop": 1.0, "drop_type": "absolute", **gate},
            "rows": [row("x86-cpu/fp32", "fp32", 0.90, 2.0, 100, shipped=False), row("x86-cpu/int8", "int8", 0.885, 1.0, 30),
                     row("intel-cpu/int8", "int8", 0.87, None, 40)]}


def test_absolute_drop_is_top1_points():
    assert accuracy_drop(0.90, 0.885, "absolute") == pytest.approx(1.5)
    assert accuracy_drop(0.99, 0.97, "absolute") == pytest.approx(2.0)


def test_relative_drop_is_percent_of_the_reference():
    assert accuracy_drop(0.90, 0.885, "relative") == pytest.approx((1 - 0.885 / 0.90) * 100)
    assert accuracy_drop(0.50, 0.45, "relative") == pytest.approx(10.0)


def test_each_threshold_passes_and_fails_per_artifact():
    limits = Thresholds(max_drop=2.0, min_speedup=1.5, max_size_kb=35)
    checks = {(c.artifact, c.threshold): c for c in evaluate_report(make_report(), limits)}
    assert checks[("x86-cpu/int8", "max_drop")].passed          # 1.5 points <= 2
    assert not checks[("intel-cpu/int8", "max_drop")].passed    # 3 points > 2
    assert checks[("x86-cpu/int8", "min_speedup")].passed       # 2.0 / 1.0 = 2x >= 1.5
    assert not checks[("intel-cpu/int8", "min_speedup")].passed  # no latency: unverifiable is a failure
    assert checks[("x86-cpu/int8", "max_size_kb")].passed
    assert not checks[("intel-cpu/int8", "max_size_kb")].passed  # 40 KB > 35
    assert "3.00 points" in checks[("intel-cpu/int8", "max_drop")].reason
    assert ("x86-cpu/fp32", "max_drop") not in checks  # not shipped: not gated
    assert verdicts(list(checks.values())) == {"x86-cpu/int8": "PASS", "intel-cpu/int8": "FAIL"}


def test_relative_threshold_and_named_references():
    report = make_report()
    # x86-cpu/int8: 1.5 points absolute, 1.67 % relative; a 1.6 limit tells the two apart.
    absolute = evaluate_report(report, Thresholds(max_drop=1.6, drop_type="absolute"))
    relative = evaluate_report(report, Thresholds(max_drop=1.6, drop_type="relative"))
    assert [c.passed for c in absolute] == [True, False]
    assert [c.passed for c in relative] == [False, False]
    assert "1.67 %" in relative[0].reason
    assert reference_top1(report, "teacher") == 0.95
    assert reference_top1(report, "x86-cpu/fp32") == 0.90  # an artifact row can be the reference
    with pytest.raises(ArtifactError, match="no reference 'nope'"):
        reference_top1(report, "nope")


def test_baseline_from_another_report_must_share_the_evaluation_set():
    report, baseline = make_report(), make_report()
    baseline["references"]["student_fp32"]["top1"] = 0.886
    checks = evaluate_report(report, Thresholds(max_drop=0.5), baseline)
    assert [c.passed for c in checks] == [True, False]  # drops now 0.1 and 1.6 points
    with pytest.raises(ArtifactError, match="different evaluation set"):
        evaluate_report(report, Thresholds(), make_report(eval_sha="b" * 64))


def test_junit_has_one_testcase_per_artifact_and_threshold():
    checks = evaluate_report(make_report(), Thresholds(max_drop=2.0, min_speedup=1.5, max_size_kb=35))
    root = ET.fromstring(junit_xml(checks))
    cases = root.findall("./testsuite/testcase")
    assert sorted((c.get("classname"), c.get("name")) for c in cases) == sorted(
        (a, t) for a in ("x86-cpu/int8", "intel-cpu/int8") for t in ("max_drop", "min_speedup", "max_size_kb"))
    failed = {(c.get("classname"), c.get("name")) for c in cases if c.find("failure") is not None}
    assert failed == {("intel-cpu/int8", t) for t in ("max_drop", "min_speedup", "max_size_kb")}
    assert root.find("testsuite").get("failures") == "3"


def _gate_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "edgekd", "gate", *map(str, args)], capture_output=True, text=True,
                          timeout=120, env=env)


def test_cli_fails_with_exit_1_naming_artifact_and_threshold(tmp_path, monkeypatch):
    import os

    path = tmp_path / "report.json"
    path.write_text(json.dumps(make_report()))
    step_summary = tmp_path / "step-summary.md"
    step_summary.write_text("earlier step\n")
    env = {**os.environ, "GITHUB_STEP_SUMMARY": str(step_summary)}
    done = _gate_cli(path, "--max-size-kb", "35", "--junit", tmp_path / "gate.xml", "--summary", tmp_path / "gate.md", env=env)
    assert done.returncode == 1, done.stderr
    assert "FAIL  intel-cpu/int8" in done.stdout and "max_size_kb" in done.stdout and "size 40.0 KB (limit 35 KB)" in done.stdout
    assert "PASS  x86-cpu/int8" in done.stdout
    assert len(ET.parse(tmp_path / "gate.xml").getroot().findall("./testsuite/testcase")) == 4
    assert "| intel-cpu/int8 | max_size_kb | FAIL |" in (tmp_path / "gate.md").read_text()
    assert step_summary.read_text().startswith("earlier step\n### edgekd gate: FAIL")


def test_cli_passes_with_exit_0_and_refuses_other_eval_sets_with_exit_2(tmp_path):
    path, other = tmp_path / "report.json", tmp_path / "other.json"
    path.write_text(json.dumps(make_report()))
    other.write_text(json.dumps(make_report(eval_sha="b" * 64)))
    passed = _gate_cli(path, "--max-drop", "5", "--reference", "student_fp32")
    assert passed.returncode == 0 and "gate: PASS" in passed.stdout
    refused = _gate_cli(path, "--baseline", other)
    assert refused.returncode == 2 and "different evaluation set" in refused.stderr


def _unmeasured(report: dict) -> dict:
    """Every shipped row without a top-1, as for TensorRT artifacts benched on a workstation."""
    for row in report["rows"]:
        if row["shipped"]:
            row["top1"] = None
    return report


def test_skipped_checks_are_counted_apart_and_an_empty_gate_fails():
    mixed = make_report()
    mixed["rows"][2]["top1"] = None  # intel-cpu/int8 not measured here
    result = gate_report(mixed, Thresholds(max_drop=2.0))
    assert result.passed and result.summary == "gate: PASS (1 passed, 1 skipped)"
    skipped_only = gate_report(_unmeasured(make_report()), Thresholds(max_drop=2.0))
    assert not skipped_only.passed and skipped_only.evaluated == 0
    assert skipped_only.summary.startswith("gate: FAIL (nothing to check: no shipped artifact has a measured accuracy, or every limit is null; "
                                           "run edgekd bench on the device")
    assert "2 skipped" in skipped_only.summary
    nothing_shipped = make_report()
    for row in nothing_shipped["rows"]:
        row["shipped"] = False
    assert not gate_report(nothing_shipped, Thresholds()).passed
    assert gate_report(nothing_shipped, Thresholds(allow_empty=True)).passed
    failures = ET.fromstring(junit_xml(skipped_only)).findall("./testsuite/testcase/failure")
    assert [f.get("type") for f in failures] == ["nothing_to_check"]  # CI sees the empty gate as a failing case


def test_cli_empty_gate_exits_1_unless_allowed(tmp_path):
    path = tmp_path / "report.json"
    path.write_text(json.dumps(_unmeasured(make_report())))
    done = _gate_cli(path)
    assert done.returncode == 1, done.stderr
    assert "SKIP  x86-cpu/int8" in done.stdout and "gate: FAIL (nothing to check" in done.stdout
    allowed = _gate_cli(path, "--allow-empty")
    assert allowed.returncode == 0 and "gate: PASS (0 passed, 2 skipped)" in allowed.stdout


# ---- drops at the limit (issue 20, item 2) ------------------------------------------------------


def test_drops_come_from_counts_of_correct_samples_when_the_sample_count_is_known():
    from edgekd.core.metrics import correct_counts

    assert accuracy_drop(0.95, 0.94, "absolute") == 1.0000000000000009  # the float difference, a hair over 1
    assert accuracy_drop(0.95, 0.94, "absolute", samples=300) == 1.0  # 285 -> 282 of 300
    assert accuracy_drop(0.5, 0.49, "relative", samples=300) == 2.0  # 150 -> 147: 3 of 150
    assert accuracy_drop(0.1, 0.09, "absolute", samples=1000) == 1.0
    # A top-1 that is no whole number of samples (rounded by hand): the float formula, as before.
    assert correct_counts(100, 0.90, 0.885) is None
    assert accuracy_drop(0.90, 0.885, "absolute", samples=100) == pytest.approx(1.5)


def _at_limit_report(reference: float, top1: float, samples: int) -> dict:
    report = make_report()
    report["eval_set"]["samples"] = samples
    report["references"]["student_fp32"]["top1"] = reference
    report["rows"][1]["top1"] = top1
    report["rows"] = report["rows"][:2]
    return report


@pytest.mark.parametrize(("reference", "correct", "samples", "drop_type", "limit"), [
    (0.95, 282, 300, "absolute", 1.0), (0.9, 267, 300, "absolute", 1.0), (0.5, 147, 300, "relative", 2.0),
    (0.75, 741, 1000, "absolute", 0.9), (0.8, 797, 1000, "relative", 0.375)])
def test_a_drop_exactly_at_the_limit_passes_and_one_sample_more_fails(reference, correct, samples, drop_type, limit):
    at_limit = gate_report(_at_limit_report(reference, correct / samples, samples), Thresholds(max_drop=limit, drop_type=drop_type))
    assert at_limit.passed, at_limit[0].reason
    over = gate_report(_at_limit_report(reference, (correct - 1) / samples, samples), Thresholds(max_drop=limit, drop_type=drop_type))
    assert not over.passed, over[0].reason


def test_without_a_sample_count_a_limit_is_met_within_float_rounding_only():
    from edgekd.core.metrics import within_limit

    report = _at_limit_report(0.95, 0.94, 300)
    del report["eval_set"]["samples"]
    assert gate_report(report, Thresholds(max_drop=1.0)).passed
    assert within_limit(1.0000000000000009, 1.0) and not within_limit(1.0 + 100 / 1_000_000, 1.0)  # 1 in a million samples


def test_a_speedup_exactly_at_the_limit_passes():
    report = make_report()
    report["rows"][0]["p50_ms"], report["rows"][1]["p50_ms"] = 0.3, 0.2  # 0.3 / 0.2 is 1.4999999999999998
    checks = {c.threshold: c for c in evaluate_report(report, Thresholds(max_drop=None, min_speedup=1.5))
              if c.artifact == "x86-cpu/int8"}
    assert checks["min_speedup"].passed, checks["min_speedup"].reason


def test_min_speedup_of_an_artifact_not_timed_here_is_skipped_not_failed():
    """A trial: targets [arm64-cpu] with gate.min_speedup on an x86 machine FAILed with "no fp32 latency on this machine
    ...; bench fp32 too", advice that cannot be followed (the profile's latency is the device's to measure)."""
    report = make_report()
    for row in report["rows"]:
        row["p50_ms"], row["not_timed"] = None, "arm64-cpu: timings on this machine say nothing about the device"
    checks = [c for c in evaluate_report(report, Thresholds(max_drop=None, min_speedup=1.5)) if c.threshold == "min_speedup"]
    assert checks and all(c.skipped and c.passed for c in checks) and "gate the report from the device" in checks[0].reason


def test_a_perplexity_report_is_judged_on_the_shared_gate_lower_being_better():
    """Perplexity goes down: the one gate checks (1 + max_increase) x the reference's and greedy agreement, where it
    once knew only top-1 drops (a language model had gates of its own)."""
    report = {"schema": "edgekd.report/1", "task_metric": "perplexity",
              "references": {"student_fp32": {"perplexity": 10.0}},
              "rows": [{"artifact": "x86-cpu/int8", "target": "x86-cpu", "precision": "int8", "shipped": True, "bytes": 1,
                        "perplexity": 10.3, "token_agreement": 0.9},
                       {"artifact": "arm64-cpu/int8", "target": "arm64-cpu", "precision": "int8", "shipped": True, "bytes": 1,
                        "perplexity": 10.31, "token_agreement": 0.7}]}
    checks = gate_report(report, Thresholds(max_drop=None, max_increase=0.03, min_greedy_agreement=0.8))
    assert [(c.artifact, c.threshold, c.passed) for c in checks] == [
        ("x86-cpu/int8", "max_increase", True), ("x86-cpu/int8", "min_greedy_agreement", True),
        ("arm64-cpu/int8", "max_increase", False), ("arm64-cpu/int8", "min_greedy_agreement", False)]
    assert checks[0].reason == "perplexity 10.300 vs student_fp32 10.000: +3.00% (limit +3%)"  # at the limit: within it
    assert checks.summary == "gate: FAIL (2 failed, 2 passed)"


def test_an_artifact_whose_every_check_was_skipped_reads_skip_not_pass():
    """Trial defect (session 11): a TensorRT candidate never measured on the workstation read PASS in the table and
    report.md while gate.json had it skipped."""
    from edgekd.device.gate import Check, verdicts

    checks = [Check("jetson-orin/int8", "max_drop", True, "not measurable here", skipped=True),
              Check("x86-cpu/int8", "max_drop", True, "drop 0.2 <= 1.0"), Check("x86-cpu/int8", "min_speedup", True, "", skipped=True),
              Check("x86-cpu/fp32", "max_drop", False, "drop 3.0 > 1.0")]
    assert verdicts(checks) == {"jetson-orin/int8": "SKIP", "x86-cpu/int8": "PASS", "x86-cpu/fp32": "FAIL"}


def test_a_device_report_without_the_bundles_reference_says_how_to_gate_it():
    """Trial defect (session 11): a bundle gated on `teacher` (the starter file's) benched on the device, then `edgekd
    gate` of that report: "no reference 'teacher'", with no way forward named; rows without a top-1 were offered."""
    import pytest

    from edgekd.core.errors import ArtifactError
    from edgekd.device.gate import reference_value

    report = {"references": {"student_fp32": {"top1": 0.9, "source": "bundle eval.npz reference_logits"}},
              "rows": [{"artifact": "x86-cpu/int8", "top1": 0.89}, {"artifact": "jetson-orin/int8", "top1": None}]}
    with pytest.raises(ArtifactError, match=r"no reference 'teacher' with a top-1; available: student_fp32, x86-cpu/int8; "
                                            r"a device's report .* as --baseline, or --reference one of these"):
        reference_value(report, "teacher")


def test_an_unknown_reference_in_the_build_machines_report_is_not_sent_to_another_report():
    """Trial defect (session 14): `edgekd gate runs/q/report.json --reference bogus` (a table run's `--reference
    LGBMClassifier` too) on the build machine's own report said "a device's report holds its bundles only: give the
    build machine's report.json (which has 'bogus') as --baseline": that is the report given, and nothing has 'bogus'.
    The hint is for a device's report (its references measured from bundles) only, and claims no report has the name."""
    import pytest

    from edgekd.core.errors import ArtifactError
    from edgekd.device.gate import reference_value

    with pytest.raises(ArtifactError, match=r"^report has no reference 'bogus' with a top-1; available: teacher, "
                                            r"student_fp32, x86-cpu/fp32, x86-cpu/int8, intel-cpu/int8$"):
        reference_value(make_report(), "bogus")
    device = {"references": {"student_fp32": {"top1": 0.9, "source": "x86-cpu/int8 on imgs"}},
              "rows": [{"artifact": "x86-cpu/int8", "top1": 0.89}]}
    with pytest.raises(ArtifactError, match=r"a device's report holds its bundles only") as refused:
        reference_value(device, "LGBMClassifier")
    assert "which has" not in str(refused.value) and "'LGBMClassifier') as" not in str(refused.value)


def test_min_speedup_on_a_bundles_report_says_why_it_cannot_be_shown():
    """Trial defect (session 13): on a device report of an int8 bundle, min_speedup FAILed with "bench fp32 too",
    which cannot be done: a bundle holds the shipped model only."""
    report = make_report()
    report["rows"] = [{**row, "bundle": "model"} for row in report["rows"] if row["precision"] != "fp32"]
    checks = [c for c in evaluate_report(report, Thresholds(max_drop=None, min_speedup=1.5)) if c.threshold == "min_speedup"]
    assert checks and not checks[0].passed and "holds the shipped model only" in checks[0].reason
    assert "bench fp32 too" not in checks[0].reason


def test_a_limit_from_the_target_profile_names_its_source():
    """Trial defect (session 13): a target profile's stricter gate.max_drop silently overrode `edgekd gate --max-drop
    10`: the FAIL line said "(limit 1 points)" with nothing saying where the 1 came from."""
    report = make_report()
    report["rows"][1]["profile_gate"] = {"max_drop": 1.0, "max_size_kb": 500, "min_speedup": 1.2}  # x86-cpu/int8
    checks = {(c.artifact, c.threshold): c for c in evaluate_report(report, Thresholds(max_drop=10, max_size_kb=100,
                                                                                        min_speedup=1.1))}
    drop = checks[("x86-cpu/int8", "max_drop")]
    assert not drop.passed and drop.reason == ("top-1 drop 1.50 points vs student_fp32 (limit 1 points, target x86-cpu's "
                                               "gate.max_drop)")
    assert checks[("x86-cpu/int8", "min_speedup")].reason.endswith("(limit 1.2x, target x86-cpu's gate.min_speedup)")
    assert checks[("x86-cpu/int8", "max_size_kb")].reason.endswith("(limit 100 KB)")  # the profile's 500 is looser
    assert checks[("intel-cpu/int8", "max_drop")].reason.endswith("(limit 10 points)")  # no profile limits on this row


def test_each_bundles_speedup_is_against_its_own_fp32_reference():
    """Review (session 13): two bundles of one target benched together, each with its fp32 reference: the second's
    speed-up was computed against the first bundle's fp32."""
    report = make_report()
    int8 = next(r for r in report["rows"] if r["precision"] == "int8")
    fp32 = next(r for r in report["rows"] if r["precision"] == "fp32")
    rows = [{**fp32, "artifact": "a/fp32", "bundle": "a", "shipped": False, "p50_ms": 1.0},
            {**int8, "artifact": "a/int8", "bundle": "a", "p50_ms": 0.5},
            {**fp32, "artifact": "b/fp32", "bundle": "b", "shipped": False, "p50_ms": 4.0},
            {**int8, "artifact": "b/int8", "bundle": "b", "p50_ms": 1.0}]
    checks = {c.artifact: c for c in evaluate_report({**report, "rows": rows}, Thresholds(max_drop=None, min_speedup=3))
              if c.threshold == "min_speedup"}
    assert not checks["a/int8"].passed and checks["b/int8"].passed and "4.00x" in checks["b/int8"].reason
