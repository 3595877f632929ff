"""The report's figures, built from report.json alone (matplotlib, headless).

- accuracy against latency: every row with a top-1; p10-p90 spread bars; the Pareto front (no other row both
  faster and more accurate); colour = target and marker = precision, both in a legend outside the axes; rows
  not timed on this machine (an ARM target built on x86) in a strip of their own beside it, not left out;
- speed-up against the target's fp32, with rows the table's why column calls within noise of fp32 hatched;
- size of the files the device loads (and gzip-compressed, where the rows record it);
- a language model's perplexity and tokens/s per model (value_bars: any per-row number, the references beside);
- per-node int8 sensitivity, when the quantize stage's fallback search ran.

Each builder returns a matplotlib Figure (tests inspect its artists); html.py turns them into PNGs. Layout is
matplotlib's constrained layout, so labels and legends stay inside the figure, never cut off.
"""
from __future__ import annotations

from typing import Any

from edgekd.device.noise import WITHIN_NOISE, separated
from edgekd.device.report.reasons import row_reasons

MARKERS = {"fp32": "o", "fp16": "s", "bf16": "D", "int8": "^"}
# The y axis spans at least this many top-1 points: 98.9 to 99.4 drawn full height makes noise look dramatic.
MIN_TOP1_SPAN = 2.0


def colours(plt, report: dict[str, Any]) -> dict[str, Any]:
    targets = sorted({r["target"] for r in report["rows"]})
    return {t: plt.get_cmap("tab10")(i % 10) for i, t in enumerate(targets)}


def _batch1(row: dict[str, Any]) -> dict[str, Any]:
    return (row.get("latency") or {}).get("batch1") or {}


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both (lower latency x, higher accuracy y), by latency."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], float("-inf")
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def accuracy_vs_latency(plt, report: dict[str, Any]):
    rows = [r for r in report["rows"] if r.get("top1") is not None]
    if not rows:  # a report on another metric (a language model's perplexity): no top-1 to draw
        return None
    timed = [r for r in rows if r.get("p50_ms")]
    untimed = [r for r in rows if not r.get("p50_ms")]
    fig, axes = plt.subplots(1, 2 if untimed else 1, figsize=(8.4 if untimed else 7.6, 4.2), layout="constrained",
                             sharey=True, squeeze=False, gridspec_kw={"width_ratios": [6, 1] if untimed else [1]})
    ax, colour = axes[0][0], colours(plt, report)
    for row in timed:
        stats, top1 = _batch1(row), row["top1"] * 100
        low, high = stats.get("p10_ms", row["p50_ms"]), stats.get("p90_ms", row["p50_ms"])
        ax.errorbar(row["p50_ms"], top1, xerr=[[row["p50_ms"] - low], [high - row["p50_ms"]]], fmt="none",
                    ecolor=colour[row["target"]], alpha=0.6, capsize=3, zorder=2)
        _point(ax, row, row["p50_ms"], top1, colour)
    front = pareto_front([(r["p50_ms"], r["top1"] * 100) for r in timed])
    if len(front) > 1:
        ax.step([timed[i]["p50_ms"] for i in front], [timed[i]["top1"] * 100 for i in front], where="post",
                color="black", linewidth=1, alpha=0.5, zorder=1, label="Pareto front")
    _references(ax, report)
    ax.set_xscale("log")
    _log_ticks(ax)
    ax.margins(x=0.15, y=0.1)  # points and spread bars sit inside the frame, never on it
    ax.set_xlabel("p50 latency at batch 1, ms (bars: p10 to p90)")
    ax.set_ylabel("top-1 (%)")
    ax.set_title("Accuracy vs latency")
    ax.grid(True, which="both", alpha=0.3)
    if untimed:
        strip = axes[0][1]
        for index, row in enumerate(untimed):
            _point(strip, row, index, row["top1"] * 100, colour)
        strip.set_xlim(-1, len(untimed))
        strip.set_xticks([])
        strip.set_xlabel("not timed\nhere")
        strip.grid(True, axis="y", alpha=0.3)
    _top1_limits(ax, rows, report)
    fig.legend(handles=_legend_handles(plt, ax, rows, colour), loc="outside right upper", fontsize=8, frameon=False)
    return fig


def _point(ax, row: dict[str, Any], x: float, y: float, colour: dict[str, Any]) -> None:
    c = colour[row["target"]]
    ax.scatter(x, y, s=70, marker=MARKERS.get(row["precision"], "o"), edgecolors=[c], linewidths=2, zorder=3,
               facecolors=[c] if row.get("shipped") else "none")


