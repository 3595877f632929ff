"""Do arm64-cpu bundles compute on aarch64 what the x86 build machine measured?

No ARM board here, so the bundles run on aarch64 code under emulation: a Debian arm64 root (debootstrap) with
bookworm's python3, the aarch64 wheels of numpy, onnxruntime, pydantic, ... from the package index and edgekd's
own wheel (no torch), run by qemu-user through binfmt_misc (scripts/arm64/root.sh). Emulation says nothing about
speed, but onnxruntime's aarch64 build runs its real ARM kernels, chosen by the CPU features qemu reports: on
qemu's "max" CPU (dot product, i8mm) and on its Cortex-A72 (a Raspberry Pi 4: neither), so two int8 kernel paths.

For each case (the quickstart student, a Fashion-MNIST student: benchmarks/arm64_fashion_mnist.yaml, and an
informational full-range int8 variant of the quickstart) the pipeline runs (or resumes) on x86, then every
arm64-cpu candidate (fp32 and int8) is bundled: the shipped bundle as the run wrote it, the others with edgekd's
bundle writer. On both architectures, with the same code: `edgekd bench` (sha256 check, top-1 on eval.npz),
`edgekd gate` (the run's thresholds, the run's report as baseline) and benchmarks/arm64_device_outputs.py (logits
of model.onnx and model.ort, the kernels each ran). Checks, per candidate and emulated CPU: sha256 verified on
aarch64; top-1 on aarch64 within one sample of x86; the same gate verdict; model.ort loads, gives model.onnx's
logits and runs the same kernels; aarch64 logits within TOLERANCE of x86's.

    make arm64-check          # installs qemu-user-static, binfmt-support and debootstrap if missing, then this
    python benchmarks/arm64_emulated.py [--case quickstart] [--qemu-cpu max] [--config my.yaml] [--results PATH]

Writes benchmarks/results/arm64_emulated.json and .md; exits 1 if a check fails. The arm64 root is built once
(about 3 minutes) and cached (EDGEKD_ARM64_ROOT, default ~/.cache/edgekd/arm64-root), the runs resume, so a rerun
spends its few minutes on emulated inference (its time is in the results).
"""
from __future__ import annotations

import argparse
import contextlib
import fcntl
import importlib.metadata
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from candidate_bundles import stage_candidate_bundles  # noqa: E402  (beside this script)

from edgekd.core.environment import describe  # noqa: E402
from edgekd.core.fileio import read_json, write_json_atomic, write_text_atomic  # noqa: E402

TARGET = "arm64-cpu"
ROOT_SCRIPT = REPO / "scripts" / "arm64" / "root.sh"
DEVICE_SCRIPT = "arm64_device_outputs.py"
# What edgekd needs on a device (pyproject's core dependencies) plus onnxruntime, at the versions this .venv runs.
DEVICE_PACKAGES = ("numpy", "onnxruntime", "pydantic", "pyyaml", "click", "tqdm")
# Logits from the two architectures may differ by float summation order (fp32: SIMD widths and FMA differ) and,
# for int8, by the float requantization between the integer layers. Both x86 and aarch64 run the QDQ model's
# layers as int8 kernels (QLinearConv, QGemm: see the results' kernels) and, with 7-bit weights, compute the
# same integers. Stated relative to the largest x86 logit magnitude of the case; for int8, 2% is about two
# quantization steps of the int8 logits.
TOLERANCE = {"fp32": 1e-4, "int8": 0.02}
# qemu's CPU models: "max" has every extension qemu emulates (dot product, i8mm, SVE); cortex-a72 (Raspberry Pi 4)
# has none of them, so onnxruntime runs int8 with its plain NEON kernels there.
QEMU_CPUS = ("max", "cortex-a72")
# Emulated inference is slow and latency means nothing here: few timed runs, one thread.
BENCH_ARGS = ["--runs", "3", "--min-seconds", "0", "--warmup-runs", "1", "--warmup-seconds", "0", "--rounds", "1",
              "--batch", "1", "--threads", "1"]


