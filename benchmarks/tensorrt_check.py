"""TensorRT for real: engines built from bundles on this GPU, benchmarked, top-1 compared with onnxruntime.

Needs tensorrt, cuda-python and an NVIDIA GPU (`pip install 'edgekd[tensorrt]'`); without them it says so in
one line and exits 2. Until it has run on such a machine, edgekd's TensorRT path is tested only against
stand-ins (tests/runtimes/test_tensorrt.py records the builder calls; no engine is built).

Steps:
1. the quickstart pipeline (configs/quickstart.yaml) with targets [nvidia-gpu] (or --target jetson-orin on a
   Jetson), resumed if already run: its compile stage builds and measures every candidate (int8, fp16, fp32);
2. every candidate as a bundle of its own (benchmarks/candidate_bundles.py), whose engine is then rebuilt
   from the bundle as a device does it: `edgekd compile BUNDLE --target PROFILE`;
3. `edgekd bench` on those bundles (sha256, top-1 on eval.npz, latency), and `edgekd gate`;
4. the same bundles' ONNX files through onnxruntime on the CPU (the QDQ int8 model; for fp16, the fp32 model);
5. checks: every engine built and loaded; fp32 and fp16 top-1 within one sample of onnxruntime's, int8 within
   INT8_SAMPLES_APART (TensorRT fuses int8 kernels its own way, with symmetric int8 activations).

    make tensorrt-check      # or: python benchmarks/tensorrt_check.py [--target jetson-orin]
Writes benchmarks/results/tensorrt_check.json and .md; exits 1 if a check fails.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from candidate_bundles import stage_candidate_bundles  # noqa: E402  (beside this script)

from edgekd.core.environment import describe  # noqa: E402
from edgekd.core.fileio import read_json, write_json_atomic, write_text_atomic  # noqa: E402
from edgekd.core.metrics import topk  # noqa: E402
from edgekd.runtimes.tensorrt import TensorRTBackend  # noqa: E402

# int8 engines may disagree with onnxruntime's QDQ kernels on a few borderline samples: at most 1% of them.
INT8_SAMPLES_APART = 0.01
BENCH_ARGS = ["--runs", "50", "--min-seconds", "0.5", "--batch", "1", "--batch", "8"]


def sh(*args, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    print("+", " ".join(map(str, args)), flush=True)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([str(a) for a in args], check=check, env=env, **kwargs)


def edgekd(*args, check: bool = True) -> subprocess.CompletedProcess:
    return sh(sys.executable, "-m", "edgekd", *args, check=check)


def require_tensorrt() -> None:
    if not TensorRTBackend().can_build_here():
        sys.stderr.write("tensorrt-check: needs tensorrt, cuda-python and an NVIDIA GPU (nvidia-smi); "
                         "run it on such a machine after pip install 'edgekd[tensorrt]'\n")
        sys.exit(2)


def run_pipeline(target: str, work: Path, runs: Path) -> Path:
    config = yaml.safe_load((REPO / "configs" / "quickstart.yaml").read_text())
    config.update(name=f"quickstart-{target}", targets=[target])
    path = work / f"quickstart-{target}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    run_dir = runs / config["name"]
    done = edgekd("run", path, "--out", run_dir, "--resume", check=False)
    if done.returncode not in (0, 1):  # 1: the gate failed; the bundles are written all the same
        sys.exit(f"tensorrt-check: the pipeline failed (exit {done.returncode})")
    return run_dir


def onnxruntime_top1(bundle: Path) -> float:
    import onnxruntime as ort

    with np.load(bundle / "eval.npz", allow_pickle=False) as data:
        x, y = data["x"], data["y"]
    session = ort.InferenceSession(str(bundle / "model.onnx"), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    logits = np.concatenate([session.run(None, {name: x[i:i + 64]})[0] for i in range(0, len(x), 64)])
    return topk(logits, y)


def compare(check: Path, staged: dict[str, str]) -> list[dict]:
    report = read_json(check / "bench" / "report.json")
    measured = {Path(row["bundle"]).name: row for row in report["rows"] if row.get("bundle")}
    rows = []
    for name in staged:
        bundle, row = check / "bundle" / name, measured.get(name, {})
        manifest = read_json(bundle / "manifest.json")
        samples = int(read_json(check / "bench" / "report.json")["eval_set"]["samples"])
        ort_top1 = onnxruntime_top1(bundle)
        apart = None if row.get("top1") is None else round(abs(row["top1"] - ort_top1) * samples)
        allowed = max(1, round(INT8_SAMPLES_APART * samples)) if manifest["artifact"]["precision"] == "int8" else 1
        rows.append({"candidate": name, "precision": manifest["artifact"]["precision"], "eval_samples": samples,
                     "engine_built": manifest["artifact"]["main"] == "model.engine",
                     "engine_built_with": manifest["artifact"].get("notes", {}).get("engine_built_with"),
                     "top1_tensorrt": row.get("top1"), "top1_onnxruntime": ort_top1, "samples_apart": apart,
                     "samples_allowed": allowed, "p50_ms": row.get("p50_ms"),
                     "passed": apart is not None and apart <= allowed and manifest["artifact"]["main"] == "model.engine"})
    return rows


def markdown(results: dict) -> str:
    env = results["environment"]
    lines = ["# TensorRT engines built from bundles, against onnxruntime", "",
             f"Generated by `benchmarks/tensorrt_check.py` ({results['created']}) on {env.get('gpu')}, "
             f"TensorRT {env['libraries'].get('tensorrt')}, onnxruntime {env['libraries'].get('onnxruntime')} (CPU).",
             f"Gate on the device report: exit {results['gate_exit']}.", "",
             "| candidate | precision | samples | top-1 TensorRT | top-1 onnxruntime | samples apart (allowed) | p50 ms | check |",
             "|---|---|---:|---:|---:|---:|---:|---|"]
    for row in results["cases"]:
        trt = "-" if row["top1_tensorrt"] is None else f"{row['top1_tensorrt'] * 100:.2f}%"
        p50 = "-" if row["p50_ms"] is None else f"{row['p50_ms']:.3f}"
        lines.append(f"| {row['candidate']} | {row['precision']} | {row['eval_samples']} | {trt} | "
                     f"{row['top1_onnxruntime'] * 100:.2f}% | {row['samples_apart']} ({row['samples_allowed']}) | {p50} | "
                     f"{'pass' if row['passed'] else 'FAIL'} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="nvidia-gpu", choices=["nvidia-gpu", "jetson-orin"])
    parser.add_argument("--runs", type=Path, default=REPO / "runs" / "tensorrt-check")
    parser.add_argument("--work", type=Path, default=REPO / "benchmarks" / ".work" / "tensorrt")
    parser.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results" / "tensorrt_check")
    args = parser.parse_args()
    require_tensorrt()
    started = time.time()
    args.work.mkdir(parents=True, exist_ok=True)
    run_dir = run_pipeline(args.target, args.work, args.runs)
    check = args.work / "check"
    if check.exists():
        import shutil

        shutil.rmtree(check)
    staged = stage_candidate_bundles(run_dir, args.target, check)
    for name in staged:  # the engine rebuilt from the bundle, as on a device
        edgekd("compile", check / "bundle" / name, "--target", args.target)
    edgekd("bench", check, "--out", check / "bench", *BENCH_ARGS)
    gate = edgekd("gate", check / "bench" / "report.json", "--baseline", run_dir / "report.json", check=False)
    rows = compare(check, staged)
    results = {"benchmark": "tensorrt_check", "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "target": args.target,
               "environment": describe(), "gate_exit": gate.returncode, "int8_samples_apart_allowed": INT8_SAMPLES_APART,
               "seconds": round(time.time() - started, 1), "cases": rows,
               "passed": all(r["passed"] for r in rows) and gate.returncode == 0}
    write_json_atomic(args.results.with_suffix(".json"), results)
    write_text_atomic(args.results.with_suffix(".md"), markdown(results))
    print(markdown(results))
    return 0 if results["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
