"""Measure a set of artifacts the same way everywhere: the pipeline's bench stage and `edgekd bench BUNDLE`.

Per artifact: size, gzip size, parameters, accuracy, fidelity to the reference logits, session creation,
latency at each batch size (all artifacts interleaved in rounds; text models also at their texts' median length),
threads, and peak memory (subprocess).
Lean: numpy and the artifacts' runtimes only.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekd.core.metrics import accuracy_metrics, batch_axes_of, fidelity, nonfinite_count, outputs_fidelity, predict, predict_outputs
from edgekd.core.progress import progress
from edgekd.core.task_metrics import task_metric
from edgekd.device.bundle import shipped_variant
from edgekd.device.latency import LatencySpec, measure_interleaved
from edgekd.device.memory import measure_memory
from edgekd.device.sizes import file_set, gzip_size, model_digest, parameter_count, size_on_disk
from edgekd.runtimes.base import Artifact
from edgekd.runtimes.registry import get_backend


def artifact_name(target: str, candidate: str) -> str:
    """A row's key in reports, gates and comparisons: `<target>/<candidate>`, the candidate named as the compile
    stage names it (fp32, bf16, int8, int8-qat, or int8-fallback: int8 with some nodes kept in float), so that two
    int8 variants never share a row and the user sees which one shipped."""
    return f"{target}/{candidate}"


def bundle_row_names(bundles: list[tuple[Path, dict[str, Any], str]]) -> list[str]:
    """Each benched bundle's row name (bundle dir, manifest, its artifact's precision): `<target>/<variant>` as the
    build machine's report calls it; where two bundles would share one (a copy of a target's bundle beside it), every
    row is named by its folder instead, so that no latency, row or verdict is keyed twice."""
    variants = [shipped_variant(manifest, precision) for _d, manifest, precision in bundles]
    names = [artifact_name(manifest.get("target") or d.name, v) for (d, manifest, _p), v in zip(bundles, variants, strict=True)]
    if len(set(names)) < len(names):
        names = [artifact_name(d.name, v) for (d, _m, _p), v in zip(bundles, variants, strict=True)]
    return names


@dataclass
class Candidate:
    name: str                      # artifact_name(target, candidate): the row's key in reports, gates and comparisons
    target: str
    artifact: Artifact
    threads: int | None = None
    shipped: bool = True
    verdict: str = ""
    time_latency: bool = True      # False where latency here says nothing about the device (e.g. arm64 on x86)
    latency_note: str = ""         # why latency is not timed here, for the report's reason column
    runtime_note: str = ""         # why the target runs another runtime than its profile's (runtime_note())
    profile_gate: dict[str, Any] | None = None  # the limits the target's profile sets (TargetProfile.gate.given())


def describe(candidate: Candidate) -> dict[str, Any]:
    artifact = candidate.artifact
    return {"artifact": candidate.name, "target": candidate.target, "backend": artifact.backend,
            "precision": artifact.precision, "shipped": candidate.shipped, "verdict": candidate.verdict,
            "bytes": size_on_disk(artifact), "gzip_bytes": gzip_size(artifact), "files": file_set(artifact),
            "model_sha256": model_digest(artifact),
            "parameters": parameter_count(artifact), **({"runtime_fallback": candidate.runtime_note} if candidate.runtime_note else {}),
            **({"profile_gate": candidate.profile_gate} if candidate.profile_gate else {})}


def runtime_note(fallback: dict[str, Any] | None) -> str:
    """The report row's runtime_fallback: the line a bundle manifest's (or compile record's) runtime_fallback says,
    e.g. "intel-cpu: OpenVINO cannot convert this model (...); shipping onnxruntime instead"; "" for none."""
    return str(fallback.get("line", "")) if isinstance(fallback, dict) else ""


def as_batch(x: np.ndarray, size: int) -> np.ndarray:
    """`size` samples from x, repeating x when it is smaller: latency inputs are real data, not zeros."""
    if isinstance(x, dict):  # a model with several inputs: the same rows of each
        return {name: as_batch(array, size) for name, array in x.items()}
    # x[:size] first: an image folder (data/images.LazyImages) then decodes only the images the batch needs
    return np.ascontiguousarray(np.resize(np.asarray(x[:size]), (size, *x.shape[1:])))


def measure_rows(candidates: Sequence[Candidate], x: np.ndarray, y: np.ndarray, reference_logits: np.ndarray,
                 spec: LatencySpec, batch_sizes: Sequence[int] = (1,), memory: bool = True,
                 metric: str = "top1", reference_outputs: dict[str, np.ndarray] | None = None) -> list[dict[str, Any]]:
    """`metric`: what `y` is scored by, top1 or a task metric (core/task_metrics.py; kept under the row's top1).
    `reference_outputs`: a fidelity task's fp32 outputs by name: each artifact's outputs are compared with them
    (row fidelity: the worst output's numbers, and each output's under fidelity.outputs)."""
    rows, runners, clocks = [], {}, {}
    for candidate in progress(candidates, desc="load, first inference, accuracy", unit="artifact"):
        row = describe(candidate)
        backend = get_backend(candidate.artifact.backend)
        if not backend.available() or candidate.artifact.rebuild_on_device:
            row["not_measured"] = backend.unavailable_reason() if not backend.available() else "must be rebuilt on the device"
            rows.append(row)
            continue
        started = time.perf_counter()
        session = backend.session(candidate.artifact, candidate.threads)
        row["session_create_ms"] = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        session.run(as_batch(x, 1))  # the first inference pays for lazy allocation and kernel selection
        row["first_inference_ms"] = (time.perf_counter() - started) * 1000
        row["threads"] = {"requested": candidate.threads, "runtime": session.threads_used()}
        logits = predict(session.run, x)
        row.update(accuracy_metrics(logits, y, metric), fidelity=output_fidelity(session, x, logits, reference_logits,
                                                                                   reference_outputs, metric == "top1"))
        if nonfinite_count(logits):  # scored wrong; said in the report's warnings (report/table.nonfinite_warnings)
            row["nonfinite_rows"] = nonfinite_count(logits)
        if metric != "top1" or reference_outputs:  # a fidelity task's metric against fp32 too, beside the labels
            row["fidelity"]["task_metric_agreement"] = metric_agreement(metric, logits, reference_logits)
        if candidate.time_latency:
            # The accuracy pass ran batches of up to core.metrics.BATCH_BYTES, and a runtime's allocator keeps the
            # largest batch's activations for the session's life: every candidate held open for interleaved timing
            # kept hundreds of MB it never needs at the timing batches. A fresh session grows only to those.
            session = None  # released before its replacement exists
            session = backend.session(candidate.artifact, candidate.threads)
            runners[candidate.name] = session.run
            if backend.runtime_clock:
                clocks[candidate.name] = session.runtime_latency_ms
        else:  # nor do its load and first-inference times and peak memory (not probed): this machine's, not the device's
            row["not_timed"] = candidate.latency_note or "timings on this machine say nothing about the device"
            del row["session_create_ms"], row["first_inference_ms"]
        rows.append(row)
    _add_latency(rows, runners, clocks, x, spec, batch_sizes)
    _add_median_text_latency(rows, runners, clocks, x, spec)
    if memory:
        _add_memory(rows, candidates, x)
    return rows


def metric_agreement(metric: str, outputs: np.ndarray, reference: np.ndarray) -> float:
    """A task metric of `outputs` with the reference model's outputs as the labels (task_metrics' labels_of)."""
    scorer = task_metric(metric)
    return scorer.score(outputs, scorer.labels_of(reference))


def output_fidelity(session, x, logits: np.ndarray, reference_logits: np.ndarray,
                    reference_outputs: dict[str, np.ndarray] | None, top1: bool = False) -> dict[str, Any]:
    """Fidelity to the reference: of every output where the reference's are given and the session returns them all
    (run_outputs: onnxruntime, OpenVINO), else of the first output (the logits). `top1`: the first output is a
    classifier's logits, whose top-1 agreement is kept beside every output's numbers."""
    if not reference_outputs or not hasattr(session, "run_outputs"):
        return fidelity(logits, reference_logits)
    axes = batch_axes_of(reference_outputs, len(logits))
    numbers = outputs_fidelity(predict_outputs(session, x, axes), reference_outputs, axes)
    if top1 and np.ndim(logits) == 2:
        numbers["top1_agreement"] = fidelity(logits, reference_logits)["top1_agreement"]
    return numbers


def _add_latency(rows: list[dict], runners: dict, clocks: dict, x: np.ndarray, spec: LatencySpec,
                 batch_sizes: Sequence[int]) -> None:
    if not runners:
        return
    for size in sorted(set(batch_sizes) | {1}):
        stats = measure_interleaved(runners, as_batch(x, size), spec, desc=f"latency batch {size}", runtime_clocks=clocks)
        for row in rows:
            if row["artifact"] in stats:
                row.setdefault("latency", {})[f"batch{size}"] = stats[row["artifact"]].to_json()
                if size == 1:
                    row["p50_ms"] = stats[row["artifact"]].p50_ms


def median_tokens(x) -> int | None:
    """A text model's inputs: the median real length of their texts (the attention mask's ones), when it is shorter
    than the padded length every input has; None for other models, or when the median text fills the padding."""
    if not isinstance(x, dict) or "attention_mask" not in x:
        return None
    mask = np.asarray(x["attention_mask"])
    median = int(np.median(mask.sum(axis=1)))
    return median if 0 < median < mask.shape[1] else None


def median_text_batch(x: dict[str, np.ndarray], tokens: int) -> dict[str, np.ndarray]:
    """One real text of at least `tokens` tokens, cut to `tokens` and not padded: a typical text, as a device that
    feeds each text at its own length runs it."""
    lengths = np.asarray(x["attention_mask"]).sum(axis=1)
    row = int(np.flatnonzero(lengths >= tokens)[0])
    return {name: np.ascontiguousarray(np.asarray(array)[row:row + 1, :tokens]) for name, array in x.items()}


def _add_median_text_latency(rows: list[dict], runners: dict, clocks: dict, x, spec: LatencySpec) -> None:
    """Text models: batch-1 latency also at the eval texts' median length, unpadded (latency["batch1_tokensN"]),
    beside the padded length the other timings use: what a typical text costs when the device does not pad. An
    artifact built for the padded shape only (a static TensorRT engine) is left out, with the reason in its row."""
    tokens = median_tokens(x)
    if tokens is None or not runners:
        return
    batch = median_text_batch(x, tokens)
    usable = {}
    for name, run in runners.items():
        try:
            run(batch)
            usable[name] = run
        except Exception as exc:  # runtimes raise their own types for a shape they were not built for
            row = next(r for r in rows if r["artifact"] == name)
            row["not_timed_at_median_length"] = f"{tokens} tokens: {str(exc).splitlines()[0][:160]}"
    if not usable:
        return
    stats = measure_interleaved(usable, batch, spec, desc=f"latency batch 1, {tokens} tokens",
                                runtime_clocks={n: c for n, c in clocks.items() if n in usable})
    for row in rows:
        if row["artifact"] in stats:
            row.setdefault("latency", {})[f"batch1_tokens{tokens}"] = stats[row["artifact"]].to_json()


def _add_memory(rows: list[dict], candidates: Sequence[Candidate], x: np.ndarray) -> None:
    for row, candidate in progress(list(zip(rows, candidates, strict=True)), desc="peak memory (a process each)", unit="artifact"):
        if "session_create_ms" in row:
            row["memory"] = measure_memory(candidate.artifact.to_json(), candidate.artifact.root, as_batch(x, 1),
                                           candidate.threads)
