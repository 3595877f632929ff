"""Where does NNCF's "int8" Silero VAD get its speed? (issue 34: benchmarks/results/third_party.md timed NNCF's ONNX
at 0.19 ms against edgekd's fp32 at 0.21 ms on x86-cpu, with outputs identical to fp32, SQNR 300 dB.)

    make third-party-models     # the pinned silero-vad wheel, as for benchmarks/third_party.py
    nice env PYTHONPATH=$PWD python benchmarks/vad_graph_gain.py [--rounds 10]
    python benchmarks/vad_graph_gain.py --smoke       # third_party.py's tiny VAD graph, no download

Builds from the pinned silero_vad.onnx, on speech frames made as third_party.py makes them (espeak-ng):
- given:          the file as it is (what edgekd ships as fp32 on x86-cpu: a byte copy);
- given-again:    the same file in a second session: the control, how far two identical models time apart here;
- nncf-default:   nncf.quantize at its defaults on the ONNX model (benchmarks/helpers/int8_peers.py);
- onnxruntime-default: quantize_static at its defaults (the other peer; it too timed faster than fp32 there);
- shape-inferred: onnx.shape_inference.infer_shapes of the given file (what NNCF's ONNX backend does to the graph);
- ort-extended:   onnxruntime's own offline graph optimization (ORT_ENABLE_EXTENDED) saved as a file.
For each: node counts by op type (If branches included), value_info entries, the node count of onnxruntime's
optimized graph, the largest output difference from the given file on every frame, and p50 latency at batch 1 with
edgekd's onnxruntime session settings (threads of the x86-cpu profile), all timed in the same interleaved rounds
(edgekd.device.latency.measure_interleaved) and compared with the given file by edgekd.device.noise.compare_speed,
and the median ratio of single calls made back to back (paired_ratios), which a loaded machine disturbs less.

Writes benchmarks/results/vad_graph_gain.json and .md.
"""
from __future__ import annotations

import argparse
import collections
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).parent / "helpers"))
sys.path.insert(0, str(Path(__file__).parent))
import int8_peers  # noqa: E402  (benchmarks/helpers/)
import smoke  # noqa: E402  (benchmarks/smoke.py, beside this script)
import third_party  # noqa: E402  (benchmarks/third_party.py: the pinned file and its data)

from edgekd.core.batch_layout import from_file  # noqa: E402
from edgekd.core.environment import cpu_info, library_versions  # noqa: E402
from edgekd.core.fileio import sha256_of, write_json_atomic, write_text_atomic  # noqa: E402
from edgekd.core.metrics import predict_outputs, take_rows  # noqa: E402
from edgekd.device.latency import LatencySpec, measure_interleaved  # noqa: E402
from edgekd.device.noise import compare_speed  # noqa: E402
from edgekd.runtimes import load_profile  # noqa: E402
from edgekd.runtimes.ort import OrtSession  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def op_counts(path: Path) -> tuple[dict[str, int], int]:
    """Nodes by op type, If branches included, and value_info entries (shape annotations) in all graphs."""
    import onnx

    counts, annotated = collections.Counter(), 0

    def walk(graph) -> None:
        nonlocal annotated
        annotated += len(graph.value_info)
        for node in graph.node:
            counts[node.op_type] += 1
            for attribute in node.attribute:
                if attribute.type == onnx.AttributeProto.GRAPH:
                    walk(attribute.g)
    walk(onnx.load(str(path)).graph)
    return dict(sorted(counts.items())), annotated


def paired_ratios(runners: dict, batch, calls: int) -> dict[str, float]:
    """Per variant, the median over `calls` iterations of given's time / the variant's time, each iteration calling every
    variant once back to back in an order that rotates: drift and load hit both sides of each ratio alike, so a gain of a
    few percent shows where rounds of medians (measure_interleaved) on a loaded machine cannot separate it. Above 1:
    the variant is faster. Hand-written: edgekd's latency tools pair rounds, not single calls."""
    names, times = list(runners), {name: [] for name in runners}
    for index in range(calls):
        for name in names[index % len(names):] + names[:index % len(names)]:
            started = time.perf_counter_ns()
            runners[name](batch)
            times[name].append(time.perf_counter_ns() - started)
    return {name: statistics.median(g / t for g, t in zip(times["given"], times[name])) for name in names}


def input_shapes(path: Path) -> dict[str, list]:
    import onnxruntime as ort

    return {i.name: i.shape for i in ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_inputs()}


