"""Where onnxruntime spends a third-party model's time, per operator type: fp32 against the int8 model edgekd makes
for a target (issue 34: why PP-OCRv4 det's int8 is barely faster than fp32 on x86-cpu while OpenVINO's int8 of the
same graph is 2.6x faster on intel-cpu).

Ships the pinned model for the target with the CLI, as benchmarks/third_party.py does, into a temporary run; then
runs the target's fp32 and int8 candidates (05-compile/<target>/<name>/model.onnx) on one test sample at batch 1 with
the profile's thread count, in alternating rounds, under onnxruntime's own profiler (SessionOptions.enable_profiling),
and sums each node's kernel time by operator type. The profiler's per-node times, not wall time, so the table says
which kernels cost what; third_party.py's interleaved p50s are the speed-ups to quote.

    python benchmarks/op_profile.py [--model det] [--target x86-cpu] [--runs 40] [--out benchmarks/results/avx512_vnni]

Writes op_profile.json and .md under --out (default benchmarks/results; a temporary folder with --smoke).
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).parent))
import smoke  # noqa: E402  (benchmarks/smoke.py, beside this script)
import third_party  # noqa: E402  (its pinned models, data makers and ship)

from edgekd.core.environment import describe  # noqa: E402
from edgekd.core.fileio import write_json_atomic, write_text_atomic  # noqa: E402
from edgekd.runtimes import load_profile  # noqa: E402

CANDIDATES = ("fp32", "int8")  # 05-compile/<target>/<name>: the float model and edgekd's int8 (int8-fallback if kept)


def profile_session(path: Path, threads: int, folder: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.enable_profiling, options.profile_file_prefix = True, str(folder / path.parent.name)
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


WARM_UP = 5  # runs per session before the measured ones; their kernels (first-run allocations) are left out


def op_times(trace: Path) -> tuple[dict[str, dict[str, float]], int]:
    """ms per run and node count per operator type from a profiler trace, over the runs after the first WARM_UP
    (each run is a model_run event; a node counts when it starts after the last warm-up run ended). Returns them and
    the number of runs they cover."""
    events = json.loads(trace.read_text())
    model_runs = sorted((e["ts"], e["ts"] + e["dur"]) for e in events if e.get("name") == "model_run")
    measured_from = model_runs[WARM_UP - 1][1] if len(model_runs) > WARM_UP else 0
    runs = sum(1 for start, _end in model_runs if start >= measured_from)
    total: dict[str, float] = collections.Counter()
    nodes: dict[str, int] = collections.Counter()
    for event in events:
        if event.get("cat") == "Node" and event.get("name", "").endswith("_kernel_time") and event["ts"] >= measured_from:
            op = event["args"].get("op_name", "?")
            total[op] += event["dur"] / 1000
            nodes[op] += 1
    return {op: {"ms": round(ms / runs, 4), "nodes": nodes[op] // runs} for op, ms in total.most_common()}, runs


def profile(candidates: dict[str, Path], feed: dict[str, np.ndarray], threads: int, runs: int, rounds: int,
            folder: Path) -> dict[str, dict]:
    """Each candidate's profile over `rounds` alternating rounds of runs // rounds runs (one session each, warmed)."""
    sessions = {name: profile_session(path, threads, folder) for name, path in candidates.items()}
    for session in sessions.values():
        for _ in range(WARM_UP):
            session.run(None, feed)
    per_round, wall = max(1, runs // rounds), {name: 0.0 for name in sessions}
    for _ in range(rounds):
        for name, session in sessions.items():
            started = time.perf_counter()
            for _ in range(per_round):
                session.run(None, feed)
            wall[name] += time.perf_counter() - started
    out = {}
    for name, session in sessions.items():
        ops, measured = op_times(Path(session.end_profiling()))
        out[name] = {"file": str(candidates[name]), "runs": measured,
                     "wall_ms_per_run": round(1000 * wall[name] / (per_round * rounds), 4),
                     "kernel_ms_per_run": round(sum(v["ms"] for v in ops.values()), 4), "ops": ops}
    return out


def markdown(data: dict) -> str:
    profiles = data["candidates"]
    names = list(profiles)
    ops = sorted({op for p in profiles.values() for op in p["ops"]},
                 key=lambda op: -max(p["ops"].get(op, {}).get("ms", 0) for p in profiles.values()))
    lines = [f"# onnxruntime time per operator type: {data['model']} on {data['target']}", "",
             f"{smoke.machine_line(data['machine'])}; load average before {data['load_average_before']}.",
             f"Command: `{data['command']}`", "",
             f"One test sample at batch 1, {data['threads']} threads, {data['runs']} runs per candidate in {data['rounds']} "
             "alternating rounds; onnxruntime's profiler, kernel time summed per operator type (ms per run).", "",
             "| operator | " + " | ".join(f"{n} ms (nodes)" for n in names) + " |", "|---|" + "---|" * len(names)]
    for op in ops:
        cells = [f"{p['ops'][op]['ms']:.3f} ({p['ops'][op]['nodes']})" if op in p["ops"] else "" for p in profiles.values()]
        lines.append(f"| {op} | " + " | ".join(cells) + " |")
    lines.append("| **all kernels** | " + " | ".join(f"**{p['kernel_ms_per_run']:.3f}**" for p in profiles.values()) + " |")
    lines.append("| wall time per run | " + " | ".join(f"{p['wall_ms_per_run']:.3f}" for p in profiles.values()) + " |")
    lines += ["", f"Shipped for {data['target']}: {data['chosen']} ({data['why']})", "",
              "Generated by `benchmarks/op_profile.py`." + (" SMOKE RUN: tiny graph, numbers mean nothing." if data["smoke"] else "")]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="det", choices=list(third_party.MODELS))
    parser.add_argument("--target", default="x86-cpu")
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--cache", type=Path, default=third_party.CACHE)
    parser.add_argument("--out", type=Path, default=third_party.RESULTS)
    smoke.add_option(parser)
    args = parser.parse_args()
    if args.smoke:
        args.out, args.runs, args.rounds = smoke.folder("op_profile"), 4, 2
    model, load_before = third_party.MODELS[args.model], [round(v, 2) for v in os.getloadavg()]
    with tempfile.TemporaryDirectory(prefix="edgekd-op-profile-") as scratch:
        folder = Path(scratch)
        path = model.tiny(folder / f"tiny_{model.key}.onnx") if args.smoke else third_party.pinned_model(model, args.cache)
        samples = model.tiny_samples if args.smoke else model.samples
        data = (model.tiny_data if args.smoke and model.tiny_data else model.make_data)(samples, 0, path)
        np.savez(folder / "data.npz", **data)
        refused, _seconds = third_party.ship(path, folder / "data.npz", model, folder / "run", args.smoke, [args.target])
        if refused:
            raise SystemExit(f"op_profile: edgekd refused {path.name}: {refused}")
        run = folder / "run"
        candidates = {name: run / "05-compile" / args.target / name / "model.onnx" for name in CANDIDATES}
        candidates = {name: p for name, p in candidates.items() if p.is_file()}
        x, _y, _calibration = third_party.run_samples(run)
        feed = third_party._rows(x, slice(0, 1))
        feed = feed if isinstance(feed, dict) else {third_party.graph_io(path)[0][0]["name"]: feed}
        threads = load_profile(args.target).threads
        profiles = profile(candidates, feed, threads, args.runs, args.rounds, folder)
        manifest = json.loads((run / "manifest.json").read_text())
        chosen = manifest["stages"]["compile"]["metrics"]["targets"][args.target]
        why = next(c["verdict"] for c in chosen["candidates"] if c["name"] == chosen["chosen"])
    result = {"smoke": args.smoke, "model": path.name, "target": args.target, "threads": threads, "runs": args.runs,
              "rounds": args.rounds, "machine": describe(), "load_average_before": load_before,
              "command": "python benchmarks/op_profile.py " + " ".join(sys.argv[1:]),
              "chosen": chosen["chosen"], "why": why,
              "candidates": {name: {k: (str(Path(v).relative_to(folder)) if k == "file" else v) for k, v in p.items()}
                             for name, p in profiles.items()}}
    args.out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out / "op_profile.json", result)
    write_text_atomic(args.out / "op_profile.md", markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