def _references(ax, report: dict[str, Any]) -> None:
    for index, (name, ref) in enumerate(report.get("references", {}).items()):
        if ref.get("top1") is not None:
            ax.axhline(ref["top1"] * 100, linestyle=["--", ":", "-."][index % 3], linewidth=1, color="gray",
                       label=f"{name} (reference)")


def _top1_limits(ax, rows: list[dict[str, Any]], report: dict[str, Any]) -> None:
    values = [r["top1"] * 100 for r in rows] + [ref["top1"] * 100 for ref in report.get("references", {}).values()
                                               if ref.get("top1") is not None]
    low, high = min(values), max(values)
    pad = max(0.15 * (high - low), (MIN_TOP1_SPAN - (high - low)) / 2, 0.2)
    ax.set_ylim(low - pad, min(100.0 + pad / 4, high + pad))


def _legend_handles(plt, ax, rows: list[dict[str, Any]], colour: dict[str, Any]) -> list:
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], linestyle="none", marker="s", markersize=9, markerfacecolor=c, markeredgecolor=c, label=t)
               for t, c in colour.items()]
    precisions = sorted({r["precision"] for r in rows}, key=lambda p: list(MARKERS).index(p) if p in MARKERS else 9)
    handles += [Line2D([], [], linestyle="none", marker=MARKERS.get(p, "o"), markersize=8, color="black",
                       markerfacecolor="none", label=p) for p in precisions]
    handles += [Line2D([], [], linestyle="none", marker="o", markersize=8, color="black", label="shipped (filled)")]
    handles += ax.get_legend_handles_labels()[0]
    return handles


def _log_ticks(ax) -> None:
    from matplotlib import ticker

    ax.xaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())


