"""report.html: one self-contained file (inline CSS, plots as base64 PNG) that opens anywhere, offline.

matplotlib is an extra (`pip install edgekd[report]`), imported only here and only when plotting;
without it the page still has the table and says how to get the plots.
"""
from __future__ import annotations

import base64
import html
import io
from typing import Any

from edgekd.core.metrics import measured_note, metric_spec
from edgekd.device.latency import CV_WARNING
from edgekd.device.report.table import columns, intro, other_warnings, table_rows

_CSS = """body{font-family:system-ui,sans-serif;margin:16px;color:#222}table{border-collapse:collapse;font-size:12px}
th,td{border:1px solid #ccc;padding:3px 6px;text-align:right;white-space:nowrap}th{white-space:normal}
th{background:#f0f0f0}td:first-child,th:first-child{text-align:left}
.pass{color:#176b2c;font-weight:bold}.fail{color:#b00020;font-weight:bold}.skip{color:#666;font-weight:bold}.warn{color:#8a5a00}
figure{display:inline-block;margin:12px 16px 12px 0;vertical-align:top}figcaption{font-size:13px;color:#555;max-width:560px}
code{background:#f4f4f4;padding:1px 4px}td.why,th.why{text-align:left;white-space:normal;min-width:170px;max-width:250px}
.small{font-size:12px}.small ul{margin:2px 0}details{margin:8px 0}"""


def render_html(report: dict[str, Any], verdicts: dict[str, str] | None = None,
                failed: list[tuple[str, str]] | None = None) -> str:
    esc = html.escape
    env = report.get("environment", {})
    cpu = env.get("cpu", {})
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>edgekd report: {esc(report['run'])}</title>",
             f"<style>{_CSS}</style></head><body><h1>edgekd report: {esc(report['run'])}</h1>",
             f"<p>{_evaluation_set(report)} Created {esc(report.get('created', ''))}.</p>",
             f"<p><strong>{esc(measured_note(report))}</strong></p>" if measured_note(report) else "",
             f"<p>Machine: {esc(str(cpu.get('model', '?')))}, {cpu.get('cores', '?')} cores, "
             f"flags {esc(' '.join(cpu.get('flags', [])))}; "
             f"GPU {esc(str((env.get('gpu') or {}).get('name', 'none')))}; {esc(env.get('os', '?'))}; "
             f"{esc(', '.join(f'{k} {v}' for k, v in env.get('libraries', {}).items()))}.</p>",
             _table(report, verdicts), _gate_failures(failed), _host_notes(report)]
    parts.append(_plots(report))
    parts.append(_why_in_full(report))
    parts.append(_noise_note(report))
    parts.append(_method(report.get("bench")) + "</body></html>")
    return "\n".join(parts) + "\n"


def _evaluation_set(report: dict[str, Any]) -> str:
    if not metric_spec(report.get("task_metric")).higher_is_better:  # a language model's: held-out blocks, generation
        return html.escape(intro(report))
    return (f"Evaluation set: {report['eval_set']['samples']} samples, "
            f"sha256 <code>{html.escape(report['eval_set']['sha256'][:16])}</code>. "
            f"Reference for the drop: <code>{html.escape(report['gate'].get('reference', ''))}</code>.")


def _noise_note(report: dict[str, Any]) -> str:
    """One line, not one per warning: on a busy machine every artifact and batch size trips the check."""
    noisy = [f"{row['artifact']} {batch} {stats['cv']:.0%}" for row in report["rows"]
             for batch, stats in row.get("latency", {}).items() if stats["cv"] > CV_WARNING]
    if not noisy:
        return ""
    return (f"<p class='warn'>Warning: latency coefficient of variation above {CV_WARNING:.0%} (a noisy machine; "
            f"medians are robust to it, means and p99 are not) for {html.escape(', '.join(noisy))}.</p>")


def _method(bench: dict[str, Any] | None) -> str:
    if not bench or "latency" not in bench:  # a language model's: its generation settings are in the intro
        return ""
    spec = bench["latency"]
    return (f"<p>Latency: warm-up of at least {spec['warmup_runs']} runs and {spec['warmup_seconds']} s, then at least "
            f"{spec['runs']} timed runs and {spec['min_seconds']} s per artifact in {spec['rounds']} rounds, "
            f"{html.escape(bench['interleaved'])}; batch sizes {bench['batch_sizes']}. "
            f"Memory: {html.escape(bench['memory'])}.</p>")


