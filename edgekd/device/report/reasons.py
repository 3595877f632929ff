"""Why a row of the report looks as it does: why a candidate was not shipped (or was), and why a cell
reads n/a. Each reason comes as a short phrase for the tables and the full sentence for report.json."""
from __future__ import annotations

import re
from typing import Any


def row_reasons(row: dict[str, Any]) -> list[dict[str, str]]:
    """[{"about", "short", "full"}] for one report row, most important first."""
    out = []
    verdict = row.get("verdict") or ""
    if verdict and verdict != "bundle":
        about = "shipped" if row.get("shipped") else "not shipped"
        out.append({"about": about, "short": short_verdict(verdict), "full": f"{about}: {verdict}"})
    if row.get("noise_note"):
        out.append({"about": "latency", "short": "gain over fp32 within noise here", "full": row["noise_note"]})
    if row.get("not_measured"):
        out.append({"about": "not measured", "short": short_not_measured(row["not_measured"]),
                    "full": f"not measured here: {row['not_measured']}"})
    elif row.get("not_timed"):
        out.append({"about": "latency n/a", "short": "latency: time it on the device",
                    "full": f"latency not measured here: {row['not_timed']}"})
    error = (row.get("memory") or {}).get("error")
    if error:
        out.append({"about": "memory n/a", "short": "memory probe failed", "full": f"peak memory not measured: {error}"})
    return out


def short_reason(row: dict[str, Any]) -> str:
    return "; ".join(r["short"] for r in row_reasons(row))


def full_reason(row: dict[str, Any]) -> str:
    return "; ".join(r["full"] for r in row_reasons(row))


def short_verdict(verdict: str) -> str:
    """The selection verdict without its numbers: 'chosen (fastest passing, 0.031 ms)' -> 'fastest passing'."""
    if verdict.startswith("chosen"):
        inside = re.search(r"\(([^,;)]*)", verdict)
        return inside.group(1) if inside else "chosen"
    head = verdict.split(" (", 1)[0].split(": ", 1)[0]
    if "within noise" in verdict and "within noise" not in head:
        head += ", within noise"
    return head


def short_not_measured(text: str) -> str:
    backend = re.match(r"the (\S+) backend needs", text)
    if backend:
        return f"{backend.group(1)} not installed here"
    if "device" in text:
        return "built on the device"
    return text.split(":", 1)[0][:40]
