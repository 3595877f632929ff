"""Every table (terminal, Markdown, HTML) says why a candidate was not shipped and why a cell is n/a."""
from __future__ import annotations

from edgekd.device.bundle import sealed
from edgekd.device.report.html import render_html
from edgekd.device.report.reasons import short_verdict
from edgekd.device.report.table import COLUMNS, markdown, table_rows
from edgekd.device.report.terminal import terminal_table

from .report_fixture import quickstart_report


def _by_artifact(report):
    return {r[0].removesuffix(" *"): dict(zip(COLUMNS, r)) for r in table_rows(report)}


def test_every_unshipped_row_and_every_na_cell_has_a_short_reason():
    report = quickstart_report()
    rows = _by_artifact(report)
    assert rows["x86-cpu/int8"]["gate"] == "not shipped"
    assert rows["x86-cpu/int8"]["why"] == "within noise of fp32"
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
    verdict = "within noise of fp32 (1.01x its speed, median of 5 paired rounds, faster in 3 of 5; band 3%)"
    assert int8["reason"] == f"not shipped (compile stage, on the validation split): {verdict}"
    md, page = markdown(report), render_html(report)
    assert "| why |" in md and f"- `x86-cpu/int8`: not shipped (compile stage, on the validation split): {verdict}" in md
    assert verdict in page and "<th class='why'>why</th>" in page


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
    assert short_verdict("within noise of int8 (1.01x its speed, median of 5 paired rounds, faster in 3 of 5; band "
                         "3%): the simpler ships") == "within noise of int8"
    assert short_verdict("within noise of fp32 (1.02x its speed, median of 5 paired rounds, faster in 3 of 5; band 3%)") \
        == "within noise of fp32"
    assert short_verdict("chosen (simplest within noise of the fastest, int8-fallback; 0.031 ms)") == \
        "simplest within noise of the fastest"


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


def test_a_shipped_candidate_this_measurement_finds_no_faster_than_fp32_says_within_noise():
    from edgekd.device.latency import LatencySpec
    from edgekd.device.report.build import build_report

    from .report_fixture import REPORT, _latency, _row

    rows = [_row("x86-cpu/fp32", "fp32", False, "faster than ...", 0.99, 0.031),
            _row("x86-cpu/int8", "int8", True, "chosen (fastest passing; faster than fp32 (...))", 0.99, 0.037)]
    rows[0]["latency"]["batch1"] = _latency(0.031, rounds=[0.031, 0.030, 0.033, 0.029, 0.031])
    rows[1]["latency"]["batch1"] = _latency(0.037, rounds=[0.030, 0.045, 0.037, 0.029, 0.040])
    report = build_report("r", rows, REPORT["references"], REPORT["eval_set"], REPORT["gate"], LatencySpec(), (1,), False)
    assert "does not confirm the gain over x86-cpu/fp32" in report["rows"][1]["reason"]
    assert "gain over fp32 within noise here" in _by_artifact(report)["x86-cpu/int8"]["why"]
    assert "noise_note" not in report["rows"][0]


def test_a_candidate_compile_timed_slower_and_this_measurement_faster_says_both():
    """Trial defect (session 12): 'not shipped: slower than fp32' sat beside a p50 half the fp32's, and only report.json
    held the bench's own verdict (faster in 5 of 5 rounds)."""
    from edgekd.device.latency import LatencySpec
    from edgekd.device.report.build import build_report

    from .report_fixture import REPORT, _latency, _row

    rows = [_row("x86-cpu/fp32", "fp32", True, "chosen (fp32 baseline)", 0.99, 0.021),
            _row("x86-cpu/int8", "int8", False, "slower than fp32 (0.84x its speed, faster in 0 of 5 rounds)", 0.99, 0.014)]
    rows[0]["latency"]["batch1"] = _latency(0.021, rounds=[0.021, 0.022, 0.021, 0.020, 0.021])
    rows[1]["latency"]["batch1"] = _latency(0.014, rounds=[0.014, 0.013, 0.014, 0.015, 0.014])
    report = build_report("r", rows, REPORT["references"], REPORT["eval_set"], REPORT["gate"], LatencySpec(), (1,), False)
    assert "faster here than compile timed it" in _by_artifact(report)["x86-cpu/int8"]["why"]
    assert "the compile stage timed it slower" in report["rows"][1]["reason"] and "--only compile" in report["rows"][1]["reason"]


def test_edgekd_bench_of_an_arm64_bundle_on_x86_warns_in_the_report(tmp_path, bundle_factory):
    import json
    import platform

    import pytest

    from edgekd import api
    from edgekd.runtimes import load_profile

    if platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("the mismatch tested is an arm64 profile on an x86 machine")
    bundle = bundle_factory(tmp_path, "arm64-cpu")
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["profile"] = {**load_profile("arm64-cpu").model_dump(mode="json"), "gate": {"max_drop": 1.0}}
    (bundle / "manifest.json").write_text(json.dumps(sealed(manifest)))
    report = api.bench(bundle, runs=5, min_seconds=0, warmup_runs=1, warmup_seconds=0, rounds=1, memory=False)
    assert any("for aarch64 CPUs and this machine is x86_64" in w for w in report["host_warnings"])
    assert "This machine is not the device" in markdown(report)


