"""Does `edgekd bench` report the latency the standard tools report?

For each model, the fp32 artifact edgekd ships for two targets is measured two ways, interleaved:
  - OpenVINO IR (intel-cpu target): `benchmark_app -hint latency` (OpenVINO's own tool, from the openvino
    wheel) versus `edgekd bench BUNDLE`;
  - ONNX (x86-cpu target): a bare `InferenceSession.run` loop versus `edgekd bench BUNDLE`.
Both sides use the same file, the same threads (--threads), f32 inference precision (benchmark_app would
otherwise pick bf16 on AMX CPUs), batch 1 and the same measuring time; every measurement is a fresh process.
benchmark_app reports OpenVINO's own clock (InferRequest.latency), so it is compared with the runtime p50
edgekd bench records from that clock; the bare loop and edgekd's p50 are both Python wall-clock times.
All tools are pinned to the same CPU(s). Rounds alternate which tool goes first, so drift on this shared machine hits both alike. Per tool, the
median over rounds of its median latency is reported; the verdict is the median over rounds of the
edgekd / reference ratio (each round's two measurements are adjacent in time, so load that comes and goes
between rounds cancels): edgekd passes when that is within 10% of 1.

    flock /tmp/edgekd-heavy.lock python benchmarks/latency_fidelity.py   # or: make latency-fidelity
    python benchmarks/latency_fidelity.py --smoke     # seconds, into a temporary folder: does it still run?
Writes benchmarks/results/latency_fidelity.json and .md.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import smoke  # noqa: E402  (benchmarks/smoke.py, beside this script)

from edgekd.core.environment import describe  # noqa: E402
from edgekd.core.fileio import write_json_atomic, write_text_atomic  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
TOLERANCE = 0.10


def build_models(work: Path, names: list[str]) -> dict[str, tuple[Path, tuple[int, ...]]]:
    """fp32 ONNX files (random weights) exported by edgekd's own exporter."""
    import torch
    import torchvision

    from edgekd.train.config import ExportConfig
    from edgekd.train.models.zoo import ConvNet
    from edgekd.train.onnx_export import export_onnx

    torch.manual_seed(0)
    factories = {
        "quickstart-student": (lambda: ConvNet(1, 10, 8, width=8), (1, 1, 8, 8)),
        "mobilenet_v3_small": (lambda: torchvision.models.mobilenet_v3_small(weights=None), (1, 3, 224, 224)),
        "resnet18": (lambda: torchvision.models.resnet18(weights=None), (1, 3, 224, 224)),
    }
    out = {}
    for name in names:
        factory, shape = factories[name]
        example = np.random.default_rng(0).normal(size=(2, *shape[1:])).astype(np.float32)
        out[name] = (export_onnx(factory(), example, work / f"{name}.onnx", ExportConfig(), {}), shape)
    return out


def make_bundle(work: Path, model: str, onnx_path: Path, shape: tuple[int, ...], target: str) -> Path:
    """The bundle edgekd would ship for `target` (its backend's compile, its profile's threads and hints)."""
    import onnxruntime as ort

    from edgekd.device.bundle import write_bundle
    from edgekd.runtimes import get_backend, load_profile

    profile = load_profile(target)
    artifact = get_backend(profile.backend).compile(onnx_path, "fp32", profile, work / model / target / "artifact")
    x = np.random.default_rng(1).normal(size=(8, *shape[1:])).astype(np.float32)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    logits = session.run(None, {session.get_inputs()[0].name: x})[0]
    return write_bundle(work / model / target / "bundle", artifact, x, logits.argmax(1), logits,
                        {"target": target, "run": f"latency-fidelity-{model}"})


