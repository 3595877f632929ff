"""Reports: report.json (versioned schema), report.md (the table), report.html (table + plots).

Schema edgekd.report/1, top level: schema, run, created, environment, eval_set {samples, sha256},
references {name: {top1[, top5]}}, gate (thresholds), bench (how latency and memory were measured),
rows (one per artifact: artifact, target, backend, precision, shipped, verdict, reason (why it was or was not
shipped and why a value is missing, in full), bytes and gzip_bytes (of the files the device's session loads),
files [{name, bytes, role, loaded}] (every model file), not_measured / not_timed (why not), parameters,
session_create_ms, first_inference_ms, threads {requested, runtime}, top1[, top5], fidelity,
latency {batchN: stats; first_ms there is the first timed call at that batch size, after warm-up is not
yet done but after the accuracy pass}, p50_ms, memory {peak_rss_mb, baseline_rss_mb, model_rss_mb,
cold_session_create_ms, cold_first_inference_ms, method} or {error}),
host_warnings (where this machine differs from the targets' devices), warnings (noise, a short eval set),
quantize {fallback: {recipe: {sensitivity, nodes_in_float, max_drop}}} when the pipeline's fallback search ran.
"""
from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..environment import describe
from ..fileio import write_json_atomic, write_text_atomic
from ..gate import accuracy_drop
from .accuracy import ACCURACY, measured_note
from .latency import CV_WARNING, LatencySpec
from .memory import METHOD as MEMORY_METHOD
from .noise import separated
from .reasons import full_reason, short_reason

REPORT_SCHEMA = "edgekd.report/1"
COLUMNS = ["artifact", "target", "precision", "files", "size (KB)", "gzip (KB)", "params", "top-1", "drop",
           "p50 (ms)", "p99 (ms)", "cv", "first (ms)", "load (ms)", "threads", "peak RSS (MB)", "gate", "why"]


def build_report(run: str, rows: list[dict[str, Any]], references: dict[str, Any], eval_set: dict[str, Any],
                 gate: dict[str, Any], spec: LatencySpec, batch_sizes, memory: bool,
                 host_warnings: list[str] | None = None, quantize: dict[str, Any] | None = None,
                 measured: str = ACCURACY) -> dict[str, Any]:
    _second_opinion(rows)
    for row in rows:
        row["reason"] = full_reason(row)
    report = {"schema": REPORT_SCHEMA, "run": run, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "environment": describe(), "measured": measured, "eval_set": eval_set, "references": references, "gate": gate,
              "bench": {"latency": asdict(spec), "batch_sizes": sorted(set(batch_sizes) | {1}),
                        "interleaved": "all artifacts timed in rounds, order rotated each round",
                        "memory": MEMORY_METHOD.format(runs=20, batch=1) if memory else "not measured"},
              "rows": rows, "host_warnings": list(host_warnings or []), "warnings": noise_warnings(rows)}
    if quantize:
        report["quantize"] = quantize
    return report


def _second_opinion(rows: list[dict[str, Any]]) -> None:
    """The compile stage chose on its own timing; where this measurement does not confirm that a shipped
    candidate beats its target's fp32, the row says so (`noise_note`) rather than implying a speed-up."""
    fp32 = {r["target"]: r for r in rows if r.get("precision") == "fp32" and r.get("p50_ms")}
    for row in rows:
        base = fp32.get(row["target"])
        if not row.get("shipped") or base is None or base is row or not row.get("p50_ms"):
            continue
        stats = [(r.get("latency") or {}).get("batch1") for r in (row, base)]
        if row["p50_ms"] >= base["p50_ms"] or separated(*stats) is False:
            row["noise_note"] = (f"this measurement does not confirm the gain over {base['artifact']} ({row['p50_ms']:.3f} ms vs "
                                 f"{base['p50_ms']:.3f} ms, within noise): the compile stage chose on its own timing")


def noise_warnings(rows: list[dict[str, Any]]) -> list[str]:
    out = []
    for row in rows:
        for batch, stats in row.get("latency", {}).items():
            if stats["cv"] > CV_WARNING:
                out.append(f"{row['artifact']} {batch}: latency coefficient of variation {stats['cv']:.0%} > "
                           f"{CV_WARNING:.0%}; the machine was noisy, repeat on an idle machine before trusting it")
    return out


def reference_top1(report: dict[str, Any]) -> float | None:
    name = report.get("gate", {}).get("reference", "student_fp32")
    return report.get("references", {}).get(name, {}).get("top1")


def _fmt(value, pattern: str, scale: float = 1.0) -> str:
    if value is None:
        return "n/a"
    return pattern.format(value * scale if scale != 1.0 else value)