@dataclass(frozen=True)
class Case:
    name: str
    config: str
    model: str
    # A variant of another case's run: its config with these quantize options, resumed from a copy of that run
    # (teachers, student and export reused). Informational: reported, not part of the verdict.
    variant_of: str | None = None
    quantize: dict | None = None


CASES = (
    Case("quickstart", "configs/quickstart.yaml", "convnet width 8 on scikit-learn digits (8x8), distilled from 3 teachers"),
    Case("fashion-mnist", "benchmarks/arm64_fashion_mnist.yaml",
         "convnet width 8 on Fashion-MNIST (28x28), distilled from a convnet-16 teacher on 12k images"),
    # What the 7-bit weights are for: the same student with the profile's full-range S8S8 weights, which an x86
    # CPU without VNNI/AMX computes with saturating 16-bit pair sums and aarch64 does not.
    Case("quickstart-full-range", "configs/quickstart.yaml", "the quickstart student, int8 with full-range weights "
         "(quantize.adapt_to_host: false)", variant_of="quickstart", quantize={"adapt_to_host": False}),
)


def sh(*args, **kwargs) -> subprocess.CompletedProcess:
    print("+", " ".join(str(a) for a in args), flush=True)
    return subprocess.run([str(a) for a in args], check=kwargs.pop("check", True), **kwargs)


def edgekd_cmd(*args) -> list[str]:
    return [sys.executable, "-m", "edgekd", *map(str, args)]


def python_env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO)}


# --- the emulated device ---------------------------------------------------------------------------------

def arm64_root() -> Path:
    return Path(os.environ.get("EDGEKD_ARM64_ROOT") or Path.home() / ".cache" / "edgekd" / "arm64-root")