def edgekd_p50(bundle: Path, threads: int, seconds: float) -> dict[str, float | None]:
    """edgekd's wall-clock p50 (what the calling application sees) and, where the runtime keeps its own
    clock (OpenVINO's InferRequest.latency, which is what benchmark_app reports), the runtime's p50."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "report.json"
        subprocess.run([sys.executable, "-m", "edgekd", "bench", str(bundle), "--threads", str(threads),
                        "--batch", "1", "--no-memory", "--runs", "50",
                        "--min-seconds", str(seconds), "--rounds", "1", "--warmup-runs", "10", "--warmup-seconds", "0.5",
                        "--json", str(out)], check=True, capture_output=True, text=True, env=_env())
        stats = json.loads(out.read_text())["rows"][0]["latency"]["batch1"]
        return {"host": stats["p50_ms"], "runtime": stats.get("runtime_p50_ms")}


def benchmark_app_p50(bundle: Path, shape: tuple[int, ...], threads: int, seconds: float) -> float:
    """benchmark_app forbids -nthreads with -hint, so the bundle's own CPU config (threads, precision and
    performance hints) goes in through -load_config: both tools then compile the model identically."""
    config = {**json.loads((bundle / "manifest.json").read_text())["artifact"]["runtime_options"]["config"],
              "INFERENCE_NUM_THREADS": threads}  # what `edgekd bench --threads` sets
    with tempfile.TemporaryDirectory() as tmp:
        config_file = Path(tmp) / "config.json"
        config_file.write_text(json.dumps({"CPU": {k: str(v) for k, v in config.items()}}))
        command = [_benchmark_app(), "-m", str(bundle / "model.xml"), "-d", "CPU", "-hint", "latency",
                   "-t", str(max(1, round(seconds))), "-infer_precision", "f32", "-load_config", str(config_file),
                   "-data_shape", "[" + ",".join(map(str, shape)) + "]"]
        # No -inference_only: for a dynamic-batch model benchmark_app then sets the input tensor on every
        # iteration ("full mode"), as edgekd's session.run does and as an application must.
        done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"benchmark_app failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    match = re.search(r"Median:\s+([0-9.]+)\s+(us|ms)", done.stdout)
    if not match:
        raise RuntimeError(f"no median in benchmark_app output:\n{done.stdout[-2000:]}")
    return float(match.group(1)) / (1000.0 if match.group(2) == "us" else 1.0)


def _benchmark_app() -> str:
    """The openvino wheel installs the console script beside the interpreter."""
    beside = Path(sys.executable).with_name("benchmark_app")
    return str(beside) if beside.exists() else (shutil.which("benchmark_app") or "benchmark_app")


def bare_ort_p50(onnx_path: Path, shape: tuple[int, ...], threads: int | None, seconds: float) -> float:
    done = subprocess.run([sys.executable, __file__, "--bare-ort", str(onnx_path), ",".join(map(str, shape)),
                           str(threads or 0), str(seconds)], check=True, capture_output=True, text=True, env=_env())
    return float(done.stdout.strip().splitlines()[-1])


def _bare_ort_loop(onnx_path: str, shape: str, threads: int, seconds: float) -> float:
    """The simplest honest timing: a session, 10 warm-up runs, then timed runs for `seconds`; median."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    session = ort.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: np.random.default_rng(1).normal(size=tuple(map(int, shape.split(",")))).astype(np.float32)}
    for _ in range(10):
        session.run(None, feed)
    samples, deadline = [], time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(samples) < 50:
        start = time.perf_counter()
        session.run(None, feed)
        samples.append((time.perf_counter() - start) * 1000)
    return float(np.median(samples))


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}


def measure_case(reference, edgekd, rounds: int) -> tuple[list[float], list[float]]:
    ref_ms, ours_ms = [], []
    for index in range(rounds):
        order = [(reference, ref_ms), (edgekd, ours_ms)]
        for measure, into in (order if index % 2 == 0 else order[::-1]):
            into.append(measure())
    return ref_ms, ours_ms


def run(models: list[str], rounds: int, seconds: float, threads: int) -> dict:
    cases, load_before = [], os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="edgekd-latfid-") as tmp:
        work = Path(tmp)
        for model, (onnx_path, shape) in build_models(work, models).items():
            ov_bundle = make_bundle(work, model, onnx_path, shape, "intel-cpu")
            ort_bundle = make_bundle(work, model, onnx_path, shape, "x86-cpu")
            # Like for like: benchmark_app reports the runtime's own clock, so edgekd's runtime p50 is compared
            # with it; the bare loop times session.run in Python, so edgekd's wall-clock p50 is compared with it.
            plans = [("openvino", "benchmark_app -hint latency", "runtime",
                      partial(benchmark_app_p50, ov_bundle, shape, threads, seconds), ov_bundle),
                     ("onnxruntime", "bare InferenceSession.run loop", "host",
                      partial(bare_ort_p50, ort_bundle / "model.onnx", shape, threads, seconds), ort_bundle)]
            for runtime, tool, clock, reference, bundle in plans:
                ref_ms, ours = measure_case(reference, partial(edgekd_p50, bundle, threads, seconds), rounds)
                ref = statistics.median(ref_ms)
                ours_ms = [o[clock] for o in ours]
                paired = statistics.median(o / r for o, r in zip(ours_ms, ref_ms, strict=True))
                edgekd, host = statistics.median(ours_ms), statistics.median(o["host"] for o in ours)
                cases.append({"model": model, "runtime": runtime, "reference_tool": tool, "input_shape": list(shape),
                              "threads": threads, "reference_p50_ms": ref, "edgekd_p50_ms": edgekd,
                              "edgekd_clock": "runtime (InferRequest.latency)" if clock == "runtime" else "host wall clock",
                              "edgekd_host_p50_ms": host, "ratio": edgekd / ref, "host_ratio": host / ref,
                              "within_10pct": abs(paired - 1) <= TOLERANCE,
                              "medians_within_10pct": abs(edgekd / ref - 1) <= TOLERANCE,
                              "reference_rounds_ms": ref_ms, "edgekd_rounds_ms": ours_ms,
                              "edgekd_host_rounds_ms": [o["host"] for o in ours],
                              "paired_ratio_median": paired})
                print(f"{model:<20} {runtime:<12} {tool:<32} ref {ref:8.4f} ms  edgekd {edgekd:8.4f} ms "
                      f"(host {host:8.4f} ms)  ratio {edgekd / ref:.3f}", flush=True)
    return {"benchmark": "latency_fidelity", "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "environment": describe(),
            "protocol": {"rounds": rounds, "seconds_per_measurement": seconds, "batch": 1, "precision": "fp32 (f32 inference)",
                         "threads": threads,
                         "tolerance": TOLERANCE, "interleaving": "tools alternate which goes first each round",
                         "aggregate": "median over rounds of each measurement's median latency",
                         "verdict": "median over rounds of edgekd / reference, each round's two measurements adjacent in time",
                         "clocks": "openvino: benchmark_app's InferRequest.latency vs edgekd runtime_p50_ms (same clock); "
                                   "onnxruntime: bare-loop wall clock vs edgekd p50_ms (wall clock)"},
            "load_average_1_5_15min": {"before": list(load_before), "after": list(os.getloadavg())},
            "cases": cases, "all_within_10pct": all(c["within_10pct"] for c in cases)}


