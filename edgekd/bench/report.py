"""Reports: report.json (versioned schema) and report.md (the table)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..fileio import write_json_atomic, write_text_atomic
from ..gate import accuracy_drop

REPORT_SCHEMA = "edgekd.report/1"
COLUMNS = ["artifact", "target", "precision", "size (KB)", "top-1", "drop", "p50 (ms)", "gate"]


def table_rows(report: dict[str, Any], verdicts: dict[str, str] | None = None) -> list[list[str]]:
    gate = report.get("gate", {})
    reference = report["references"].get(gate.get("reference", "student_fp32"), {}).get("top1")
    rows = []
    for name, ref in report["references"].items():
        rows.append([f"{name} (reference)", "pytorch", "fp32", "", f"{ref['top1'] * 100:.2f}", "", "", ""])
    for row in report["rows"]:
        top1 = row.get("top1")
        drop = accuracy_drop(reference, top1, gate.get("drop_type", "absolute")) if None not in (reference, top1) else None
        p50 = row.get("p50_ms")
        verdict = (verdicts or {}).get(row["artifact"], "") if row.get("shipped") else "not shipped"
        rows.append([row["artifact"] + (" *" if row.get("shipped") else ""), row["target"], row["precision"],
                     f"{row['bytes'] / 1024:.1f}", f"{top1 * 100:.2f}" if top1 is not None else "n/a", f"{drop:+.2f}" if drop is not None else "",
                     f"{p50:.3f}" if p50 is not None else "n/a", verdict])
    return rows


def markdown(report: dict[str, Any], verdicts: dict[str, str] | None = None) -> str:
    lines = [f"# edgekd report: {report['run']}", "",
             f"Evaluation set: {report['eval_set']['samples']} test samples (sha256 {report['eval_set']['sha256'][:12]}). "
             f"Drop is in top-1 points vs `{report['gate']['reference']}`; `*` marks the artifact shipped per target.", "",
             "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(r) + " |" for r in table_rows(report, verdicts)]
    noisy = [r["artifact"] for r in report["rows"] if r.get("latency", {}).get("batch1", {}).get("cv", 0) > 0.10]
    if noisy:
        lines += ["", f"Warning: latency coefficient of variation above 10% for {', '.join(noisy)}; the machine was noisy."]
    return "\n".join(lines) + "\n"


def write_reports(run_dir: Path, report: dict[str, Any]) -> list[Path]:
    return [write_json_atomic(run_dir / "report.json", report), write_text_atomic(run_dir / "report.md", markdown(report))]


def terminal_table(report: dict[str, Any], verdicts: dict[str, str] | None = None) -> str:
    rows = [COLUMNS] + table_rows(report, verdicts)
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    fmt = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths))  # noqa: E731
    return "\n".join([fmt(rows[0]), "  ".join("-" * w for w in widths), *(fmt(r) for r in rows[1:])])
