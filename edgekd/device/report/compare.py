"""`edgekd compare A B`: the same artifacts in two reports (two machines, two versions) side by side.

Ratios are B / A (latency 0.5 = B twice as fast); the top-1 delta is B - A in points and is only
shown when both reports used the same evaluation set (by sha256). A latency ratio between timings the
measurements do not separate (edgekd.device.noise) reads "within noise", not as a speed-up.

Language models' reports (task_metric perplexity) hold no batch latency nor top-1: their rows are compared on
perplexity (lower is better; the delta B - A again only on the same evaluation set) and generation speed (tokens/s,
ratio B / A, higher is faster; per-token p50). A pipeline's report measured on more samples than its bundles carry
(a language model's bench.device_blocks) also records its numbers on the bundles' set (bundle_eval_set, each row's
bundle_eval): compared with `edgekd bench` of those bundles, those numbers are the ones shown.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from edgekd.device.noise import separated

COMPARE_SCHEMA = "edgekd.compare/1"
MARKDOWN_TITLE = "# edgekd compare"
COLUMNS = ["artifact", "p50 A (ms)", "p50 B (ms)", "B/A", "size A (KB)", "size B (KB)", "B/A ",
           "top-1 A", "top-1 B", "delta (pts)"]
LM_COLUMNS = ["artifact", "perplexity A", "perplexity B", "delta", "tok/s A", "tok/s B", "B/A", "token p50 A (ms)",
              "token p50 B (ms)", "size A (KB)", "size B (KB)", "B/A "]


def _ratio(a: float | None, b: float | None) -> float | None:
    return b / a if a and b is not None else None


def _shared_eval_set(a: dict[str, Any], b: dict[str, Any]) -> tuple[bool, bool] | None:
    """Which evaluation set of each report the two have in common, by sha256: (A's bundle set?, B's bundle set?), or
    None. A pipeline's report measures the whole test split (eval_set) and, where its bundles carry fewer samples than
    that (a language model's bench.device_blocks), also those (bundle_eval_set, the rows' bundle_eval): what
    `edgekd bench` of the bundles measures, so a build report compares with a device report of the same model."""
    def sha(report: dict[str, Any], bundle: bool) -> Any:
        return (report.get("bundle_eval_set" if bundle else "eval_set") or {}).get("sha256")

    if sha(a, False) == sha(b, False):
        return False, False
    for pair in ((True, False), (False, True)):
        if sha(a, pair[0]) is not None and sha(a, pair[0]) == sha(b, pair[1]):
            return pair
    return None


def _on(row: dict[str, Any], metric: str, bundle: bool) -> Any:
    """A row's metric on the report's full evaluation set, or on its bundles' (bundle_eval)."""
    return (row.get("bundle_eval") or {}).get(metric) if bundle else row.get(metric)