def speedups(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Per timed row with a timed fp32 on its target: fp32 p50 / row p50, and whether the timings separate them."""
    fp32 = {r["target"]: r for r in report["rows"] if r["precision"] == "fp32" and r.get("p50_ms")}
    out = []
    for row in report["rows"]:
        base = fp32.get(row["target"])
        if base is None or not row.get("p50_ms"):
            continue
        out.append({"artifact": row["artifact"], "target": row["target"], "speedup": base["p50_ms"] / row["p50_ms"],
                    "within_noise": row is not base and _within_noise(row, base),
                    "shipped": bool(row.get("shipped"))})
    return out


# The words of the table's why column that judge a row's speed against fp32 (reasons.short_reason): the compile
# stage's verdict ("within noise of fp32", "slower than fp32") or this measurement's ("slower than fp32 here").
SPEED_WORDS = (WITHIN_NOISE, "slower", "faster")


def _within_noise(row: dict[str, Any], base: dict[str, Any]) -> bool:
    """Whether the bar is hatched: as the row's why column judges its speed, so picture and table agree. The column
    shows the compile stage's verdict on the validation split (int8 "within noise of fp32") where there is one, and
    the plot used to read this measurement's comparison on the test split alone ("slower"): a solid 0.755x bar
    beside "within noise". A row whose column says nothing of speed (a device's bundle) falls back to this
    measurement's comparison (report.build._against_fp32), or to the timings themselves."""
    said = [reason["short"] for reason in row_reasons(row) if any(word in reason["short"] for word in SPEED_WORDS)]
    if said:
        return any(WITHIN_NOISE in phrase for phrase in said)
    versus = row.get("vs_fp32") or {}
    return versus["outcome"] == WITHIN_NOISE if versus else separated(_batch1(row), _batch1(base)) is False


def speedup_bars(plt, report: dict[str, Any]):
    bars = speedups(report)
    if not bars:
        return None
    colour = colours(plt, report)
    fig, ax = plt.subplots(figsize=(7.6, 0.45 * len(bars) + 1.4), layout="constrained")
    for i, bar in enumerate(bars):
        ax.barh(i, bar["speedup"], color=colour[bar["target"]], alpha=1.0 if bar["shipped"] else 0.45,
                hatch="//" if bar["within_noise"] else None, edgecolor="black" if bar["within_noise"] else "none")
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_yticks(range(len(bars)), [b["artifact"] + (" *" if b["shipped"] else "") for b in bars], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("speed-up over the target's fp32 at batch 1 (x)")
    ax.set_title("Speed-up vs fp32 (hatched: within noise; solid: shipped)")
    ax.margins(x=0.1)
    ax.grid(True, axis="x", alpha=0.3)
    return fig


def size_bars(plt, report: dict[str, Any]):
    rows = report["rows"]
    gzip = any(r.get("gzip_bytes") for r in rows)  # a language model's rows have none: no empty series in the legend
    fig, ax = plt.subplots(figsize=(7.6, 0.4 * len(rows) + 1.4), layout="constrained")
    positions = range(len(rows))
    offset, height = (0.2, 0.4) if gzip else (0.0, 0.6)
    ax.barh([p - offset for p in positions], [r["bytes"] / 1024 for r in rows], height=height, label="loaded by the device")
    if gzip:
        ax.barh([p + offset for p in positions], [(r.get("gzip_bytes") or 0) / 1024 for r in rows], height=height, label="gzip")
    ax.set_yticks(list(positions), [r["artifact"] for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("size (KB)")
    ax.set_title("Model size (the files the device loads)")
    ax.margins(x=0.1)
    fig.legend(loc="outside right upper", fontsize=8, frameon=False)
    ax.grid(True, axis="x", alpha=0.3)
    return fig


def value_bars(plt, report: dict[str, Any], key: str, xlabel: str, title: str):
    """One bar per reference and row that has a number under `key` (a language model's perplexity, its tokens/s):
    rows coloured by target, solid when shipped, the references gray; None when no row has one (an image report)."""
    def number(entry: dict[str, Any]) -> bool:
        return isinstance(entry.get(key), (int, float)) and not isinstance(entry.get(key), bool)

    rows = [r for r in report["rows"] if number(r)]
    if not rows:
        return None
    references = [(f"{name} (reference)", ref[key]) for name, ref in report.get("references", {}).items() if number(ref)]
    colour = colours(plt, report)
    bars = [(label, value, "#7f7f7f", 1.0) for label, value in references]
    bars += [(r["artifact"] + (" *" if r.get("shipped") else ""), r[key], colour[r["target"]], 1.0 if r.get("shipped") else 0.45)
             for r in rows]
    fig, ax = plt.subplots(figsize=(7.6, 0.4 * len(bars) + 1.4), layout="constrained")
    for index, (_label, value, face, alpha) in enumerate(bars):
        ax.barh(index, value, color=face, alpha=alpha)
    ax.set_yticks(range(len(bars)), [label for label, *_ in bars], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.margins(x=0.1)
    ax.grid(True, axis="x", alpha=0.3)
    return fig


def sensitivity_bars(plt, report: dict[str, Any]):
    """Per recipe whose fallback search ran (one panel each), per node in the order the search ranked them, the
    quantity that order came from (sensitivity_measure): the top-1 points the node alone in float recovers, else the
    one-pass score (noise added times reach), else in reports before that ranking the logit MSE its float version
    removed. Earlier the first recipe only was drawn, with bars of noise_added while the order was by score, so a
    longer bar could sit below a shorter one."""
    searches = (report.get("quantize") or {}).get("fallback") or {}
    if not searches:
        return None
    panels = [(recipe, search, search["sensitivity"][:15]) for recipe, search in searches.items()]
    heights = [0.35 * len(entries) + 1.0 for _, _, entries in panels]
    fig, axes = plt.subplots(len(panels), 1, figsize=(7.6, sum(heights) + 0.4), layout="constrained", squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    for ax, (recipe, search, entries) in zip(axes[:, 0], panels, strict=True):
        label, values = sensitivity_measure(entries)
        kept = set(search.get("nodes_in_float", []))
        bars = ax.barh(range(len(entries)), values,
                       color=["#d62728" if e["node"] in kept else "#7f7f7f" for e in entries])
        ax.bar_label(bars, labels=[f"{v:.3g}" for v in values], fontsize=7, padding=2)
        ax.set_yticks(range(len(entries)), [e["node"] for e in entries], fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel(label, fontsize=8)
        ax.set_title(f"int8 sensitivity per node ({recipe}; red: kept in float, {len(kept)} of "
                     f"{len(search['sensitivity'])})", fontsize=9)
        ax.margins(x=0.15)
        ax.grid(True, axis="x", alpha=0.3)
    return fig


def sensitivity_measure(entries: list[dict[str, Any]]) -> tuple[str, list[float]]:
    """The axis label and, per entry, the value the search's ranking ordered by (see sensitivity_bars). Nodes past the
    measured ones (a big model's tail, ranked by the one-pass score) are drawn at 0."""
    if any("recovered_alone_in_float" in e for e in entries):  # on the sensitivity samples, against plain int8
        return ("top-1 points recovered with the node alone in float",
                [max(0.0, e.get("recovered_alone_in_float") or 0.0) for e in entries])
    if any("score" in e for e in entries):
        return "one-pass score: int8 noise the node adds x its reach to the outputs", [e.get("score") or 0.0 for e in entries]
    return "logit MSE removed by keeping the node in float", [e.get("mse_removed") or 0.0 for e in entries]