def _table(report: dict[str, Any], verdicts: dict[str, str] | None) -> str:
    names = columns(report)
    head = "".join(f"<th class='why'>{c}</th>" if c == "why" else f"<th>{html.escape(c)}</th>" for c in names)
    gate, why = names.index("gate"), names.index("why")
    full = [""] * len(report["references"]) + [row.get("reason") or "" for row in report["rows"]]
    body = []
    for row, reason in zip(table_rows(report, verdicts), full, strict=True):
        cells = [f"<td>{html.escape(c)}</td>" for c in row[:gate]]
        css = {"PASS": "pass", "FAIL": "fail", "SKIP": "skip"}.get(row[gate], "")
        cells.append(f"<td class='{css}'>{html.escape(row[gate])}</td>")
        cells.append(f"<td class='why' title='{html.escape(reason, quote=True)}'>{html.escape(row[why])}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _gate_failures(failed: list[tuple[str, str]] | None) -> str:
    items = "".join(f"<li><code>{html.escape(artifact)}</code>: {html.escape(why)}</li>" for artifact, why in failed or [])
    return f"<div class='warn'><strong>Why the gate failed:</strong><ul>{items}</ul></div>" if items else ""


def _host_notes(report: dict[str, Any]) -> str:
    notes = "".join(f"<li>{html.escape(w)}</li>" for w in report.get("host_warnings", []))
    others = "".join(f"<li>{html.escape(w)}</li>" for w in other_warnings(report))
    return ((f"<div class='warn small'>This machine is not the device:<ul>{notes}</ul></div>" if notes else "")
            + (f"<div class='warn small'>Warnings:<ul>{others}</ul></div>" if others else ""))


def _why_in_full(report: dict[str, Any]) -> str:
    """The full reasons (the table's cells hold the short form): nothing is only in report.json."""
    items = "".join(f"<li><code>{html.escape(r['artifact'])}</code>: {html.escape(r['reason'])}</li>"
                    for r in report["rows"] if r.get("reason"))
    return f"<details open><summary>Why, in full</summary><ul class='small'>{items}</ul></details>" if items else ""


def _plots(report: dict[str, Any]) -> str:
    try:
        import matplotlib
    except ImportError:  # the device install has no matplotlib: the table is still worth having
        return "<p>Plots need matplotlib: <code>pip install 'edgekd[report]'</code>, then re-render.</p>"

    matplotlib.use("Agg")  # headless: no display on CI machines or devices
    from matplotlib import pyplot as plt

    from edgekd.device.report import plots

    figures = [(plots.accuracy_vs_latency(plt, report),
                "Top-1 against p50 latency at batch 1 (log scale), bars from p10 to p90; colour = target, marker = "
                "precision, filled = shipped; the line is the Pareto front, gray lines the references. Rows not timed "
                "on this machine stand apart on the right."),
               (plots.speedup_bars(plt, report), "Speed-up over each target's fp32; hatched bars are within noise "
                "(the interleaved rounds do not separate them from fp32)."),
               (plots.value_bars(plt, report, "perplexity", "perplexity on the held-out blocks (lower is better)",
                                 "Perplexity per model"), "Perplexity of each model and reference; solid = shipped."),
               (plots.value_bars(plt, report, "tokens_per_second", "tokens/s at batch 1, first token excluded (higher is "
                                 "faster)", "Generation speed"), "Generation speed of each model timed on this machine."),
               (plots.size_bars(plt, report), "Size of the files the device loads"
                + (", and gzip-compressed." if any(r.get("gzip_bytes") for r in report["rows"]) else ".")),
               (plots.sensitivity_bars(plt, report), "Per recipe, per quantized node in the fallback search's order: "
                "the quantity that order came from (the top-1 points the node alone in float recovers; past the measured "
                "nodes, or in older reports, the one-pass score); the search keeps the top ones in float (red).")]
    return "".join(f"<figure><img alt='plot' src='data:image/png;base64,{_png(plt, fig)}'><figcaption>"
                   f"{html.escape(caption)}</figcaption></figure>" for fig, caption in figures if fig is not None)


def _png(plt, fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)  # constrained layout: everything inside the figure, no bbox trimming
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")
