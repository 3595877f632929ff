"""report.html: one self-contained file (inline CSS, plots as base64 PNG) that opens anywhere, offline.

matplotlib is an extra (`pip install edgekd[report]`), imported only here and only when plotting;
without it the page still has the table and says how to get the plots.
"""
from __future__ import annotations

import base64
import html
import io
from typing import Any

from .latency import CV_WARNING
from .report import COLUMNS, table_rows

_CSS = """body{font-family:system-ui,sans-serif;margin:24px;color:#222}table{border-collapse:collapse;font-size:13px}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#f0f0f0}td:first-child,th:first-child{text-align:left}
.pass{color:#176b2c;font-weight:bold}.fail{color:#b00020;font-weight:bold}.warn{color:#8a5a00}
figure{display:inline-block;margin:12px 16px 12px 0;vertical-align:top}figcaption{font-size:13px;color:#555;max-width:560px}
code{background:#f4f4f4;padding:1px 4px}td.why{text-align:left;max-width:340px}
.reasons{font-size:13px;color:#444}details{margin:8px 0}"""


def render_html(report: dict[str, Any], verdicts: dict[str, str] | None = None) -> str:
    esc = html.escape
    env = report.get("environment", {})
    cpu = env.get("cpu", {})
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>edgekd report: {esc(report['run'])}</title>",
             f"<style>{_CSS}</style></head><body><h1>edgekd report: {esc(report['run'])}</h1>",
             f"<p>Evaluation set: {report['eval_set']['samples']} samples, "
             f"sha256 <code>{esc(report['eval_set']['sha256'][:16])}</code>. "
             f"Reference for the drop: <code>{esc(report['gate'].get('reference', ''))}</code>. "
             f"Created {esc(report.get('created', ''))}.</p>",
             f"<p>Machine: {esc(str(cpu.get('model', '?')))}, {cpu.get('cores', '?')} cores, "
             f"flags {esc(' '.join(cpu.get('flags', [])))}; "
             f"GPU {esc(str((env.get('gpu') or {}).get('name', 'none')))}; {esc(env.get('os', '?'))}; "
             f"{esc(', '.join(f'{k} {v}' for k, v in env.get('libraries', {}).items()))}.</p>",
             _table(report, verdicts)]
    parts.append(_plots(report))
    parts.append(_noise_note(report))
    parts.append(_method(report.get("bench")) + "</body></html>")
    return "\n".join(parts) + "\n"


def _noise_note(report: dict[str, Any]) -> str:
    """One line, not one per warning: on a busy machine every artifact and batch size trips the check."""
    noisy = [f"{row['artifact']} {batch} {stats['cv']:.0%}" for row in report["rows"]
             for batch, stats in row.get("latency", {}).items() if stats["cv"] > CV_WARNING]
    if not noisy:
        return ""
    return (f"<p class='warn'>Warning: latency coefficient of variation above {CV_WARNING:.0%} (a noisy machine; "
            f"medians are robust to it, means and p99 are not) for {html.escape(', '.join(noisy))}.</p>")


def _method(bench: dict[str, Any] | None) -> str:
    if not bench:
        return ""
    spec = bench["latency"]
    return (f"<p>Latency: warm-up of at least {spec['warmup_runs']} runs and {spec['warmup_seconds']} s, then at least "
            f"{spec['runs']} timed runs and {spec['min_seconds']} s per artifact in {spec['rounds']} rounds, "
            f"{html.escape(bench['interleaved'])}; batch sizes {bench['batch_sizes']}. "
            f"Memory: {html.escape(bench['memory'])}.</p>")


