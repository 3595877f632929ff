"""Why a row of the report looks as it does: why a candidate was not shipped (or was), and why a cell
reads n/a. Each reason comes as a short phrase for the tables and the full sentence for report.json."""
from __future__ import annotations

import re
from typing import Any

from edgekd.device.noise import FASTER, WITHIN_NOISE


def row_reasons(row: dict[str, Any]) -> list[dict[str, str]]:
    """[{"about", "short", "full"}] for one report row, most important first."""
    out = []
    verdict = row.get("verdict") or ""
    if verdict and verdict != "bundle":
        about = "shipped" if row.get("shipped") else "not shipped"
        out.append({"about": about, "short": short_verdict(verdict),
                    "full": f"{about} (compile stage, on the validation split): {verdict}"})
    if row.get("runtime_fallback"):  # the target ships another runtime than its profile's (pipeline/target_runtime.py)
        out.append({"about": "runtime", "short": short_runtime_fallback(row["runtime_fallback"]),
                    "full": row["runtime_fallback"]})
    latency = latency_reason(row)
    if latency:
        out.append(latency)
    if row.get("not_measured"):
        out.append({"about": "not measured", "short": short_not_measured(row["not_measured"]),
                    "full": f"not measured here: {row['not_measured']}"})
    elif row.get("not_timed"):  # a candidate not shipped: its verdict is the reason to read, the n/a needs no advice
        out.append({"about": "latency n/a", "short": "latency: time it on the device" if row.get("shipped", True) else "",
                    "full": f"latency not measured here: {row['not_timed']}"})
    error = (row.get("memory") or {}).get("error")
    if error:
        out.append({"about": "memory n/a", "short": "memory probe failed", "full": f"peak memory not measured: {error}"})
    return out


def latency_reason(row: dict[str, Any]) -> dict[str, str] | None:
    """This measurement's comparison with the target's fp32 (report.build._against_fp32), quoting the table's p50s.
    In the table's short column only where it contradicts shipping the row: a shipped row not faster than fp32."""
    versus = row.get("vs_fp32")
    if not versus:
        return None
    full = (f"this measurement ({versus.get('on', 'test split')}): {versus['p50_ms']:.3f} ms vs {versus['fp32_artifact']} "
            f"{versus['fp32_p50_ms']:.3f} ms (the table's p50s); {versus['text']}")
    if not row.get("shipped") and versus["outcome"] == FASTER and "slower" in (row.get("verdict") or ""):
        # the two timings disagree beyond their noise (the machine's load changed between them): said, not left to
        # a table whose "slower than fp32" sits beside a faster p50
        return {"about": "latency", "short": "faster here than compile timed it",
                "full": f"{full}: the compile stage timed it slower on the validation split; the machine's load changed "
                        "between the two timings; to choose again: edgekd run CONFIG --out RUN --force --only compile "
                        "--only bench --only gate"}
    if not row.get("shipped") or versus["outcome"] == FASTER:
        return {"about": "latency", "short": "", "full": full}
    short = "gain over fp32 within noise here" if versus["outcome"] == WITHIN_NOISE else "slower than fp32 here"
    return {"about": "latency", "short": short,
            "full": f"{full}: does not confirm the gain over {versus['fp32_artifact']} the compile stage timed"}


def short_reason(row: dict[str, Any]) -> str:
    return "; ".join(r["short"] for r in row_reasons(row) if r["short"])


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


def short_runtime_fallback(line: str) -> str:
    """'intel-cpu: OpenVINO cannot convert this model (...); shipping onnxruntime instead (...)' ->
    'OpenVINO cannot convert it: onnxruntime instead'."""
    refused = re.search(r": (\S+) cannot convert", line)
    used = re.search(r"shipping (\S+) instead", line)
    if not (refused and used):
        return "another runtime than the profile's"
    return f"{refused.group(1)} cannot convert it: {used.group(1)} instead"


def short_not_measured(text: str) -> str:
    backend = re.match(r"the (\S+) backend needs", text)
    if backend:
        return f"{backend.group(1)} not installed here"
    if "device" in text:
        return "built on the device"
    return text.split(":", 1)[0][:40]