def test_the_latency_reason_quotes_the_tables_own_p50s_and_the_paired_rounds():
    """Issue 32 item 11: the table showed int8 0.128 vs fp32 0.165 ms while the reason quoted 0.130 vs 0.112 ms
    (another stage's pooled p50). Each timed row's reason now compares it with its target's fp32 in this
    measurement, quoting the table's p50 cells, and says 'within noise' where the paired rounds do."""
    from edgekd.device.latency import LatencySpec
    from edgekd.device.report.build import build_report

    from .report_fixture import REPORT, _latency, _row

    rows = [_row("x86-cpu/fp32", "fp32", True, "chosen (fp32 baseline; ...)", 0.99, 0.165),
            _row("x86-cpu/int8", "int8", False, "within noise of fp32 (...)", 0.99, 0.128)]
    rows[0]["latency"]["batch1"] = _latency(0.165, rounds=[0.10, 0.17, 0.165, 0.14, 0.17])
    rows[1]["latency"]["batch1"] = _latency(0.128, rounds=[0.13, 0.12, 0.17, 0.128, 0.17])
    report = build_report("r", rows, REPORT["references"], REPORT["eval_set"], REPORT["gate"], LatencySpec(), (1,), False)
    table, reason = _by_artifact(report), report["rows"][1]["reason"]
    assert (table["x86-cpu/int8"]["p50 (ms)"], table["x86-cpu/fp32"]["p50 (ms)"]) == ("0.128", "0.165")
    assert "this measurement (test split): 0.128 ms vs x86-cpu/fp32 0.165 ms (the table's p50s)" in reason
    assert "(the table's p50s); within noise of x86-cpu/fp32 (1.00x its speed, median of 5 paired rounds" in reason
    assert report["rows"][1]["vs_fp32"]["outcome"] == "within noise"


def test_the_drop_column_and_the_reasons_name_their_split():
    """Issue 32 item 13: a reason quoted validation figures while the table's drop column was on test; neither said so."""
    report = quickstart_report()
    assert "drop (test)" in COLUMNS
    md = markdown(report)
    assert "| drop (test) |" in md and "samples of the test split" in md
    assert "- `intel-cpu/int8`: not shipped (compile stage, on the validation split): accuracy drop 2.31 > max_drop 2.0" in md


def test_a_bench_on_the_users_images_names_them_not_the_test_split():
    """Trial defect (session 10): `edgekd bench --images DIR` headed its drop column "drop (test)" and its markdown said
    "samples of the test split" of images the run never held out."""
    from edgekd.device.report.table import columns, intro
    from edgekd.device.report.terminal import terminal_table

    report = quickstart_report()
    report["eval_set"] = {**report["eval_set"], "images": "/data/shop-photos", "reference": "x86-cpu/fp32"}
    assert "drop" in columns(report) and "drop (test)" not in columns(report)
    assert "samples of /data/shop-photos" in intro(report) and "test split" not in intro(report).split(";")[0]
    head = terminal_table(report, width=400).splitlines()[0]
    assert " drop " in f"{head} " and "drop (test)" not in head
    assert "| drop (test) |" not in markdown(report)


def test_the_latency_reason_names_the_users_images_it_was_timed_on():
    from edgekd.device.latency import LatencySpec
    from edgekd.device.report.build import build_report

    from .report_fixture import REPORT, _row

    rows = [_row("x86-cpu/fp32", "fp32", True, "bundle", 0.99, 0.165), _row("x86-cpu/int8", "int8", True, "bundle", 0.99, 0.128)]
    eval_set = {**REPORT["eval_set"], "images": "/data/shop-photos"}
    report = build_report("r", rows, REPORT["references"], eval_set, REPORT["gate"], LatencySpec(), (1,), False)
    assert "this measurement (/data/shop-photos): 0.128 ms vs x86-cpu/fp32" in report["rows"][1]["reason"]


def test_a_shipped_fp32_reads_fp32_baseline_in_the_table():
    assert short_verdict("chosen (fp32 baseline; no passing candidate faster beyond noise)") == "fp32 baseline"


def test_the_fidelity_note_promises_a_cosine_column_that_every_table_has():
    """The note said `the fidelity column has the output cosine`, and neither the terminal table nor report.md had one."""
    from edgekd.core.metrics import FIDELITY, measured_note

    report = quickstart_report(measured=FIDELITY)
    for index, row in enumerate(report["rows"]):
        row["fidelity"] = {"top1_agreement": 0.99, "cosine": 0.99871 - index / 1000, "max_abs_error": 0.1, "mean_abs_error": 0.01}
    assert "the cosine column" in measured_note(report)
    assert _by_artifact(report)["x86-cpu/int8"]["cosine"] == "0.9977"
    md = markdown(report)
    assert "| cosine |" in md and "| 0.9987 |" in md
    for width in (200, 120, 80):  # on a narrow terminal it moves to a second table, but it is there
        text = terminal_table(report, width=width)
        assert "cosine" in text.split("\n")[0] or any(line.startswith("artifact") and "cosine" in line
                                                      for line in text.splitlines()), (width, text)
        assert "0.9977" in text and all(len(line) <= width for line in text.splitlines())
    assert "cosine" in render_html(report)
