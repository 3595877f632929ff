"""The report's table, one row per reference and artifact: the markdown report, the terminal and the HTML page
all draw it from these rows."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from edgekd.core.errors import ArtifactError
from edgekd.core.metrics import accuracy_drop, measured_note, metric_spec
from edgekd.device.gate import reference_top1
from edgekd.device.latency import CV_WARNING
from edgekd.device.report.reasons import short_reason

# cosine: the mean cosine between each artifact's outputs and the reference logits (fp32), the fidelity beyond top-1.
TEST_DROP, USER_DROP = "drop (test)", "drop"
COLUMNS = ["artifact", "target", "precision", "files", "size (KB)", "gzip (KB)", "params", "top-1", TEST_DROP, "cosine",
           "p50 (ms)", "p99 (ms)", "cv", "first (ms)", "load (ms)", "threads", "peak RSS (MB)", "gate", "why"]


# A lower-is-better metric's table (a language model's, core.metrics.PERPLEXITY): perplexity and its increase over the
# reference, generation at batch 1 (per-token p50/p99 after the first token), greedy agreement with the fp32 model.
PERPLEXITY_COLUMNS = ["artifact", "target", "precision", "size (KB)", "perplexity", "vs ref", "tokens/s", "TTFT (ms)",
                      "p50 (ms)", "p99 (ms)", "token agreement", "gate", "why"]


def columns(report: dict[str, Any]) -> list[str]:
    """The table's columns for the report's metric (core.metrics.metric_spec); the drop is "(test)" only where it was
    measured on the test split (not on the user's --images or --texts)."""
    if not metric_spec(report.get("task_metric")).higher_is_better:
        return PERPLEXITY_COLUMNS
    return COLUMNS if user_eval_data(report) is None else [USER_DROP if c == TEST_DROP else c for c in COLUMNS]


def user_eval_data(report: dict[str, Any]) -> str | None:
    """The folder or file of the user's own evaluation data (`edgekd bench --images / --texts`), or None: the test
    split the run held out (a bundle's eval.npz)."""
    eval_set = report.get("eval_set") or {}
    return next((str(eval_set[key]) for key in ("images", "texts") if eval_set.get(key)), None)


def _reference_top1(report: dict[str, Any]) -> float | None:
    """The gate's reference top-1 for the drop column, or None (then the column reads n/a)."""
    try:
        return reference_top1(report, report.get("gate", {}).get("reference", "student_fp32"))
    except (ArtifactError, KeyError):  # no such reference in this report, or one without a top-1
        return None


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


def precision_label(row: dict[str, Any]) -> str:
    """The precision column: the candidate's name and, where the row records it, how it was quantized (int8 names
    the quantized candidate whatever its bits: 'int8 (ov_int4: 4-bit, group 32)')."""
    method, settings = row.get("quantization"), row.get("quantization_settings") or {}
    if not isinstance(method, str) or method == "none" or row.get("precision") == "fp32":
        return row.get("precision") or ""
    details = [f"{settings['weight_bits']}-bit"] if settings.get("weight_bits") else []
    details += [f"{name} {settings[key]}" for key, name in (("group_size", "group"), ("block_size", "block")) if settings.get(key)]
    details += [f"{settings['ratio']:.0%} at 4 bits"] if settings.get("ratio") not in (None, 1, 1.0) else []
    return f"{row.get('precision') or ''} ({method}{': ' + ', '.join(details) if details else ''})"


def gate_cell(row: dict[str, Any], verdicts: dict[str, str] | None) -> str:
    if not row.get("shipped"):
        return "not shipped"
    return (verdicts or {}).get(row["artifact"], "") or "shipped"


def _perplexity_rows(report: dict[str, Any], verdicts: dict[str, str] | None) -> list[list[str]]:
    """vs ref: the increase over the gate's reference, each row's own where it carries one (a bundle's, measured on its
    held-out blocks)."""
    shared = (report.get("references", {}).get(report.get("gate", {}).get("reference", "student_fp32")) or {}).get("perplexity")
    speed = lambda r: [_fmt(r.get("tokens_per_second"), "{:.1f}"), _fmt(r.get("time_to_first_token_ms"), "{:.2f}"),  # noqa: E731
                       _fmt(r.get("per_token_p50_ms"), "{:.3f}"), _fmt(r.get("per_token_p99_ms"), "{:.3f}")]
    rows = [[f"{name} (reference)", "", "fp32", "", _fmt(ref.get("perplexity"), "{:.3f}"), "", *speed(ref), "", "", ""]
            for name, ref in report["references"].items()]
    for row in report["rows"]:
        reference = (row.get("reference") or {}).get("perplexity", shared)
        increase = row["perplexity"] / reference - 1 if None not in (row.get("perplexity"), reference) else None
        rows.append([row["artifact"] + (" *" if row.get("shipped") else ""), row["target"] or "", precision_label(row),
                     _fmt(row.get("bytes"), "{:.1f}", 1 / 1024), _fmt(row.get("perplexity"), "{:.3f}"),
                     _fmt(increase, "{:+.2%}"), *speed(row), _fmt(row.get("token_agreement"), "{:.3f}"),
                     gate_cell(row, verdicts), short_reason(row)])
    return rows


def table_rows(report: dict[str, Any], verdicts: dict[str, str] | None = None) -> list[list[str]]:
    if not metric_spec(report.get("task_metric")).higher_is_better:
        return _perplexity_rows(report, verdicts)
    gate, reference = report.get("gate", {}), _reference_top1(report)
    samples = report.get("eval_set", {}).get("samples")  # drops from counts, as the gate computes them
    rows = [[reference_label(name, ref), "", "fp32", "", "", "", "", _fmt(ref.get("top1"), "{:.2f}", 100)] + [""] * (len(COLUMNS) - 8)
            for name, ref in report["references"].items()]
    for row in report["rows"]:
        top1, batch1 = row.get("top1"), row.get("latency", {}).get("batch1", {})
        drop = accuracy_drop(reference, top1, gate.get("drop_type", "absolute"), samples) if None not in (reference, top1) else None
        rows.append([row["artifact"] + (" *" if row.get("shipped") else ""), row["target"], row["precision"], files_label(row),
                     _fmt(row["bytes"], "{:.1f}", 1 / 1024), _fmt(row.get("gzip_bytes"), "{:.1f}", 1 / 1024),
                     _fmt(row.get("parameters"), "{:,}"), _fmt(top1, "{:.2f}", 100), _fmt(drop, "{:+.2f}"),
                     _fmt((row.get("fidelity") or {}).get("cosine"), "{:.4f}"),
                     _fmt(batch1.get("p50_ms"), "{:.3f}"), _fmt(batch1.get("p99_ms"), "{:.3f}"),
                     _fmt(batch1.get("cv"), "{:.0%}"), _fmt(_cold(row, "first_inference_ms"), "{:.2f}"),
                     _fmt(_cold(row, "session_create_ms"), "{:.1f}"), _fmt(row.get("threads", {}).get("runtime"), "{}"),
                     _fmt(row.get("memory", {}).get("peak_rss_mb"), "{:.0f}"), gate_cell(row, verdicts), short_reason(row)])
    return rows


def reference_label(name: str, ref: dict[str, Any]) -> str:
    """A reference row's label: the teachers' row says it is their ensemble (references.teacher.members)."""
    members = ref.get("members") or []
    return f"{name} (reference, ensemble of {len(members)})" if members else f"{name} (reference)"


def member_lines(report: dict[str, Any]) -> list[str]:
    """The ensemble reference rows' members with their top-1 on the same samples (it was on the terminal only)."""
    lines = []
    for name, ref in report.get("references", {}).items():
        if ref.get("members"):
            shown = ", ".join(f"`{m['name']}` {100 * m['top1']:.2f}" for m in ref["members"])
            lines.append(f"`{name}` is the ensemble of {len(ref['members'])} teachers; each one's top-1 on the same "
                         f"samples: {shown}.")
    return ["", *lines] if lines else []


def median_length_lines(report: dict[str, Any]) -> list[str]:
    """Text models: the batch-1 p50 at the evaluation texts' median length, unpadded (edgekd.device.measure)."""
    timed = [(row["artifact"], key.removeprefix("batch1_tokens"), stats["p50_ms"]) for row in report["rows"]
             for key, stats in row.get("latency", {}).items() if key.startswith("batch1_tokens")]
    if not timed:
        return []
    return ["", f"Batch 1 at the evaluation texts' median length, {timed[0][1]} tokens, unpadded (the table's latency is at "
            "the padded length every input has): " + ", ".join(f"`{name}` {p50:.3f} ms" for name, _tokens, p50 in timed) + "."]


def kept_in_float_lines(report: dict[str, Any]) -> list[str]:
    """One line per recipe whose fallback search ran: the nodes it kept in float, of how many it ranked. Neither
    report.md nor the terminal named them before; only the manifest did."""
    out = []
    for recipe, search in ((report.get("quantize") or {}).get("fallback") or {}).items():
        kept = search.get("nodes_in_float") or []
        out.append(f"recipe {recipe}: kept in float: {', '.join(kept) or 'none'} ({len(kept)} of "
                   f"{len(search.get('sensitivity') or [])} nodes)")
    return out


def output_fidelity_lines(report: dict[str, Any]) -> list[str]:
    """A fidelity task's numbers per output of each artifact against fp32 (report.json's fidelity.outputs)."""
    rows = [row for row in report["rows"] if (row.get("fidelity") or {}).get("outputs")]
    if not rows:
        return []
    lines = ["", "Each output against the fp32 model's (cosine, SQNR, largest absolute error):", ""]
    for row in rows:
        parts = [f"`{name}` cosine {o['cosine']:.5f}, SQNR {o['sqnr_db']:.1f} dB, max abs {o['max_abs_error']:.3g}"
                 for name, o in row["fidelity"]["outputs"].items()]
        lines.append(f"- `{row['artifact']}`: " + "; ".join(parts))
    return lines


def markdown(report: dict[str, Any], verdicts: dict[str, str] | None = None,
             failed: list[tuple[str, str]] | None = None) -> str:
    env = report.get("environment", {})
    lines = [f"# edgekd report: {report['run']}", "", intro(report), "",
             f"Machine: {env.get('cpu', {}).get('model', '?')} ({env.get('cpu', {}).get('cores', '?')} cores, "
             f"{' '.join(env.get('cpu', {}).get('flags', []))}), {env.get('os', '?')}.", "",
             *([f"**{measured_note(report)}**", ""] if measured_note(report) else []),
             "| " + " | ".join(columns(report)) + " |", "|" + "---|" * len(columns(report))]
    lines += ["| " + " | ".join(r) + " |" for r in table_rows(report, verdicts)]
    if failed:
        lines += ["", "**Why the gate failed:**", "", *(f"- `{artifact}`: {why}" for artifact, why in failed)]
    reasons = [f"- `{row['artifact']}`: {row['reason']}" for row in report["rows"] if row.get("reason")]
    if "files" in columns(report):
        lines += ["", "`files`: what the device's session loads (its size is `size`), then in parentheses what else the "
                  "bundle carries. Why each row is as it is, in full:", "", *reasons]
    elif reasons:
        lines += ["", "Why each row is as it is, in full:", "", *reasons]
    lines += member_lines(report)
    lines += median_length_lines(report)
    lines += output_fidelity_lines(report)
    kept = kept_in_float_lines(report)
    lines += ["", "int8 fallback:", "", *(f"- {line}" for line in kept)] if kept else []
    if report.get("host_warnings"):
        lines += ["", "This machine is not the device:", ""] + [f"- Warning: {w}" for w in report["host_warnings"]]
    if report.get("warnings"):
        lines += [""] + [f"- Warning: {w}" for w in report["warnings"]]
    return "\n".join(lines) + "\n"


def intro(report: dict[str, Any]) -> str:
    """What the table measured, on what: a classifier's evaluation set and latency, or a language model's held-out
    blocks and generation (a report of format edgekd.report/1 with task_metric perplexity)."""
    if not metric_spec(report.get("task_metric")).higher_is_better:
        decoding, prompts, eval_set = report.get("decoding") or {"mode": "greedy"}, report.get("prompts") or {}, report["eval_set"]
        mode = "greedy" if decoding["mode"] == "greedy" else \
            f"top-{decoding['top_k']} sampling at temperature {decoding['temperature']:g} (seed {decoding['seed']})"
        return (f"Perplexity on {eval_set.get('samples') or 'no'} held-out token blocks (sha256 {str(eval_set.get('sha256'))[:12]}); "
                f"`vs ref` is its increase over `{report['gate'].get('reference')}` (a bundle's own, measured on its blocks on "
                f"the build machine, where it carries one). Generation at batch 1: {mode}, {report.get('new_tokens')} tokens "
                f"from {prompts.get('count')} prompts ({prompts.get('source', 'the test split')}), threads "
                f"{report.get('threads') or 'default'}; TTFT is the time to the first token, p50/p99 per token after it. "
                "`*` marks the artifact shipped per target." + _distilled(report.get("distill")))
    source = user_eval_data(report)
    return (f"Evaluation set: {report['eval_set']['samples']} samples of {source or 'the test split'} (sha256 "
             f"{report['eval_set']['sha256'][:12]}); top-1, drop and latency are measured on it, while the compile "
             "stage's choices (the reasons below) were made on the run's validation split. "
             f"Drop is in top-1 {'points' if report['gate'].get('drop_type', 'absolute') == 'absolute' else 'percent'} "
             f"vs `{report['gate']['reference']}`; `*` marks the artifact shipped per target. "
             "Latency at batch 1; first = the first inference and load = session creation, both in a fresh process "
             "when memory was measured; threads as the runtime reports them (0: onnxruntime's default); "
             "peak RSS from a fresh process per artifact.")


def _distilled(distill: dict[str, Any] | None) -> str:
    """How the pipeline trained the student (its distill.mode and steps of each kind); nothing in a device's report."""
    if not distill:
        return ""
    steps = ", ".join(f"{count} {kind}-level" for kind, count in (distill.get("steps") or {}).items() if count)
    return f" The student was distilled with distill.mode {distill['mode']}" + (f" ({steps} steps)." if steps else ".")


def noise_warnings(rows: list[dict[str, Any]]) -> list[str]:
    out = []
    for row in rows:
        for batch, stats in row.get("latency", {}).items():
            if stats["cv"] > CV_WARNING:
                out.append(f"{row['artifact']} {batch}: latency coefficient of variation {stats['cv']:.0%} > "
                           f"{CV_WARNING:.0%}; the machine was noisy, repeat on an idle machine before trusting it")
    return out


def nonfinite_warnings(rows: list[dict[str, Any]], samples: int) -> list[str]:
    """One line per artifact whose outputs held NaN or infinity on some evaluation samples (measure_rows'
    nonfinite_rows): those samples are scored wrong and left out of cosine and SQNR, which would otherwise read as
    a quiet n/a or a pass."""
    return [f"{row['artifact']}: {row['nonfinite_rows']} of {samples} evaluation samples gave non-finite outputs (NaN or "
            "inf): they count as wrong and are left out of cosine and SQNR; check the model on those inputs (a log or "
            "sqrt of a negative, a division by zero, an overflow)" for row in rows if row.get("nonfinite_rows")]


def other_warnings(report: dict[str, Any]) -> list[str]:
    """The report's warnings but the latency-noise ones (said in one line of their own where they are many): a student
    far below its teachers, a short evaluation set... what the terminal and report.html must not leave out."""
    noisy = set(noise_warnings(report.get("rows", [])))
    return [w for w in report.get("warnings", []) if w not in noisy]