@contextlib.contextmanager
def root_in_use():
    """The cached root is shared by every checkout on the machine, and each installs its own edgekd wheel there:
    hold it from that install until the last aarch64 run, or another checkout's wheel replaces ours mid-check."""
    with open(f"{arm64_root()}.use.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def prepare_root(work: Path) -> bool:
    """Build (once) the arm64 root with the device packages at this .venv's versions, then install edgekd's wheel.
    Returns whether the root was already there."""
    root = arm64_root()
    cached = (root / ".edgekd-base").is_file()
    requirements = work / "requirements-aarch64.txt"
    requirements.write_text("".join(f"{name}=={importlib.metadata.version(name)}\n" for name in DEVICE_PACKAGES))
    sh("sh", ROOT_SCRIPT, "ensure", requirements, env={**python_env(), "PIP": f"{sys.executable} -m pip"})
    wheels = work / "wheel"
    shutil.rmtree(wheels, ignore_errors=True)
    # setuptools copies the package into build/ and keeps files deleted from the source since: start clean.
    shutil.rmtree(REPO / "build", ignore_errors=True)
    sh(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", wheels, REPO)
    (wheel,) = wheels.glob("edgekd-*.whl")
    sh("sh", ROOT_SCRIPT, "install", wheel)
    return cached


# --- x86: runs and bundles -------------------------------------------------------------------------------

def ensure_run(case: Case, runs: Path, work: Path) -> Path:
    """The case's pipeline run on this machine, resumed (stages already done are skipped)."""
    run_dir, config = runs / case.name, REPO / case.config
    if case.variant_of:
        data = yaml.safe_load(config.read_text())
        data["quantize"] = {**data.get("quantize", {}), **case.quantize}
        config = work / f"{case.name}.yaml"
        config.write_text(yaml.safe_dump(data, sort_keys=False))
        if not run_dir.exists():
            shutil.copytree(runs / case.variant_of, run_dir)
    done = sh(*edgekd_cmd("run", config, "--out", run_dir, "--resume"), check=False, env=python_env())
    if done.returncode not in (0, 1):  # 1: the gate failed, the bundles are written all the same
        sys.exit(f"arm64-check: the {case.name} run failed (exit {done.returncode})")
    return run_dir


# --- the same measurements on both architectures ---------------------------------------------------------

def device_commands(case: str, prefix: str, bundles: list[str], python: str) -> list[list[str]]:
    """bench, gate and the logits script for one case, as run from the check folder (x86 or aarch64 alike)."""
    out = f"{prefix}/{case}"
    return [[python, "-m", "edgekd", "bench", case, "--out", f"{out}/bench", *BENCH_ARGS],
            ["sh", "-c", f'{python} -m edgekd gate {out}/bench/report.json --baseline {case}/run-report.json '
                         f'--summary {out}/gate.md > {out}/gate.txt; echo $? > {out}/gate.exit'],
            [python, DEVICE_SCRIPT, f"{out}/outputs", *[f"{case}/bundle/{b}" for b in bundles]]]


def run_x86(check: Path, cases: dict[str, list[str]]) -> None:
    for case, bundles in cases.items():
        (check / "x86_64" / case).mkdir(parents=True, exist_ok=True)
        for command in device_commands(case, "x86_64", bundles, sys.executable):
            sh(*command, cwd=check, env=python_env())


def run_aarch64(check: Path, cases: dict[str, list[str]], qemu_cpu: str) -> None:
    """The same commands in the arm64 root, on qemu's model of `qemu_cpu` (its instruction set extensions)."""
    lines, prefix = ["set -e"], f"aarch64-{qemu_cpu}"
    for case, bundles in cases.items():
        lines.append(f"mkdir -p {prefix}/{case}")
        lines += [" ".join(f"'{part}'" for part in command) for command in device_commands(case, prefix, bundles, "python3")]
    (check / f"{prefix}.sh").write_text("\n".join(lines) + "\n")
    sh("sh", ROOT_SCRIPT, "run", check, "sh", f"{prefix}.sh", env=python_env() | {"QEMU_CPU": qemu_cpu})


# --- comparison ------------------------------------------------------------------------------------------

def bench_rows(report_path: Path) -> dict[str, dict]:
    report = read_json(report_path)
    return {Path(row["bundle"]).name: row for row in report["rows"] if row.get("bundle")}


def compare_case(case: Case, check: Path, staged: dict[str, str], qemu_cpu: str, first_cpu: str) -> list[dict]:
    arm_dir = f"aarch64-{qemu_cpu}"
    x86_rows, arm_rows = (bench_rows(check / arch / case.name / "bench" / "report.json") for arch in ("x86_64", arm_dir))
    arm_device = read_json(check / arm_dir / case.name / "outputs" / "device.json")
    arm_results = {b["bundle"]: b for b in arm_device["bundles"]}
    gates = {"x86_64": gate_verdict(check / "x86_64" / case.name), "aarch64": gate_verdict(check / arm_dir / case.name)}
    rows = []
    for name, how in staged.items():
        x86_logits = np.load(check / "x86_64" / case.name / "outputs" / f"{name}.npz")
        arm_logits = np.load(check / arm_dir / case.name / "outputs" / f"{name}.npz")
        arm = arm_results[name]
        scale = float(np.abs(x86_logits["onnx"]).max())
        precision = arm["precision"]
        row = {"model": f"{case.name}: {case.model}", "case": case.name, "informational": case.variant_of is not None,
               "candidate": name, "precision": precision, "aarch64_cpu": qemu_cpu,
               "aarch64_features": arm_device["environment"]["hwcaps"],
               "bundle": how, "shipped": how == "shipped bundle", "eval_samples": arm["eval_samples"],
               "top1_x86": x86_rows[name]["top1"], "top1_aarch64": arm_rows[name]["top1"],
               "sha256_verified_aarch64": arm["sha256_verified"],
               "max_abs_diff": float(np.abs(arm_logits["onnx"] - x86_logits["onnx"]).max()),
               "max_abs_logit_x86": scale, "tolerance_abs": TOLERANCE[precision] * scale,
               "argmax_disagreements": int((arm_logits["onnx"].argmax(1) != x86_logits["onnx"].argmax(1)).sum()),
               "ort_format_loaded": arm.get("ort_format_loaded", False),
               "gate_x86": gates["x86_64"], "gate_aarch64": gates["aarch64"],
               "kernels_x86_onnx": x86_results(check, case.name)[name]["onnx_kernels"],
               "kernels_aarch64_onnx": arm["onnx_kernels"]}
        first = np.load(check / f"aarch64-{first_cpu}" / case.name / "outputs" / f"{name}.npz")["onnx"]
        row[f"max_abs_diff_vs_aarch64_{first_cpu}"] = float(np.abs(arm_logits["onnx"] - first).max())
        if "ort" in arm_logits:
            row["ort_vs_onnx_max_abs_diff_aarch64"] = float(np.abs(arm_logits["ort"] - arm_logits["onnx"]).max())
            row["kernels_aarch64_ort"] = arm["ort_kernels"]
        if "ort_error" in arm:
            row["ort_error"] = arm["ort_error"]
        row["top1_samples_apart"] = round(abs(row["top1_x86"] - row["top1_aarch64"]) * row["eval_samples"])
        row["checks"] = checks_of(row)
        rows.append(row)
    return rows


def x86_results(check: Path, case: str) -> dict[str, dict]:
    return {b["bundle"]: b for b in read_json(check / "x86_64" / case / "outputs" / "device.json")["bundles"]}


def gate_verdict(folder: Path) -> dict:
    exit_code = int((folder / "gate.exit").read_text().strip())
    lines = (folder / "gate.txt").read_text().strip().splitlines()
    return {"exit": exit_code, "summary": lines[-1] if lines else ""}


def checks_of(row: dict) -> dict[str, bool]:
    checks = {"sha256_verified": row["sha256_verified_aarch64"],
              "top1_within_one_sample": row["top1_samples_apart"] <= 1,
              "outputs_within_tolerance": row["max_abs_diff"] <= row["tolerance_abs"],
              "same_gate_verdict": row["gate_x86"]["exit"] == row["gate_aarch64"]["exit"],
              "ort_format_loaded": row["ort_format_loaded"]}
    if "ort_vs_onnx_max_abs_diff_aarch64" in row:
        checks["ort_matches_onnx"] = row["ort_vs_onnx_max_abs_diff_aarch64"] <= row["tolerance_abs"]
        # The .ort file replays the fusions the .onnx file gets on aarch64: no int8 layer falls back to float.
        checks["ort_runs_onnx_kernels"] = row["kernels_aarch64_ort"] == row["kernels_aarch64_onnx"]
    return checks


# --- results ---------------------------------------------------------------------------------------------

def write_results(path: Path, results: dict) -> None:
    write_json_atomic(path.with_suffix(".json"), results)
    write_text_atomic(path.with_suffix(".md"), markdown(results))


def markdown(results: dict) -> str:
    env, build = results["environment"], results["build_machine"]
    lines = [
        "# arm64-cpu bundles on aarch64 (emulated) against x86",
        "",
        f"Generated by `benchmarks/arm64_emulated.py` ({results['created']}). aarch64: Debian bookworm arm64 root, "
        f"Python {env['python']}, onnxruntime {env['onnxruntime']}, numpy {env['numpy']}, under {results['emulator']}"
        f"; emulated CPUs (qemu -cpu) and the int8-relevant features the kernel reports for each: "
        f"{'; '.join(f'{cpu}: ' + (', '.join(feats) or 'none of dotprod/i8mm/sve/bf16') for cpu, feats in results['aarch64_cpus_features'].items())}"
        f". x86: {build['cpu']['model']} "
        f"({', '.join(build['cpu']['flags'])}), onnxruntime {build['libraries'].get('onnxruntime')}.",
        "Emulation runs onnxruntime's real aarch64 kernels but says nothing about speed: latency is not reported.",
        "",
        f"Verdict: {'every check passes' if results['passed'] else 'FAILED'} (informational rows aside); "
        f"{results['seconds']} s on the shared 2-core build machine (the arm64 root "
        f"{'reused' if results['root_cached'] else 'built in this run'}; pipeline runs resumed where done)." if results["seconds"] else
        f"Verdict: {'every check passes' if results['passed'] else 'FAILED'} (informational rows aside).",
        "",
        "| model | candidate | aarch64 CPU (qemu) | samples | top-1 x86 | top-1 aarch64 | max abs diff (tolerance) | .ort loads | "
        ".ort vs .onnx | gate x86 / aarch64 | checks |",
        "|---|---|---|---:|---:|---:|---:|---|---:|---|---|",
    ]
    for row in results["cases"]:
        failed = [name for name, ok in row["checks"].items() if not ok]
        lines.append(
            f"| {row['case']}{' (informational)' if row['informational'] else ''} | "
            f"{row['candidate']}{' (shipped)' if row['shipped'] else ''} | {row['aarch64_cpu']} | {row['eval_samples']} | "
            f"{row['top1_x86'] * 100:.2f}% | {row['top1_aarch64'] * 100:.2f}% | {row['max_abs_diff']:.2e} "
            f"({row['tolerance_abs']:.1e}) | {'yes' if row['ort_format_loaded'] else 'NO'} | "
            f"{row.get('ort_vs_onnx_max_abs_diff_aarch64', float('nan')):.2e} | "
            f"{row['gate_x86']['exit']} / {row['gate_aarch64']['exit']} | {verdict_text(row, failed)} |")
    lines += ["", "Kernels each session ran per batch (onnxruntime profiler), int8 candidates:", ""]
    for row in results["cases"]:
        if row["precision"] == "int8" and row["aarch64_cpu"] == results["aarch64_cpus"][0]:
            lines.append(f"- {row['case']} {row['candidate']}: x86 .onnx {fmt_kernels(row['kernels_x86_onnx'])}; "
                         f"aarch64 .onnx {fmt_kernels(row['kernels_aarch64_onnx'])}; "
                         f"aarch64 .ort {fmt_kernels(row.get('kernels_aarch64_ort', {}))}")
    lines += ["", results["notes"], ""]
    return "\n".join(lines)


def verdict_text(row: dict, failed: list[str]) -> str:
    if not failed:
        return "all pass"
    return ("differs (informational): " if row["informational"] else "FAIL: ") + ", ".join(failed)


def fmt_kernels(kernels: dict) -> str:
    return ", ".join(f"{op} x{n}" for op, n in kernels.items()) or "-"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", action="append", choices=[c.name for c in CASES], help="only this case (repeatable)")
    parser.add_argument("--config", type=Path, action="append", default=[],
                        help="also check the arm64-cpu bundle of this pipeline config (its targets must include arm64-cpu)")
    parser.add_argument("--runs", type=Path, default=REPO / "runs" / "arm64-check", help="pipeline run folders")
    parser.add_argument("--work", type=Path, default=REPO / "benchmarks" / ".work" / "arm64")
    parser.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results" / "arm64_emulated",
                        help="results path without suffix (.json and .md are written)")
    parser.add_argument("--compare-only", action="store_true",
                        help="only recompute the results from the outputs of the last run in --work (nothing runs)")
    parser.add_argument("--qemu-cpu", action="append", choices=["max", "cortex-a72", "cortex-a76", "neoverse-n1", "cortex-a53", "a64fx"],
                        help="emulated CPU (repeatable; default: max, with dot product and i8mm, and cortex-a72, "
                             "the Raspberry Pi 4's, without dot product: onnxruntime's int8 kernels differ)")
    args = parser.parse_args()
    cases = [c for c in CASES if c.name in (args.case or ([] if args.config else [c.name for c in CASES]))]
    cases += [Case(path.stem, str(path.resolve()), f"{path.name} (given with --config)") for path in args.config]
    started = time.time()
    args.work.mkdir(parents=True, exist_ok=True)
    check, cpus = args.work / "check", args.qemu_cpu or list(QEMU_CPUS)
    if args.compare_only:
        staged = read_json(check / "staged.json")
        return finish(args, cases, check, staged, cpus, started)
    shutil.rmtree(check, ignore_errors=True)
    check.mkdir()
    shutil.copy(REPO / "benchmarks" / DEVICE_SCRIPT, check / DEVICE_SCRIPT)
    staged, run_dirs = {}, {}
    for case in cases:
        run_dirs[case.name] = ensure_run(case, args.runs, args.work)
        staged[case.name] = stage_candidate_bundles(run_dirs[case.name], TARGET, check / case.name)
        if case.variant_of:  # only its int8 model differs from the case it varies
            for name in [n for n in staged[case.name] if not n.startswith("int8")]:
                shutil.rmtree(check / case.name / "bundle" / name)
                del staged[case.name][name]
        shutil.copy(run_dirs[case.name] / "report.json", check / case.name / "run-report.json")
    write_json_atomic(check / "staged.json", staged)
    bundles = {name: list(s) for name, s in staged.items()}
    run_x86(check, bundles)
    with root_in_use():
        args.root_cached = prepare_root(args.work)
        for cpu in cpus:
            run_aarch64(check, bundles, cpu)
    return finish(args, cases, check, staged, cpus, started)


def finish(args, cases: list[Case], check: Path, staged: dict, cpus: list[str], started: float) -> int:
    rows = [row for cpu in cpus for case in cases for row in compare_case(case, check, staged[case.name], cpu, cpus[0])]
    arm_env = read_json(check / f"aarch64-{cpus[0]}" / cases[0].name / "outputs" / "device.json")["environment"]
    results = {
        "benchmark": "arm64_emulated", "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "environment": arm_env, "onnxruntime": arm_env["onnxruntime"], "build_machine": describe(),
        "emulator": qemu_version(), "aarch64_cpus": cpus,
        "aarch64_cpus_features": {cpu: next(r["aarch64_features"] for r in rows if r["aarch64_cpu"] == cpu) for cpu in cpus},
        "tolerance_relative_to_max_abs_logit": TOLERANCE,
        "fashion_mnist_config": "benchmarks/arm64_fashion_mnist.yaml (data.path given: the Debian package's folder)",
        "seconds": None if args.compare_only else round(time.time() - started, 1),
        "root_cached": getattr(args, "root_cached", None), "cases": rows,
        "passed": all(all(r["checks"].values()) for r in rows if not r["informational"]),
        "notes": NOTES,
    }
    write_results(args.results, results)
    print(markdown(results))
    return 0 if results["passed"] else 1


def qemu_version() -> str:
    out = subprocess.run(["qemu-aarch64-static", "--version"], capture_output=True, text=True).stdout
    return out.splitlines()[0] if out else "qemu-aarch64-static"


NOTES = """Notes.
- int8 (arm64-cpu recipe arm-s8s8: int8 activations and weights, per-channel): built on the x86 build machine.
  Without VNNI/AMX, edgekd quantizes it with 7-bit weights (quantize.adapt_to_host, edgekd/quant/host.py):
  x86 onnxruntime runs S8S8 QDQ convolutions as int8 kernels (QLinearConv, the kernels above) that add u8*s8
  pairs in a saturating int16 on AVX2, so full-range weights would be measured wrongly there. aarch64 accumulates
  in int32 (SDOT/SMMLA, or NEON widening multiply-adds without dot product) and needs no such limit; with 7-bit
  weights both machines compute the same integers: the int8 rows' logits are identical.
  quickstart-full-range (informational, not part of the verdict) is the same student quantized with the profile's
  full-range weights (quantize.adapt_to_host: false): x86 without VNNI then differs from aarch64, whose two kernel
  paths (max: SMMLA/SDOT; cortex-a72: plain NEON) agree with each other exactly (max_abs_diff_vs_aarch64_max: 0).
- .ort: onnxruntime replays the fusions recorded in an .ort file only with the session option
  session.enable_saved_runtime_optimizations=1 (recorded in the bundle's artifact notes). An .ort file saved on
  x86 records the int8-activation QDQ fusions only when saved with session.qdqisint8allowed=1, as onnxruntime's
  converter does for --target_platform arm (edgekd does since this check found every Conv of the int8 .ort file
  running as DequantizeLinear + float Conv on aarch64).
- Fashion-MNIST student: benchmarks/arm64_fashion_mnist.yaml, a config of its own (few epochs, 12k images) with
  data.path given, not configs/fashion_mnist.yaml (tens of minutes on the 2-core build machine, no arm64-cpu target).
- Tolerance: max |logits aarch64 - logits x86| <= tolerance x max |logits x86|, per case and candidate."""

if __name__ == "__main__":
    sys.exit(main())
