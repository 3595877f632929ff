"""The gate's results for CI systems: JUnit XML (one test case per artifact and threshold) and Markdown."""
from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

from edgekd.core.fileio import write_text_atomic
from edgekd.device.gate import NOTHING_TO_CHECK, Check, GateResult


def _result(checks: list[Check]) -> GateResult:
    return checks if isinstance(checks, GateResult) else GateResult(checks)


def junit_xml(checks: list[Check], suite: str = "edgekd.device.gate") -> str:
    checks = _result(checks)
    if not checks.passed and checks.failed == 0:  # an empty gate fails: CI must see a failing case, not zero tests
        checks = GateResult([*checks, Check("gate", "nothing_to_check", False, NOTHING_TO_CHECK)])
    failures = sum(not c.passed for c in checks)
    root = ET.Element("testsuites", name=suite, tests=str(len(checks)), failures=str(failures))
    suite_el = ET.SubElement(root, "testsuite", name=suite, tests=str(len(checks)), failures=str(failures),
                             errors="0", skipped=str(sum(c.skipped for c in checks)))
    for check in checks:
        case = ET.SubElement(suite_el, "testcase", classname=check.artifact, name=check.threshold)
        if not check.passed:
            ET.SubElement(case, "failure", message=check.reason, type=check.threshold).text = check.reason
        elif check.skipped:
            ET.SubElement(case, "skipped", message=check.reason)
        else:
            ET.SubElement(case, "system-out").text = check.reason
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def summary_markdown(checks: list[Check], report_name: str) -> str:
    checks = _result(checks)
    lines = [f"### edgekd gate: {'PASS' if checks.passed else 'FAIL'} ({report_name})", "",
             checks.summary.removeprefix("gate: ") + ".", "",
             "| artifact | threshold | result | detail |", "|---|---|---|---|"]
    for c in checks:
        result = "FAIL" if not c.passed else ("skip" if c.skipped else "PASS")
        lines.append(f"| {c.artifact} | {c.threshold} | {result} | {c.reason} |")
    return "\n".join(lines) + "\n"


def write_ci_outputs(checks: list[Check], report_name: str, junit: Path | None, summary: Path | None,
                     step_summary: bool = True) -> None:
    """JUnit XML to `junit`, the Markdown summary to `summary` and (`step_summary`) appended to $GITHUB_STEP_SUMMARY."""
    if junit:
        write_text_atomic(junit, junit_xml(checks))
    if summary:
        write_text_atomic(summary, summary_markdown(checks, report_name))
    if step_summary:
        append_step_summary(checks, report_name)


def append_step_summary(checks: list[Check], report_name: str) -> None:
    """The Markdown summary appended to $GITHUB_STEP_SUMMARY when set (GitHub Actions)."""
    text = summary_markdown(checks, report_name)
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:  # GitHub Actions renders this file on the run page; append, other steps write to it too
        with open(step_summary, "a", encoding="utf-8") as handle:
            handle.write(text + "\n")


def refuse_replacing_other_files(junit: Path | None, summary: Path | None, names: tuple[str, str] = ("junit", "summary")) -> None:
    """`junit` and `summary` replace only what the gate wrote there before (or nothing): never a file of the user's, a
    bundle's manifest.json, notes. OutputError naming the option (`names`: as the caller spells them) otherwise."""
    from edgekd.core.errors import OutputError

    for option, path, ours in ((names[0], junit, _JUNIT_MARK), (names[1], summary, _SUMMARY_MARK)):
        if path is not None and Path(path).is_file() and not _starts_with(Path(path), ours):
            raise OutputError(f"{option} {path}: exists and is not a gate's {'JUnit XML' if ours == _JUNIT_MARK else 'summary'}, "
                              "which it would replace; give a new file name (or delete it first)")


_JUNIT_MARK, _SUMMARY_MARK = "<testsuites name=", "### edgekd gate:"


def _starts_with(path: Path, mark: str) -> bool:
    """Whether the file's first 200 characters hold `mark` (after the XML declaration, for JUnit)."""
    try:
        with open(path, encoding="utf-8") as handle:
            return mark in handle.read(200)
    except (OSError, UnicodeDecodeError):
        return False
