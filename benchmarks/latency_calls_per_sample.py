"""Does timing a tiny model over k calls per sample make its coefficient of variation meaningful (issue 32 item 14)?

One ONNX model (default: the quickstart's fp32 student, about 10-30 us a call) is measured by
edgekd.device.latency.measure_interleaved two ways, alternating in pairs so the machine's load hits both alike:
one call per sample (SHORT_CALL_MS forced to 0: what edgekd did before) and edgekd's default (k calls per sample,
k so that a sample lasts about 1 ms). Per pair: p10 / p50 / p90 per call and the CV; the machine's load average is
recorded beside them, since on a loaded machine a 1-ms sample is still preempted now and then.

    flock /tmp/edgekd-heavy.lock python benchmarks/latency_calls_per_sample.py [--model runs/quickstart/03-export/student-fp32.onnx]
    python benchmarks/latency_calls_per_sample.py --smoke     # a tiny self-made graph, 1 pair: does it still run?
Writes benchmarks/results/latency_calls_per_sample.json.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import smoke  # noqa: E402  (benchmarks/smoke.py, beside this script)

from edgekd.core.environment import describe  # noqa: E402
from edgekd.device import latency  # noqa: E402
from edgekd.runtimes.ort import OrtSession  # noqa: E402


def measure(session: OrtSession, batch: np.ndarray, single_call: bool, spec: latency.LatencySpec) -> dict:
    saved = latency.SHORT_CALL_MS
    latency.SHORT_CALL_MS = 0.0 if single_call else saved
    try:
        stats = latency.measure_interleaved({"model": session.run}, batch, spec, desc="latency")["model"]
    finally:
        latency.SHORT_CALL_MS = saved
    return {"calls_per_sample": stats.calls_per_sample, "samples": stats.runs, "p10_ms": round(stats.p10_ms, 4),
            "p50_ms": round(stats.p50_ms, 4), "p90_ms": round(stats.p90_ms, 4), "cv": round(stats.cv, 3),
            "load_average_1min": round(os.getloadavg()[0], 2)}


def tiny_model(path: Path) -> Path:
    """A one-MatMul graph with a dynamic batch axis: a model of a few microseconds a call, for --smoke."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.random.default_rng(0).normal(size=(64, 10)).astype(np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "tiny",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 64])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 10])], [weight])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def markdown(result: dict) -> str:
    rows = [f"| {way} | {v['median_p50_ms']:.4f} | {v['median_cv']:.3f} |" for way, v in result["summary"].items()]
    return "\n".join([f"# Latency of a tiny model: one call vs k calls per sample{' (SMOKE: numbers mean nothing)' if result['smoke'] else ''}",
                      "", smoke.machine_line(result["machine"]) + f". Model: {result['model']}; `{result['command']}`.", "",
                      "| timing | median p50 ms per call | median CV |", "|---|---:|---:|", *rows, ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(REPO / "runs/quickstart/03-export/student-fp32.onnx"))
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--out", default=str(REPO / "benchmarks/results/latency_calls_per_sample.json"))
    smoke.add_option(parser)
    args = parser.parse_args()
    import onnx

    if args.smoke:
        folder = smoke.folder("latency_calls_per_sample")
        args.model, args.pairs = str(tiny_model(folder / "tiny.onnx")), 1
        args.out = str(folder / "latency_calls_per_sample.json")
    session = OrtSession(Path(args.model), threads=1)
    dims = onnx.load(args.model, load_external_data=False).graph.input[0].type.tensor_type.shape.dim
    shape = [d.dim_value or 1 for d in dims]  # a dynamic batch axis: 1
    batch = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    spec = (latency.LatencySpec(warmup_runs=1, warmup_seconds=0.0, runs=5, min_seconds=0.0, rounds=1) if args.smoke
            else latency.LatencySpec(runs=100, min_seconds=0.5, rounds=5))  # the quickstart's bench settings
    pairs = []
    for index in range(args.pairs):
        order = [True, False] if index % 2 == 0 else [False, True]  # alternate which goes first
        pair = {("one_call" if single else "k_calls"): measure(session, batch, single, spec) for single in order}
        pairs.append(pair)
    summary = {way: {"median_cv": statistics.median(p[way]["cv"] for p in pairs),
                     "median_p50_ms": statistics.median(p[way]["p50_ms"] for p in pairs)} for way in ("one_call", "k_calls")}
    command = "python benchmarks/latency_calls_per_sample.py --model " + os.path.relpath(args.model, REPO)
    result = {"smoke": args.smoke, "machine": describe(), "model": os.path.relpath(args.model, REPO), "threads": 1,
              "spec": vars(spec), "pairs": pairs, "summary": summary, "command": command}
    out = Path(args.out)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    out.with_suffix(".md").write_text(markdown(result), encoding="utf-8")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
