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
from edgekd.device.report.table import (
    PERPLEXITY_COLUMNS,
    TEST_DROP,
    USER_DROP,
    columns,
    intro,
    kept_in_float_lines,
    other_warnings,
    table_rows,
)

# The terminal shows these first; the others go to a second table when the terminal is too narrow for all.
PRIMARY = ["artifact", "precision", "size (KB)", "top-1", TEST_DROP, USER_DROP, "cosine", "perplexity", "vs ref", "tokens/s",
           "p50 (ms)", "cv", "gate", "why"]
MIN_WHY_WIDTH = 24
MOVABLE = ["cv", "cosine", "size (KB)", TEST_DROP, USER_DROP, "precision"]  # leave the first table, in this order, on a narrow terminal


def terminal_table(report: dict[str, Any], verdicts: dict[str, str] | None = None, width: int | None = None) -> str:
    """The table for a terminal `width` columns wide (default: this terminal's, 120 when unknown). When all columns
    do not fit, the primary ones come first, the reason wrapped within its column, and the others follow in more
    tables keyed by artifact, each as wide as fits. report.md and report.json have every column and the full text."""
    width = width or shutil.get_terminal_size((120, 24)).columns
    rows, names = table_rows(report, verdicts), columns(report)
    everything = list(range(len(names)))
    if _table_width([names] + rows, everything) <= width:
        groups = [everything]
    else:
        groups = [_primary(rows, width, names)]
        rest = [i for i in everything if i not in groups[0] and names[i] != "target"]  # the artifact names the target
        groups += _pack([r for r in rows if any(r[i] for i in rest)], rest, width, names)
    parts = [_text_table(rows, group, width, names) for group in groups]
    notes = [textwrap.fill(f"warning: {w}", width, subsequent_indent="  ")
             for w in [*report.get("host_warnings", []), *other_warnings(report)]]
    notes += [textwrap.fill(f"int8 fallback: {line}", width, subsequent_indent="  ") for line in kept_in_float_lines(report)]
    if measured_note(report):  # said first: every top-1 in the table means something else than accuracy
        notes.insert(0, textwrap.fill(measured_note(report), width, subsequent_indent="  "))
    if names is PERPLEXITY_COLUMNS:  # another metric's table (a language model's): what it measured, on what, first
        parts.insert(0, textwrap.fill(intro(report), width))
    return "\n\n".join(parts + (["\n".join(notes)] if notes else []))


def _primary(rows: list[list[str]], width: int, names: list[str]) -> list[int]:
    """PRIMARY's columns, less those that must move on for the reason to keep MIN_WHY_WIDTH on a narrow terminal."""
    chosen = [names.index(c) for c in PRIMARY if c in names]
    for name in (m for m in MOVABLE if m in names):
        if _table_width([names] + rows, chosen[:-1]) + 2 + MIN_WHY_WIDTH <= width:
            break
        chosen.remove(names.index(name))
    return chosen


def _pack(rows: list[list[str]], columns: list[int], width: int, names: list[str]) -> list[list[int]]:
    """Columns into groups, each led by the artifact column and no wider than `width`."""
    groups, current = [], [0]
    for column in columns:
        if len(current) > 1 and _table_width([names] + rows, current + [column]) > width:
            groups.append(current)
            current = [0]
        current.append(column)
    return groups + ([current] if len(current) > 1 else [])


def _table_width(rows: list[list[str]], columns) -> int:
    columns = list(columns)
    return sum(max(len(r[i]) for r in rows) for i in columns) + 2 * (len(columns) - 1)


def _text_table(rows: list[list[str]], columns: list[int], width: int, names: list[str]) -> str:
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
