"""Reports: report.json (versioned schema), report.md (the table), report.html (table + plots).

Schema edgekd.report/1, top level: schema, run, created, environment, eval_set {samples, sha256},
references {name: {top1[, top5]}}, gate (thresholds), bench (how latency and memory were measured),
rows (one per artifact: artifact, target, backend, precision, shipped, verdict, reason (why it was or was not
shipped and why a value is missing, in full), bytes and gzip_bytes (of the files the device's session loads),
files [{name, bytes, role, loaded}] (every model file), not_measured / not_timed (why not), runtime_fallback (the one
line saying why the target runs another runtime than its profile's, pipeline/target_runtime.py), parameters,
session_create_ms, first_inference_ms, threads {requested, runtime}, top1[, top5], fidelity,
latency {batchN: stats; first_ms there is the first timed call at that batch size, after warm-up is not
yet done but after the accuracy pass}, p50_ms, memory {peak_rss_mb, baseline_rss_mb, model_rss_mb,
cold_session_create_ms, cold_first_inference_ms, method} or {error}),
host_warnings (where this machine differs from the targets' devices), warnings (noise, a short eval set),
quantize {fallback: {recipe: {sensitivity, nodes_in_float, max_drop}}} when the pipeline's fallback search ran,
task_metric (a fidelity task's metric, e.g. mask_iou: the top1 fields hold it; absent for top-1). fidelity per row:
cosine, sqnr_db, max_abs_error, mean_abs_error (and top1_agreement for a classifier's logits).
"""
from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from edgekd.core.environment import describe
from edgekd.core.fileio import write_json_atomic, write_text_atomic
from edgekd.core.metrics import ACCURACY
from edgekd.device.latency import LatencySpec
from edgekd.device.memory import METHOD as MEMORY_METHOD
from edgekd.device.noise import compare_speed
from edgekd.device.report.html import render_html
from edgekd.device.report.reasons import full_reason
from edgekd.device.report.table import markdown, noise_warnings, nonfinite_warnings

REPORT_SCHEMA = "edgekd.report/1"



def build_report(run: str, rows: list[dict[str, Any]], references: dict[str, Any], eval_set: dict[str, Any],
                 gate: dict[str, Any], spec: LatencySpec, batch_sizes, memory: bool,
                 host_warnings: list[str] | None = None, quantize: dict[str, Any] | None = None,
                 measured: str = ACCURACY, task_metric: str = "top1") -> dict[str, Any]:
    """`task_metric`: what the rows' and references' top1 fields hold when not top-1 (recorded in the report)."""
    _against_fp32(rows, next((str(eval_set[k]) for k in ("images", "texts") if eval_set.get(k)), "test split"))
    for row in rows:
        row["reason"] = full_reason(row)
    report = {"schema": REPORT_SCHEMA, "run": run, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "environment": describe(), "measured": measured, "eval_set": eval_set, "references": references, "gate": gate,
              "bench": {"latency": asdict(spec), "batch_sizes": sorted(set(batch_sizes) | {1}),
                        "interleaved": "all artifacts timed in rounds, order rotated each round",
                        "memory": MEMORY_METHOD.format(runs=20, batch=1) if memory else "not measured"},
              "rows": rows, "host_warnings": list(host_warnings or []),
              "warnings": noise_warnings(rows) + nonfinite_warnings(rows, eval_set.get("samples", "?"))}
    if quantize:
        report["quantize"] = quantize
    if task_metric != "top1":  # absent: top-1, as in every report before task metrics
        report["task_metric"] = task_metric
    return report


def generation_report(run: str, rows: list[dict[str, Any]], references: dict[str, Any], eval_set: dict[str, Any],
                      gate: dict[str, Any], prompts: list, source: str, new_tokens: int, rounds: int,
                      decoding: dict[str, Any], threads: int | None, vocab_size: int | None = None) -> dict[str, Any]:
    """A language model's report (task_metric perplexity), from the pipeline's bench step or `edgekd bench`: the
    classifiers' latency settings give way to the generation's (its prompts, new tokens, rounds, decoding).
    `vocab_size`: the models' vocabulary, against which a perplexity no better than a uniform guess is warned of."""
    report = build_report(run, rows, references, eval_set, gate, LatencySpec(), (1,), False, task_metric="perplexity")
    del report["bench"]
    report.update(prompts={"count": len(prompts), "source": source, "tokens": [int(len(p)) for p in prompts]},
                  new_tokens=new_tokens, rounds=rounds, decoding=decoding, threads=threads)
    report["warnings"] += uniform_guess_warnings({**references, **{row["artifact"]: row for row in rows}}, vocab_size)
    return report


# A perplexity above this share of the vocabulary size is not clearly better than a uniform guess over it (which
# scores exactly the vocabulary size): the model learned next to nothing, whatever the gate (relative) says.
UNIFORM_SHARE = 0.8


def uniform_guess_warnings(models: dict[str, dict[str, Any]], vocab_size: int | None) -> list[str]:
    """One line naming every model (a reference or a row) whose perplexity is not clearly below `vocab_size`."""
    if not vocab_size:
        return []
    weak = [f"{name} {row['perplexity']:.1f}" for name, row in models.items()
            if isinstance(row.get("perplexity"), (int, float)) and row["perplexity"] > UNIFORM_SHARE * vocab_size]
    if not weak:
        return []
    return [f"perplexity no better than guessing: {', '.join(weak)}, not clearly below the vocabulary size {vocab_size} "
            f"(a uniform guess over its tokens scores {vocab_size}): the model learned next to nothing, and a gate "
            "relative to its own fp32 version passes it anyway; train longer or check its teacher and distill.mode"]


