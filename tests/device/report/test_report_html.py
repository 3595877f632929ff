"""report.html: self-contained, renders in headless Chromium with the table and both plots."""
from __future__ import annotations

import re

import numpy as np
import pytest

from edgekd import api
from edgekd.device.report.build import write_reports
from edgekd.device.report.screenshot import find_chromium, screenshot


@pytest.fixture
def measured_report(tmp_path, bundle_factory):
    """A real (fast) measurement of two bundles, so the report has two targets to plot."""
    bundle_factory(tmp_path, "x86-cpu")
    bundle_factory(tmp_path, "edge-cpu")
    report = api.bench(tmp_path, runs=10, min_seconds=0, warmup_runs=1, warmup_seconds=0, rounds=2, memory=False)
    write_reports(tmp_path / "out", report)
    return tmp_path / "out"


def test_report_html_is_self_contained_with_table_and_plots(measured_report):
    page = (measured_report / "report.html").read_text()
    # accuracy vs latency, speed-up vs fp32, size; no sensitivity plot: no fallback search ran
    assert len(re.findall(r"<img alt='plot' src='data:image/png;base64,[A-Za-z0-9+/=]{1000,}'>", page)) == 3
    assert not re.search(r"(src|href)=['\"]https?:", page)  # nothing fetched from the network
    assert "<td>x86-cpu/fp32 *</td>" in page and "<td>edge-cpu/fp32 *</td>" in page
    assert "Top-1 against p50 latency" in page and "Speed-up over each target" in page and "Size of the files" in page


@pytest.mark.skipif(find_chromium() is None, reason="no Chromium on this machine")
def test_report_html_renders_in_headless_chromium(measured_report, tmp_path):
    from matplotlib import image

    png = screenshot(measured_report / "report.html", tmp_path / "shot.png", 1400, 1100)
    pixels = image.imread(png)[..., :3]
    assert pixels.shape[:2] == (1100, 1400)
    # matplotlib's default blue and orange (bars, markers) only appear if the plots rendered.
    blue = np.all(np.abs(pixels - np.array([31, 119, 180]) / 255) < 0.03, axis=-1).sum()
    orange = np.all(np.abs(pixels - np.array([255, 127, 14]) / 255) < 0.03, axis=-1).sum()
    assert blue > 500 and orange > 500, (blue, orange)
    # table borders: light gray rows across the top part of the page
    assert (pixels[:400].mean(axis=-1) < 0.95).sum() > 2000


@pytest.mark.skipif(find_chromium() is None, reason="no Chromium on this machine")
def test_the_quickstart_report_renders_with_every_plot_and_the_reasons(tmp_path):
    """A quickstart-shaped report (three targets, unshipped candidates, an untimed arm64 target, a fallback
    search): the page shows the reason column and four plots, and the accuracy plot's legend entries
    (one colour per target) come out in the rendered pixels."""
    from matplotlib import image

    from edgekd.device.report.build import write_reports

    from .report_fixture import quickstart_report
    from .test_plots import FALLBACK

    report = quickstart_report(quantize={"fallback": FALLBACK})
    write_reports(tmp_path, report)
    page = (tmp_path / "report.html").read_text()
    assert page.count("<img alt='plot'") == 4 and "<th class='why'>why</th>" in page and "within noise of fp32" in page
    pixels = image.imread(screenshot(tmp_path / "report.html", tmp_path / "shot.png", 1300, 2600))[..., :3]
    for rgb in ([31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40]):  # three targets, the kept node
        assert np.all(np.abs(pixels - np.array(rgb) / 255) < 0.03, axis=-1).sum() > 200, rgb