def compare_reports(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    shared = _shared_eval_set(a, b)
    same_eval = shared is not None
    metric = "perplexity" if a.get("task_metric") == "perplexity" else "top1"
    rows_b = {r["artifact"]: r for r in b["rows"]}
    rows = []
    for ra in a["rows"]:
        rb = rows_b.get(ra["artifact"])
        if rb is None:
            continue
        if shared and any(shared):  # each row's metric on the set both measured
            ra, rb = ({**row, metric: _on(row, metric, bundle)} for row, bundle in ((ra, shared[0]), (rb, shared[1])))
        top1_delta = (rb["top1"] - ra["top1"]) * 100 if same_eval and None not in (ra.get("top1"), rb.get("top1")) else None
        rows.append({"artifact": ra["artifact"], "p50_ms_a": ra.get("p50_ms"), "p50_ms_b": rb.get("p50_ms"),
                     "latency_ratio": _ratio(ra.get("p50_ms"), rb.get("p50_ms")),
                     "latency_separated": separated(_batch1(ra), _batch1(rb)), "bytes_a": ra["bytes"], "bytes_b": rb["bytes"],
                     "size_ratio": _ratio(ra["bytes"], rb["bytes"]), "top1_a": ra.get("top1"), "top1_b": rb.get("top1"),
                     "top1_delta_points": top1_delta, "threads_a": _threads(ra), "threads_b": _threads(rb)})
        if a.get("task_metric") == "perplexity":
            rows[-1].update(_generation_columns(ra, rb, same_eval))
    only = sorted(set(r["artifact"] for r in a["rows"]) ^ set(rows_b))
    return {"schema": COMPARE_SCHEMA, "a": _label(a), "b": _label(b), "same_eval_set": same_eval, "same_run": a.get("run") == b.get("run"),
            "task_metric": a.get("task_metric") or "top1", "rows": rows, "unmatched": only,
            **({"on_bundle_eval_set": _bundle_side(shared, a, b)} if shared and any(shared) else {})}


def _bundle_side(shared: tuple[bool, bool], a: dict[str, Any], b: dict[str, Any]) -> str:
    """The note's words: whose numbers are those of its bundles' evaluation set, of how many of its samples."""
    side, report = ("A", a) if shared[0] else ("B", b)
    subset, full = (report.get(key) or {} for key in ("bundle_eval_set", "eval_set"))
    return (f"{side}'s values are on its bundles' evaluation set ({subset.get('samples', '?')} of its "
            f"{full.get('samples', '?')} samples), the one the other report measured")


def _generation_columns(ra: dict[str, Any], rb: dict[str, Any], same_eval: bool) -> dict[str, Any]:
    """A language model's row: what its reports measure instead of batch latency and top-1 (both n/a there)."""
    ppl_a, ppl_b = ra.get("perplexity"), rb.get("perplexity")
    return {"perplexity_a": ppl_a, "perplexity_b": ppl_b,
            "perplexity_delta": ppl_b - ppl_a if same_eval and None not in (ppl_a, ppl_b) else None,
            "tokens_per_second_a": ra.get("tokens_per_second"), "tokens_per_second_b": rb.get("tokens_per_second"),
            "tokens_per_second_ratio": _ratio(ra.get("tokens_per_second"), rb.get("tokens_per_second")),
            "per_token_p50_ms_a": ra.get("per_token_p50_ms"), "per_token_p50_ms_b": rb.get("per_token_p50_ms")}


def _threads(row: dict[str, Any]) -> Any:
    """The threads a row was timed with, as the runtime reports them (else as requested); None when not recorded."""
    threads = row.get("threads")
    return threads.get("runtime", threads.get("requested")) if isinstance(threads, dict) else threads


def _batch1(row: dict[str, Any]) -> dict[str, Any] | None:
    stats = (row.get("latency") or {}).get("batch1")
    return stats or ({"p50_ms": row["p50_ms"]} if row.get("p50_ms") else None)


def _latency_ratio(row: dict[str, Any]) -> str:
    text = _f(row["latency_ratio"], "{:.2f}x")
    return f"within noise ({text})" if row.get("latency_separated") is False else text


def _label(report: dict[str, Any]) -> dict[str, Any]:
    env = report.get("environment", {})
    return {"run": report.get("run"), "created": report.get("created"), "cpu": env.get("cpu", {}).get("model"),
            "libraries": env.get("libraries", {})}


def _f(value, pattern: str, scale: float = 1.0) -> str:
    return pattern.format(value * scale) if value is not None else "n/a"


def _columns(comparison: dict[str, Any]) -> list[str]:
    return LM_COLUMNS if comparison.get("task_metric") == "perplexity" else COLUMNS


def table(comparison: dict[str, Any]) -> list[list[str]]:
    if comparison.get("task_metric") == "perplexity":
        return [[r["artifact"], _f(r["perplexity_a"], "{:.3f}"), _f(r["perplexity_b"], "{:.3f}"),
                 _f(r["perplexity_delta"], "{:+.3f}"), _f(r["tokens_per_second_a"], "{:.1f}"),
                 _f(r["tokens_per_second_b"], "{:.1f}"), _f(r["tokens_per_second_ratio"], "{:.2f}x"),
                 _f(r["per_token_p50_ms_a"], "{:.3f}"), _f(r["per_token_p50_ms_b"], "{:.3f}"),
                 _f(r["bytes_a"], "{:.1f}", 1 / 1024), _f(r["bytes_b"], "{:.1f}", 1 / 1024), _f(r["size_ratio"], "{:.2f}x")]
                for r in comparison["rows"]]
    return [[r["artifact"], _f(r["p50_ms_a"], "{:.3f}"), _f(r["p50_ms_b"], "{:.3f}"), _latency_ratio(r),
             _f(r["bytes_a"], "{:.1f}", 1 / 1024), _f(r["bytes_b"], "{:.1f}", 1 / 1024), _f(r["size_ratio"], "{:.2f}x"),
             _f(r["top1_a"], "{:.2f}", 100), _f(r["top1_b"], "{:.2f}", 100), _f(r["top1_delta_points"], "{:+.2f}")]
            for r in comparison["rows"]]


def render_text(comparison: dict[str, Any]) -> str:
    columns = _columns(comparison)
    rows = [columns] + table(comparison)
    widths = [max(len(r[i]) for r in rows) for i in range(len(columns))]
    fmt = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()  # noqa: E731
    lines = [f"A: {comparison['a']['run']} on {comparison['a']['cpu']} ({comparison['a']['created']})",
             f"B: {comparison['b']['run']} on {comparison['b']['cpu']} ({comparison['b']['created']})", "",
             fmt(rows[0]), "  ".join("-" * w for w in widths), *(fmt(r) for r in rows[1:])]
    lines += _notes(comparison)
    return "\n".join(lines)


def render_markdown(comparison: dict[str, Any]) -> str:
    lines = [MARKDOWN_TITLE, "", f"- A: {comparison['a']['run']} on {comparison['a']['cpu']} ({comparison['a']['created']})",
             f"- B: {comparison['b']['run']} on {comparison['b']['cpu']} ({comparison['b']['created']})", "",
             "| " + " | ".join(c.strip() for c in _columns(comparison)) + " |", "|" + "---|" * len(_columns(comparison))]
    lines += ["| " + " | ".join(r) + " |" for r in table(comparison)]
    return "\n".join(lines + [""] + _notes(comparison)) + "\n"


def _notes(comparison: dict[str, Any]) -> list[str]:
    notes = []
    measured = "perplexity" if comparison.get("task_metric") == "perplexity" else "top-1"
    if not comparison["same_eval_set"] and not comparison.get("same_run", True):
        notes.append("warning: different runs measured on different evaluation sets: most likely two different models, "
                     f"so the ratios compare those models, not one model on two machines; {measured} deltas are not shown")
    elif not comparison["same_eval_set"]:
        notes.append(f"note: the reports used different evaluation sets (sha256); {measured} deltas are not shown")
    if comparison.get("on_bundle_eval_set"):
        notes.append(f"note: {comparison['on_bundle_eval_set']}")
    if measured == "perplexity":
        notes.append("note: perplexity: lower is better; tok/s B/A above 1 = B generates faster (batch 1, first token excluded)")
    other_threads = [r for r in comparison["rows"] if None not in (r.get("threads_a"), r.get("threads_b"))
                     and r["threads_a"] != r["threads_b"]]
    if other_threads:
        shown = ", ".join(f"{r['artifact']} ({r['threads_a']} vs {r['threads_b']})" for r in other_threads[:4])
        notes.append(f"warning: timed with other thread counts in A and B: {shown}; the latency ratios compare thread "
                     "counts as well as machines: bench both with the same --threads")
    if comparison["unmatched"]:
        notes.append(f"note: only in one report: {', '.join(comparison['unmatched'])}")
    if any(r.get("latency_separated") is False for r in comparison["rows"]):
        notes.append("note: within noise = the two timings' per-round medians (or p10-p90 ranges) overlap: "
                     "the ratio is not a measured speed-up; repeat on idle machines with more runs")
    if not comparison["rows"]:
        notes.append("note: no artifact appears in both reports")
    return notes


def refuse_replacing_other_files(markdown: Path | None, json_out: Path | None) -> None:
    """--markdown and --json replace only what an earlier compare wrote there (or nothing): never a user's notes, a
    pipeline file or a bundle's manifest.json. OutputError naming the option otherwise."""
    from edgekd.core.errors import OutputError

    for option, path, ours in (("--markdown", markdown, _earlier_markdown), ("--json", json_out, _earlier_json)):
        if path is not None and Path(path).exists() and not ours(Path(path)):
            raise OutputError(f"{option} {path}: exists and is not an earlier edgekd compare's, which it would replace; "
                              "give a new file name (or delete it first)")


def _earlier_markdown(path: Path) -> bool:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read(len(MARKDOWN_TITLE)) == MARKDOWN_TITLE
    except (OSError, UnicodeDecodeError):
        return False


def _earlier_json(path: Path) -> bool:
    from edgekd.core.fileio import read_json

    try:
        data = read_json(path)
    except Exception:  # unreadable or not JSON: not a comparison edgekd wrote
        return False
    # edgekd.compare/1; one written before comparisons carried a schema has its three keys
    return isinstance(data, dict) and (data.get("schema") == COMPARE_SCHEMA or {"a", "b", "same_eval_set"} <= set(data))
