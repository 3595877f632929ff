"""A report.json as the quickstart pipeline writes it (three targets, shipped and unshipped candidates,
an arm64 target not timed here, a backend missing), for tests of the tables and plots without a run."""
from __future__ import annotations

import copy


def _latency(p50: float, spread: float = 0.2, rounds=None) -> dict:
    return {"batch_size": 1, "runs": 100, "first_ms": p50 * 3, "p10_ms": p50 * (1 - spread), "p50_ms": p50,
            "p90_ms": p50 * (1 + spread), "p99_ms": p50 * (1 + 3 * spread), "mean_ms": p50 * 1.1, "std_ms": p50 * spread,
            "cv": spread * 1.1, "throughput_ips": 1000 / p50, "runtime_p50_ms": None, "runtime_p99_ms": None,
            "round_p50_ms": rounds or [p50] * 5}


def _row(artifact, precision, shipped, verdict, top1, p50=None, files=None, **extra):
    target = artifact.split("/")[0]
    row = {"artifact": artifact, "target": target, "backend": {"arm64-cpu": "ort-arm64", "intel-cpu": "openvino"}.get(target, "ort"),
           "precision": "int8" if precision.startswith("int8") else precision, "shipped": shipped, "verdict": verdict,
           "bytes": 37_000 if precision == "fp32" else 24_000, "gzip_bytes": 30_000,
           "files": files or [{"name": "model.onnx", "bytes": 37_000, "role": "ONNX model", "loaded": True}],
           "parameters": 4322, "top1": top1, "threads": {"requested": 2, "runtime": 2},
           "session_create_ms": 5.0, "first_inference_ms": 0.4, "memory": {"peak_rss_mb": 61.0}, **extra}
    if p50 is not None:
        row["latency"] = {"batch1": _latency(p50)}
        row["p50_ms"] = p50
    return row


ARM_FILES = [{"name": "model.onnx", "bytes": 24_000, "role": "ONNX model", "loaded": True},
             {"name": "model.ort", "bytes": 25_900, "role": "ORT-format model", "loaded": False}]

REPORT = {
    "schema": "edgekd.report/1", "run": "quickstart", "created": "2026-11-30T02:00:00+0000",
    "environment": {"cpu": {"model": "AMD EPYC", "cores": 2, "flags": ["avx2"]}, "os": "Linux", "libraries": {}},
    "eval_set": {"samples": 359, "sha256": "ab" * 32},
    "references": {"student_fp32": {"top1": 0.9916}, "teacher": {"top1": 0.9944}},
    "gate": {"reference": "student_fp32", "max_drop": 2.0, "drop_type": "absolute"},
    "bench": {"latency": {"warmup_runs": 10, "warmup_seconds": 0.2, "runs": 100, "min_seconds": 0.5, "rounds": 5},
              "batch_sizes": [1, 8], "interleaved": "rounds", "memory": "subprocess"},
    "rows": [
        _row("x86-cpu/fp32", "fp32", True, "chosen (fp32 baseline; no passing candidate faster beyond noise)", 0.9916, 0.028),
        _row("x86-cpu/int8", "int8", False, "within noise of fp32 (1.01x its speed, median of 5 paired rounds, faster in 3 of 5; band 3%)", 0.9889, 0.034),
        _row("arm64-cpu/int8", "int8", True, "chosen (first passing in profile order)", 0.9889, files=ARM_FILES,
             not_timed="the arm64-cpu profile says timings off the device mean nothing for it (aarch64 device, x86_64 here)"),
        _row("arm64-cpu/fp32", "fp32", False, "later in profile order than the chosen int8", 0.9916,
             not_timed="the arm64-cpu profile says timings off the device mean nothing for it (aarch64 device, x86_64 here)"),
        _row("intel-cpu/fp32", "fp32", True, "chosen (fp32 baseline; no passing candidate faster beyond noise)", 0.9916, 0.051,
             files=[{"name": "model.xml", "bytes": 9_000, "role": "OpenVINO IR graph", "loaded": True},
                    {"name": "model.bin", "bytes": 30_000, "role": "OpenVINO IR weights", "loaded": True}]),
        _row("intel-cpu/bf16", "bf16", False, "slower than the chosen fp32 (0.57x its speed, median of 5 paired rounds, faster in 0 of 5; "
             "band 3%)", 0.9916, 0.09),
        _row("intel-cpu/int8", "int8", False, "accuracy drop 2.31 > max_drop 2.0", 0.9694, 0.045),
    ],
    "host_warnings": ["x86-cpu: this CPU has no VNNI (avx512_vnni / avx_vnni / amx_int8), which the device's int8 kernels "
                      "use: timings here do not rank candidates as the device would"],
    "warnings": [],
}


def quickstart_report(**changes) -> dict:
    report = copy.deepcopy(REPORT)
    report.update(changes)
    from edgekd.device.report.reasons import full_reason

    for row in report["rows"]:
        row["reason"] = full_reason(row)
    return report