def _table(report: dict[str, Any], verdicts: dict[str, str] | None) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in COLUMNS)
    gate, why = COLUMNS.index("gate"), COLUMNS.index("why")
    full = [""] * len(report["references"]) + [row.get("reason") or "" for row in report["rows"]]
    body = []
    for row, reason in zip(table_rows(report, verdicts), full, strict=True):
        cells = [f"<td>{html.escape(c)}</td>" for c in row[:gate]]
        css = {"PASS": "pass", "FAIL": "fail"}.get(row[gate], "")
        cells.append(f"<td class='{css}'>{html.escape(row[gate])}</td>")
        cells.append(f"<td class='why' title='{html.escape(reason, quote=True)}'>{html.escape(row[why])}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>" + _reasons(report)


def _reasons(report: dict[str, Any]) -> str:
    """The full reasons under the table (the cells hold the short form): nothing is only in report.json."""
    items = "".join(f"<li><code>{html.escape(r['artifact'])}</code>: {html.escape(r['reason'])}</li>"
                    for r in report["rows"] if r.get("reason"))
    notes = "".join(f"<li class='warn'>{html.escape(w)}</li>" for w in report.get("host_warnings", []))
    return ((f"<details open><summary>Why, in full</summary><ul class='reasons'>{items}</ul></details>" if items else "")
            + (f"<p class='warn'>This machine is not the device:</p><ul>{notes}</ul>" if notes else ""))


def _plots(report: dict[str, Any]) -> str:
    try:
        import matplotlib
    except ImportError:  # the device install has no matplotlib: the table is still worth having
        return "<p>Plots need matplotlib: <code>pip install 'edgekd[report]'</code>, then re-render.</p>"

    matplotlib.use("Agg")  # headless: no display on CI machines or devices
    from matplotlib import pyplot as plt

    figures = [(_accuracy_vs_latency(plt, report), "Top-1 accuracy against p50 latency at batch 1 (log scale); "
                "filled markers are shipped artifacts, gray lines the references."),
               (_size_bars(plt, report), "Model size on disk and gzip-compressed.")]
    unplotted = [r["artifact"] for r in report["rows"] if r.get("p50_ms") is None or r.get("top1") is None]
    note = f" Not in the accuracy plot (no latency or accuracy on this machine): {', '.join(unplotted)}." if unplotted else ""
    return "".join(f"<figure><img alt='plot' src='data:image/png;base64,{png}'><figcaption>{html.escape(caption)}"
                   f"{html.escape(note) if i == 0 else ''}</figcaption></figure>" for i, (png, caption) in enumerate(figures))


def matplotlib_ticker():
    from matplotlib import ticker

    return ticker


def _png(plt, fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _accuracy_vs_latency(plt, report: dict[str, Any]) -> str:
    fig, ax = plt.subplots(figsize=(6.2, 4))
    targets = sorted({r["target"] for r in report["rows"]})
    colors = {t: plt.get_cmap("tab10")(i % 10) for i, t in enumerate(targets)}
    plotted = [r for r in report["rows"] if r.get("p50_ms") is not None and r.get("top1") is not None]
    for index, row in enumerate(plotted):
        color = colors[row["target"]]
        ax.scatter(row["p50_ms"], row["top1"] * 100, s=80, marker="o", edgecolors=color,
                   facecolors=color if row.get("shipped") else "none", linewidths=2)
        ax.annotate(row["artifact"], (row["p50_ms"], row["top1"] * 100), textcoords="offset points",
                    xytext=(6, 10 - 9 * (index % 3)), fontsize=8)  # staggered: equal-accuracy labels would overlap
    styles = ["--", ":", "-."]
    for index, (name, ref) in enumerate(report.get("references", {}).items()):
        if ref.get("top1") is not None:
            ax.axhline(ref["top1"] * 100, linestyle=styles[index % 3], linewidth=1, color="gray", label=f"{name} (reference)")
    ax.set_xscale("log")
    ticker = matplotlib_ticker()
    ax.xaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 3.0, 5.0)))
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    ax.set_xlabel("p50 latency, batch 1 (ms)")
    ax.set_ylabel("top-1 (%)")
    ax.set_title("Accuracy vs latency")
    ax.grid(True, which="both", alpha=0.3)
    if report.get("references"):
        ax.legend(fontsize=8, loc="lower right")
    return _png(plt, fig)


def _size_bars(plt, report: dict[str, Any]) -> str:
    rows = report["rows"]
    fig, ax = plt.subplots(figsize=(6.2, 0.4 * len(rows) + 1.2))
    positions = range(len(rows))
    ax.barh([p + 0.2 for p in positions], [r["bytes"] / 1024 for r in rows], height=0.4, label="on disk")
    ax.barh([p - 0.2 for p in positions], [(r.get("gzip_bytes") or 0) / 1024 for r in rows], height=0.4, label="gzip")
    ax.set_yticks(list(positions), [r["artifact"] for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("size (KB)")
    ax.set_title("Model size")
    ax.legend()
    ax.grid(True, axis="x", alpha=0.3)
    return _png(plt, fig)
