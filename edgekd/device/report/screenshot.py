"""Screenshot a report.html with headless Chromium: proof that the page renders (table and plots).

    python -m edgekd.device.report.screenshot runs/quickstart/report.html docs/report-screenshot.png
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from edgekd.core.errors import EdgeKDError

# Offline and quiet: no network services, no first-run UI, no GPU (CI machines and containers have none).
_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
          "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars"]


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def screenshot(html_path: Path, png_path: Path, width: int = 1400, height: int = 1800, timeout_s: float = 120) -> Path:
    browser = find_chromium()
    if browser is None:
        raise EdgeKDError("no Chromium found (tried chromium, chromium-browser, google-chrome); install one to take screenshots")
    png_path = Path(png_path).resolve()
    png_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="edgekd-chromium-") as profile:
        done = subprocess.run([browser, *_FLAGS, f"--user-data-dir={profile}", f"--screenshot={png_path}",
                               f"--window-size={width},{height}", Path(html_path).resolve().as_uri()],
                              capture_output=True, text=True, timeout=timeout_s)
    if done.returncode != 0 or not png_path.is_file():
        raise EdgeKDError(f"Chromium could not screenshot {html_path}: {(done.stderr.strip().splitlines() or ['?'])[-1][:200]}")
    return png_path


if __name__ == "__main__":
    args = sys.argv[1:]
    if len(args) not in (2, 4):
        sys.exit("usage: python -m edgekd.device.report.screenshot REPORT_HTML OUT_PNG [WIDTH HEIGHT]")
    size = (int(args[2]), int(args[3])) if len(args) == 4 else (1400, 1800)
    print(screenshot(Path(args[0]), Path(args[1]), *size))
