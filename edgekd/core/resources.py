"""Where the built-in device profiles and calibration recipes live.

In a wheel they are package data under edgekd/_builtin/; in a source checkout they are the
top-level targets/ and calibration/ folders.
"""
from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parents[1]  # edgekd/, this file being edgekd/core/resources.py


def builtin_dir(kind: str) -> Path:
    packaged = _PACKAGE / "_builtin" / kind
    return packaged if packaged.is_dir() else _PACKAGE.parent / kind