def markdown(result: dict) -> str:
    cpu = result["environment"]["cpu"]
    lines = ["# Latency fidelity: edgekd bench vs the standard tools", "",
             f"{cpu['model']}, {cpu['cores']} cores (shared); {result['protocol']['rounds']} interleaved rounds of "
             f"{result['protocol']['seconds_per_measurement']} s per tool; batch 1, fp32, {result['protocol']['threads']} "
             f"thread(s) for every tool, all pinned to CPU(s) {result['protocol'].get('pinned_cpus')}. Generated by "
             "`benchmarks/latency_fidelity.py` on {created}.".format(created=result["created"]), "",
             "| model | runtime | reference tool | reference p50 (ms) | edgekd p50 (ms) | edgekd clock | ratio of the medians "
             "| edgekd / reference per round (median) | within 10% | edgekd host p50 (ms) | host / reference |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in result["cases"]:
        lines.append(f"| {c['model']} | {c['runtime']} | {c['reference_tool']} | {c['reference_p50_ms']:.4f} | "
                     f"{c['edgekd_p50_ms']:.4f} | {c['edgekd_clock']} | {c['ratio']:.3f} | {c['paired_ratio_median']:.3f} | "
                     f"{'yes' if c['within_10pct'] else 'NO'} | {c['edgekd_host_p50_ms']:.4f} | {c['host_ratio']:.3f} |")
    load = result["load_average_1_5_15min"]
    lines += ["", f"All within 10%: {'yes' if result['all_within_10pct'] else 'NO'}. Load average (1 min) "
              f"{load['before'][0]:.1f} before and {load['after'][0]:.1f} after, on {cpu['cores']} cores: other jobs "
              "shared the machine, so single rounds swing (a small model's latency jumps between two levels as load comes and "
              "goes). The verdict uses the per-round ratio, whose two measurements are adjacent in time; the ratio of the "
              "medians is shown beside it.", "",
              "benchmark_app reports OpenVINO's own clock (InferRequest.latency), so edgekd's runtime p50 (the same "
              "clock, recorded by `edgekd bench` as `runtime_p50_ms`) is the like-for-like number; the host p50 adds "
              "the Python call and the input/output copies, which only show on very small models."]
    return "\n".join(lines) + "\n"


def pin_to_last_cpus(threads: int) -> list[int] | None:
    """Run every tool (the subprocesses inherit it) on the same `threads` CPUs, so no tool gets a core the
    other did not: the scheduler otherwise moves single-threaded loops between cores as other jobs come and go."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    cpus = sorted(os.sched_getaffinity(0))[-threads:]
    os.sched_setaffinity(0, cpus)
    return cpus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["quickstart-student", "mobilenet_v3_small", "resnet18"])
    # Each measurement is a fresh process, and on this machine a process's small-model latency is bimodal
    # (e.g. 20 or 29 us for the same ONNX file, set at process start): many short rounds beat few long ones.
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--seconds", type=float, default=1.0)
    # One thread by default: this 2-core machine is shared by several agents, and a 2-thread inference
    # stalls whenever either core is taken, which makes every tool's numbers swing by 2-3x between runs.
    parser.add_argument("--threads", type=int, default=1, help="inference threads for every tool")
    parser.add_argument("--bare-ort", nargs=4, metavar=("ONNX", "SHAPE", "THREADS", "SECONDS"), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=RESULTS)
    smoke.add_option(parser)
    args = parser.parse_args()
    if args.smoke:  # the 8x8 model, one short round per tool
        args.models, args.rounds, args.seconds, args.out = ["quickstart-student"], 1, 0.2, smoke.folder("latency_fidelity")
    if args.bare_ort:
        onnx_path, shape, threads, seconds = args.bare_ort
        print(_bare_ort_loop(onnx_path, shape, int(threads), float(seconds)))
        return
    pinned = pin_to_last_cpus(args.threads)
    result = run(args.models, args.rounds, args.seconds, args.threads)
    result["protocol"]["pinned_cpus"] = pinned
    result["smoke"] = args.smoke  # a smoke run's numbers mean nothing
    write_json_atomic(args.out / "latency_fidelity.json", result)
    write_text_atomic(args.out / "latency_fidelity.md", markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
