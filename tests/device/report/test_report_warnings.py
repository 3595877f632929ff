"""Every warning of a report reaches the terminal summary and report.html, not report.md alone (new-user trial: a
student at 10% beside 98% teachers was warned about mid-run and in report.md only); the latency-noise ones, many on a
busy machine, stay one line of their own in report.html."""
from __future__ import annotations

import html

from edgekd.device.report.html import render_html
from edgekd.device.report.table import noise_warnings, other_warnings
from edgekd.device.report.terminal import terminal_table

from .report_fixture import quickstart_report

FAR_BELOW = "student_fp32 top-1 10.50% keeps under half of the teachers' lead over chance (teacher 98.00%)"


def test_a_warning_reaches_the_terminal_and_the_html():
    report = quickstart_report(warnings=[FAR_BELOW])
    assert FAR_BELOW in " ".join(terminal_table(report, width=200).split())
    assert html.escape(FAR_BELOW) in render_html(report)


def test_noise_warnings_are_not_repeated_one_by_one():
    report = quickstart_report()
    report["rows"][0]["latency"]["batch1"]["cv"] = 0.9
    report["warnings"] = [*noise_warnings(report["rows"]), FAR_BELOW]
    assert other_warnings(report) == [FAR_BELOW]
    assert "latency coefficient of variation 90%" not in terminal_table(report, width=200)
