"""The report table for a terminal or a log: as wide as the terminal (120 columns when it is not one).

When every column does not fit, the primary ones come first with the reason wrapped within its column,
and the others follow in more tables keyed by artifact, each as wide as fits. Hand-written rather than a
rich Table: rich fits a wide table by shrinking every column and folding headers and cells over several
lines, while here the numbers keep their width and only the free-text reason wraps.
"""
from __future__ import annotations

import shutil
import textwrap
from typing import Any

from edgekd.core.metrics import measured_note
from edgekd.device.report.table import COLUMNS, table_rows

# The terminal shows these first; the others go to a second table when the terminal is too narrow for all.
PRIMARY = ["artifact", "precision", "size (KB)", "top-1", "drop (test)", "cosine", "p50 (ms)", "cv", "gate", "why"]
MIN_WHY_WIDTH = 24
MOVABLE = ["cv", "cosine", "size (KB)", "drop (test)", "precision"]  # leave the first table, in this order, on a narrow terminal


def terminal_table(report: dict[str, Any], verdicts: dict[str, str] | None = None, width: int | None = None) -> str:
    """The table for a terminal `width` columns wide (default: this terminal's, 120 when unknown). When all columns
    do not fit, the primary ones come first, the reason wrapped within its column, and the others follow in more
    tables keyed by artifact, each as wide as fits. report.md and report.json have every column and the full text."""
    width = width or shutil.get_terminal_size((120, 24)).columns
    rows = table_rows(report, verdicts)
    everything = list(range(len(COLUMNS)))
    if _table_width([COLUMNS] + rows, everything) <= width:
        groups = [everything]
    else:
        groups = [_primary(rows, width)]
        rest = [i for i in everything if i not in groups[0] and COLUMNS[i] != "target"]  # the artifact names the target
        groups += _pack([r for r in rows if any(r[i] for i in rest)], rest, width)
    parts = [_text_table(rows, group, width) for group in groups]
    notes = [textwrap.fill(f"warning: {w}", width, subsequent_indent="  ") for w in report.get("host_warnings", [])]
    if measured_note(report):  # said first: every top-1 in the table means something else than accuracy
        notes.insert(0, textwrap.fill(measured_note(report), width, subsequent_indent="  "))
    return "\n\n".join(parts + (["\n".join(notes)] if notes else []))


def _primary(rows: list[list[str]], width: int) -> list[int]:
    """PRIMARY's columns, less those that must move on for the reason to keep MIN_WHY_WIDTH on a narrow terminal."""
    columns = [COLUMNS.index(c) for c in PRIMARY]
    for name in MOVABLE:
        if _table_width([COLUMNS] + rows, columns[:-1]) + 2 + MIN_WHY_WIDTH <= width:
            break
        columns.remove(COLUMNS.index(name))
    return columns


def _pack(rows: list[list[str]], columns: list[int], width: int) -> list[list[int]]:
    """Columns into groups, each led by the artifact column and no wider than `width`."""
    groups, current = [], [0]
    for column in columns:
        if len(current) > 1 and _table_width([COLUMNS] + rows, current + [column]) > width:
            groups.append(current)
            current = [0]
        current.append(column)
    return groups + ([current] if len(current) > 1 else [])


def _table_width(rows: list[list[str]], columns) -> int:
    columns = list(columns)
    return sum(max(len(r[i]) for r in rows) for i in columns) + 2 * (len(columns) - 1)


def _text_table(rows: list[list[str]], columns: list[int], width: int, names: list[str] = COLUMNS) -> str:
    head = [names[i] for i in columns]
    body = [[r[i] for i in columns] for r in rows if any(r[i] for i in columns[1:])]  # no empty reference rows
    widths = [max(len(r[k]) for r in [head] + body) for k in range(len(columns))]
    overflow = sum(widths) + 2 * (len(widths) - 1) - width
    if overflow > 0 and head[-1] == "why":  # the free text wraps; the numbers never do
        widths[-1] = max(MIN_WHY_WIDTH, widths[-1] - overflow)
    fmt = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()  # noqa: E731
    lines = [fmt(head), "  ".join("-" * w for w in widths)]
    for row in body:
        wrapped = textwrap.wrap(row[-1], widths[-1]) or [""]
        lines.append(fmt(row[:-1] + [wrapped[0]]))
        lines += [fmt([""] * (len(row) - 1) + [more]) for more in wrapped[1:]]
    return "\n".join(lines)


def fitted_table(names: list[str], rows: list[list[str]], width: int | None = None) -> str:
    """Any table whose last column is free text ('why'), fitted to the terminal as the report's is: the numbers keep
    their width, the text wraps (the language-model bench's table, device/report/lm.py)."""
    return _text_table(rows, list(range(len(names))), width or shutil.get_terminal_size((120, 24)).columns, names)
