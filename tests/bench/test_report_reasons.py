"""Every table (terminal, Markdown, HTML) says why a candidate was not shipped and why a cell is n/a."""
from __future__ import annotations

from edgekd.bench.html import render_html
from edgekd.bench.reasons import short_verdict
from edgekd.bench.report import COLUMNS, markdown, table_rows, terminal_table

from .report_fixture import quickstart_report


def _by_artifact(report):
    return {r[0].removesuffix(" *"): dict(zip(COLUMNS, r)) for r in table_rows(report)}


def test_every_unshipped_row_and_every_na_cell_has_a_short_reason():
    report = quickstart_report()
    rows = _by_artifact(report)
    assert rows["x86-cpu/int8"]["gate"] == "not shipped"
    assert rows["x86-cpu/int8"]["why"] == "not faster than fp32 by 3%"
    assert rows["intel-cpu/int8"]["why"] == "accuracy drop 2.31 > max_drop 2.0"
    assert rows["arm64-cpu/int8"]["p50 (ms)"] == "n/a" and "latency: time it on the device" in rows["arm64-cpu/int8"]["why"]
    for name, row in rows.items():
        if "reference" in name:
            continue
        if row["gate"] == "not shipped" or "n/a" in row.values():
            assert row["why"], name


def test_full_reason_is_in_the_json_row_and_under_the_markdown_and_html_tables():
    report = quickstart_report()
    int8 = next(r for r in report["rows"] if r["artifact"] == "x86-cpu/int8")
    assert int8["reason"] == "not shipped: not faster than fp32 by 3% (0.034 ms vs 0.028 ms)"
    md, page = markdown(report), render_html(report)
    assert "| why |" in md and "- `x86-cpu/int8`: not shipped: not faster than fp32 by 3% (0.034 ms vs 0.028 ms)" in md
    assert "not faster than fp32 by 3% (0.034 ms vs 0.028 ms)" in page and "<th>why</th>" in page


def test_a_missing_backend_and_a_failed_memory_probe_say_so():
    report = quickstart_report()
    row = report["rows"][4]
    row.update(not_measured="the openvino backend needs 'openvino' (No module named 'openvino'): pip install 'edgekd[openvino]'",
               memory={"error": "memory probe exited 1: boom"})
    for key in ("top1", "latency", "p50_ms"):
        row.pop(key)
    why = _by_artifact(report)["intel-cpu/fp32"]["why"]
    assert "openvino not installed here" in why and "memory probe failed" in why


def test_short_verdicts_keep_the_decision_and_drop_the_numbers():
    assert short_verdict("chosen (fastest passing, 0.031 ms)") == "fastest passing"
    assert short_verdict("chosen (no candidate passed; fp32 shipped)") == "no candidate passed"
    assert short_verdict("slower than the chosen int8 (0.040 ms vs 0.031 ms)") == "slower than the chosen int8"


def test_the_terminal_table_fits_the_width_and_moves_the_rest_to_a_second_table():
    report = quickstart_report()
    for width in (100, 120):
        text = terminal_table(report, width=width)
        assert max(len(line) for line in text.splitlines() if not line.startswith("warning:")) <= width, width
        tables = [block for block in text.split("\n\n") if not block.startswith("warning:")]
        assert len(tables) >= 2
        assert tables[0].splitlines()[0].split()[:2] == ["artifact", "precision"]
        headers = " ".join(table.splitlines()[0] for table in tables)
        assert all(column in headers for column in COLUMNS if column != "target"), headers
        assert all("intel-cpu/bf16" in table for table in tables)
        assert "first passing in profile order; latency: time it on the device" in " ".join(tables[0].split())
    wide = terminal_table(report, width=400)
    assert len([b for b in wide.split("\n\n") if not b.startswith("warning:")]) == 1


def test_host_warnings_are_printed_under_the_terminal_table_and_in_the_markdown():
    report = quickstart_report()
    assert "warning: x86-cpu: this CPU has no VNNI" in terminal_table(report, width=120)
    assert "This machine is not the device" in markdown(report)