def ort_optimized(source: Path, out: Path, level: str, threads: int) -> Path:
    """onnxruntime's optimized graph of `source` at `level`, saved by onnxruntime itself."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    options.intra_op_num_threads, options.optimized_model_filepath = threads, str(out)
    ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
    return out


def variants(given: Path, folder: Path, calibration: dict, threads: int) -> dict[str, Path]:
    import onnx

    inferred = folder / "shape-inferred.onnx"
    onnx.save(onnx.shape_inference.infer_shapes(onnx.load(str(given))), str(inferred))
    return {"given": given, "given-again": given,
            "nncf-default": int8_peers.nncf_default_onnx(given, folder / "nncf-default.onnx", calibration, input_name="input"),
            "onnxruntime-default": int8_peers.ort_default(given, folder / "onnxruntime-default.onnx", calibration, input_name="input"),
            "shape-inferred": inferred,
            "ort-extended": ort_optimized(given, folder / "ort-extended.onnx", "ORT_ENABLE_EXTENDED", threads)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=third_party.CACHE)
    parser.add_argument("--clips", type=int, default=2, help="espeak-ng clips to make frames from")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--paired-calls", type=int, default=10000, help="iterations of paired_ratios")
    parser.add_argument("--out", type=Path, default=RESULTS)
    smoke.add_option(parser)
    args = parser.parse_args()
    model = third_party.MODELS["vad"]
    if args.smoke:  # third_party.py --smoke's tiny VAD graph and tone "speech": the code runs, the numbers mean nothing
        args.out, args.rounds, args.paired_calls = smoke.folder("vad_graph_gain"), 2, 50
    threads = load_profile("x86-cpu").threads
    load_before, started = [round(v, 2) for v in os.getloadavg()], time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="edgekd-vad-gain-") as scratch:
        given = model.tiny(Path(scratch) / "tiny_vad.onnx") if args.smoke else third_party.pinned_model(model, args.cache)
        raw = (model.tiny_data if args.smoke else model.make_data)(model.tiny_samples if args.smoke else args.clips, 0, given)
        raw.pop("y")
        frames = from_file(raw, input_shapes(given), "vad frames")  # samples first, as edgekd holds them
        source = third_party.source_of(model, given, args.smoke)
        files = variants(given, Path(scratch), frames, threads)  # every frame calibrates NNCF
        sessions = {name: OrtSession(path, threads) for name, path in files.items()}
        reference = predict_outputs(sessions["given"], frames)
        rows = {}
        for name, path in files.items():
            ops, annotated = op_counts(path)
            optimized, _ = op_counts(ort_optimized(path, Path(scratch) / f"{name}.opt.onnx", "ORT_ENABLE_ALL", threads))
            outputs = predict_outputs(sessions[name], frames)
            rows[name] = {"nodes": sum(ops.values()), "ops": ops, "value_info": annotated,
                          "ort_optimized_nodes": sum(optimized.values()), "bytes": path.stat().st_size,
                          "sha256": sha256_of(path),
                          "max_abs_diff": max(float(np.abs(outputs[k] - reference[k]).max()) for k in reference)}
        spec = LatencySpec(warmup_runs=20, warmup_seconds=1.0, runs=300 * args.rounds // 5, min_seconds=args.rounds * 0.6,
                           rounds=args.rounds)
        batch = take_rows(frames, slice(0, 1))
        stats = measure_interleaved({n: s.run for n, s in sessions.items()}, batch, spec, desc="vad variants")
        paired = paired_ratios({n: s.run for n, s in sessions.items()}, batch, args.paired_calls)
    base = stats["given"].to_json()
    for name, row in rows.items():
        mine = stats[name].to_json()
        versus = compare_speed(mine, base)
        row.update(p50_ms=mine["p50_ms"], round_p50_ms=mine["round_p50_ms"], vs_given=versus.describe("given") if versus else None,
                   speedup=versus.speedup if versus else None, paired_call_ratio=paired[name])
    data = {"smoke": args.smoke, "model": given.name, "source": source,
            "frames": len(frames["input"]),
            "threads": threads, "latency_spec": spec.__dict__, "paired_calls": args.paired_calls, "rows": rows, "machine": cpu_info()["model"],
            "cores": os.cpu_count(), "load_average_before": load_before,
            "load_average_after": [round(v, 2) for v in os.getloadavg()], "seconds": time.perf_counter() - started,
            "library_versions": library_versions(), "command": "python benchmarks/vad_graph_gain.py " + " ".join(sys.argv[1:])}
    args.out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out / "vad_graph_gain.json", data)
    write_text_atomic(args.out / "vad_graph_gain.md", markdown(data))
    print(markdown(data))
    return 0


def _ratio(value) -> str:
    return "" if value is None else f"{value:.3f}"


def markdown(data: dict) -> str:
    lines = ["# Silero VAD: what NNCF's ONNX file changes, and whether onnxruntime runs it faster"
             + (" (SMOKE RUN: numbers mean nothing)" if data.get("smoke") else ""), "",
             f"`{data['command']}`; {data['machine']}, {data['cores']} cores, load average before {data['load_average_before']}, "
             f"after {data['load_average_after']}; onnxruntime {data['library_versions'].get('onnxruntime')}, "
             f"{data['threads']} threads (x86-cpu), {data['frames']} speech frames, {data['latency_spec']['rounds']} "
             f"interleaved rounds, {data.get('paired_calls')} paired calls.", "",
             "| variant | nodes | value_info | onnxruntime-optimized nodes | bytes | sha256 | max abs diff vs given | p50 ms | vs given "
             "(rounds) | given / variant per call (median of paired calls) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, row in data["rows"].items():
        lines.append(f"| {name} | {row['nodes']} | {row['value_info']} | {row['ort_optimized_nodes']} | {row['bytes']} | "
                     f"`{row['sha256'][:12]}` | "
                     f"{row['max_abs_diff']:.2g} | {row['p50_ms']:.4f} | {row['vs_given'] or ''} | "
                     f"{_ratio(row.get('paired_call_ratio'))} |")
    by_file = collections.defaultdict(list)
    for name, row in data["rows"].items():
        by_file[row["sha256"]].append(name)
    same = [names for names in by_file.values() if len(names) > 1]
    if same:  # byte-identical files timed apart: how far this machine's noise reaches in this very run
        lines += ["", "Byte-identical files (same sha256), timed as separate sessions: " + "; ".join(
            " = ".join(f"{n} {data['rows'][n]['p50_ms']:.4f} ms" for n in names) for names in same) + "."]
    given = data["rows"]["given"]["ops"]
    lines += ["", "Node counts by op type (If branches included) that differ from the given file's, as given -> variant:", ""]
    for name, row in data["rows"].items():
        changed = {op: f"{given.get(op, 0)} -> {row['ops'].get(op, 0)}" for op in sorted({*given, *row["ops"]})
                   if given.get(op, 0) != row["ops"].get(op, 0)}
        lines.append(f"- {name}: " + (", ".join(f"{op} {change}" for op, change in changed.items()) or "none"))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