def _against_fp32(rows: list[dict[str, Any]], measured_on: str) -> None:
    """Every timed row beside its target's fp32 row, by the one rule for "faster" (device.noise.compare_speed) on
    this measurement's batch-1 rounds: `vs_fp32` quotes the table's own p50s beside the paired speed-up, so a
    reason never quotes another stage's numbers. The compile stage chose on its own timing (validation split);
    where this measurement does not confirm that a shipped candidate beats fp32, its reason says so."""
    fp32 = {r["target"]: r for r in rows if r.get("precision") == "fp32" and r.get("p50_ms")}
    for row in rows:
        base = fp32.get(row["target"])
        if base is None or base is row or not row.get("p50_ms"):
            continue
        comparison = compare_speed(*[(r.get("latency") or {}).get("batch1") for r in (row, base)])
        if comparison is not None:
            row["vs_fp32"] = {**comparison.to_json(), "fp32_artifact": base["artifact"], "p50_ms": row["p50_ms"], "on": measured_on,
                              "fp32_p50_ms": base["p50_ms"], "text": comparison.describe(base["artifact"])}


REPORT_FILES = ("report.json", "report.md", "report.html")


def refuse_replacing_a_runs_reports(out_dir: Path | None = None, json_out: Path | None = None) -> None:
    """`edgekd bench ... --out RUN` (or `--json RUN/report.json`) where RUN is a pipeline's run folder with its
    reports: the bench's report (bundles only) would replace the pipeline's (teacher, student and every candidate
    row, the gate's verdicts), even when re-benching that run folder itself; one line before measuring."""
    from edgekd.core.errors import OutputError
    from edgekd.core.fileio import read_json

    targets = [(out_dir / name, "--out") for name in REPORT_FILES] if out_dir is not None else []
    if json_out is not None:
        targets.append((Path(json_out), "--json"))
    for path, option in targets:
        run_dir = path.parent
        if not path.exists() or path.name not in REPORT_FILES or not (run_dir / "manifest.json").is_file():
            continue
        try:
            manifest = read_json(run_dir / "manifest.json")
        except Exception:  # an unreadable manifest is not evidence of a run
            continue
        if isinstance(manifest, dict) and (str(manifest.get("schema", "")).startswith("edgekd.run/") or "stages" in manifest):
            shown = out_dir if option == "--out" else path
            raise OutputError(f"{option} {shown}: would replace the pipeline's {path.name} of the run folder {run_dir} "
                              f"(its teacher and student rows and gate verdicts); choose another {option}, e.g. "
                              f"{run_dir / 'device'}" + (f"/{path.name}" if option == "--json" else ""))


def refuse_replacing_other_files(out_dir: Path | None) -> None:
    """`edgekd bench --out DIR` replaces DIR's report.json, .md and .html: only when they are an earlier bench's (its
    report.json an edgekd report), never a user's own report.md; and never inside a bundle, whose folder is the model's."""
    from edgekd.core.errors import OutputError
    from edgekd.core.fileio import read_json

    if out_dir is None or not Path(out_dir).is_dir():
        return
    out_dir = Path(out_dir)
    if (out_dir / "manifest.json").is_file():  # a bundle's (a run folder's is refuse_replacing_a_runs_reports' concern)
        try:
            schema = (read_json(out_dir / "manifest.json") or {}).get("schema")
        except Exception:  # an unreadable manifest is not evidence of a bundle
            schema = None
        if schema == "edgekd.bundle/1":
            raise OutputError(f"--out {out_dir}: is a bundle folder (the model, its manifest and eval set); write the "
                              f"report elsewhere, e.g. --out {out_dir.parent / (out_dir.name + '-report')}")
    present = [name for name in REPORT_FILES if (out_dir / name).exists()]
    if present and not _an_edgekd_report(out_dir / "report.json"):
        raise OutputError(f"--out {out_dir}: holds {', '.join(present)} that an edgekd bench did not write (no edgekd "
                          "report.json beside them), which would be replaced; give a new or empty folder")


def refuse_replacing_other_json(json_out: Path | None) -> None:
    """`edgekd bench --json FILE` replaces FILE only when it is an earlier report (or new), never another file of the
    user's (a --texts file, a bundle's manifest.json)."""
    from edgekd.core.errors import OutputError

    if json_out is None or not Path(json_out).exists():
        return
    if not _an_edgekd_report(Path(json_out)):
        raise OutputError(f"--json {json_out}: exists and is not an edgekd report, which it would replace; give a new "
                          "file name (or delete it first)")


def _an_edgekd_report(path: Path) -> bool:
    from edgekd.core.fileio import read_json

    try:
        data = read_json(path)
    except Exception:  # missing or unreadable: not a report edgekd wrote
        return False
    # edgekd.report/1, or a language model's report from before it (edgekd.lm-report/1, edgekd.lm-device-report/1)
    return isinstance(data, dict) and any(str(data.get(key, "")).startswith("edgekd.") and "report/" in str(data.get(key))
                                          for key in ("schema", "format"))


def write_reports(out_dir: Path, report: dict[str, Any], verdicts: dict[str, str] | None = None,
                  failed: list[tuple[str, str]] | None = None) -> list[Path]:
    """report.json, .md and .html; `verdicts` fill the gate column and `failed` (device/gate.failed_reasons) say why."""
    return [write_json_atomic(out_dir / "report.json", report),
            write_text_atomic(out_dir / "report.md", markdown(report, verdicts, failed)),
            write_text_atomic(out_dir / "report.html", render_html(report, verdicts, failed))]