def _cold(row: dict[str, Any], key: str) -> Any:
    """From the fresh-process probe when it ran (what a device sees at start-up), else from this process."""
    return row.get("memory", {}).get(f"cold_{key}", row.get(key))


def files_label(row: dict[str, Any]) -> str:
    """The file set in short: what the device loads, then what else the bundle carries: '.onnx (+.ort)', '.xml+.bin'."""
    files = row.get("files") or []
    loaded = "+".join(Path(f["name"]).suffix for f in files if f.get("loaded")) or "?"
    extra = "+".join(Path(f["name"]).suffix for f in files if not f.get("loaded"))
    return f"{loaded} (+{extra})" if extra else loaded


def gate_cell(row: dict[str, Any], verdicts: dict[str, str] | None) -> str:
    if not row.get("shipped"):
        return "not shipped"
    return (verdicts or {}).get(row["artifact"], "") or "shipped"


def table_rows(report: dict[str, Any], verdicts: dict[str, str] | None = None) -> list[list[str]]:
    gate, reference = report.get("gate", {}), reference_top1(report)
    samples = report.get("eval_set", {}).get("samples")  # drops from counts, as the gate computes them
    rows = [[f"{name} (reference)", "", "fp32", "", "", "", "", _fmt(ref.get("top1"), "{:.2f}", 100)] + [""] * (len(COLUMNS) - 8)
            for name, ref in report["references"].items()]
    for row in report["rows"]:
        top1, batch1 = row.get("top1"), row.get("latency", {}).get("batch1", {})
        drop = accuracy_drop(reference, top1, gate.get("drop_type", "absolute"), samples) if None not in (reference, top1) else None
        rows.append([row["artifact"] + (" *" if row.get("shipped") else ""), row["target"], row["precision"], files_label(row),
                     _fmt(row["bytes"], "{:.1f}", 1 / 1024), _fmt(row.get("gzip_bytes"), "{:.1f}", 1 / 1024),
                     _fmt(row.get("parameters"), "{:,}"), _fmt(top1, "{:.2f}", 100), _fmt(drop, "{:+.2f}"),
                     _fmt(batch1.get("p50_ms"), "{:.3f}"), _fmt(batch1.get("p99_ms"), "{:.3f}"),
                     _fmt(batch1.get("cv"), "{:.0%}"), _fmt(_cold(row, "first_inference_ms"), "{:.2f}"),
                     _fmt(_cold(row, "session_create_ms"), "{:.1f}"), _fmt(row.get("threads", {}).get("runtime"), "{}"),
                     _fmt(row.get("memory", {}).get("peak_rss_mb"), "{:.0f}"), gate_cell(row, verdicts), short_reason(row)])
    return rows


def markdown(report: dict[str, Any], verdicts: dict[str, str] | None = None) -> str:
    env = report.get("environment", {})
    lines = [f"# edgekd report: {report['run']}", "",
             f"Evaluation set: {report['eval_set']['samples']} samples (sha256 {report['eval_set']['sha256'][:12]}). "
             f"Drop is in top-1 {'points' if report['gate'].get('drop_type', 'absolute') == 'absolute' else 'percent'} "
             f"vs `{report['gate']['reference']}`; `*` marks the artifact shipped per target. "
             "Latency at batch 1; first = the first inference and load = session creation, both in a fresh process "
             "when memory was measured; threads as the runtime reports them (0: onnxruntime's default); "
             "peak RSS from a fresh process per artifact.", "",
             f"Machine: {env.get('cpu', {}).get('model', '?')} ({env.get('cpu', {}).get('cores', '?')} cores, "
             f"{' '.join(env.get('cpu', {}).get('flags', []))}), {env.get('os', '?')}.", "",
             *([f"**{measured_note(report)}**", ""] if measured_note(report) else []),
             "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(r) + " |" for r in table_rows(report, verdicts)]
    lines += ["", "`files`: what the device's session loads (its size is `size`), then in parentheses what else the "
              "bundle carries. Why each row is as it is, in full:", ""]
    lines += [f"- `{row['artifact']}`: {row['reason']}" for row in report["rows"] if row.get("reason")]
    if report.get("host_warnings"):
        lines += ["", "This machine is not the device:", ""] + [f"- Warning: {w}" for w in report["host_warnings"]]
    if report.get("warnings"):
        lines += [""] + [f"- Warning: {w}" for w in report["warnings"]]
    return "\n".join(lines) + "\n"


def write_reports(out_dir: Path, report: dict[str, Any], verdicts: dict[str, str] | None = None) -> list[Path]:
    from .html import render_html

    return [write_json_atomic(out_dir / "report.json", report),
            write_text_atomic(out_dir / "report.md", markdown(report, verdicts)),
            write_text_atomic(out_dir / "report.html", render_html(report, verdicts))]
