"""Int8 on the distilled Fashion-MNIST student: edgekd PTQ (each calibration method) and QAT against
onnxruntime's quantize_static defaults and NNCF's default nncf.quantize.

Same fp32 model, same calibration set (calibration recipe of the run's config), same test split.
For each candidate: test top-1, drop vs fp32, file size, and p50 latency at batch 1 on onnxruntime
CPU and OpenVINO CPU (f32 and bf16 inference-precision hints), timed interleaved per runtime.

    flock /tmp/edgekd-heavy.lock python benchmarks/quantize_fashion_mnist.py
    python benchmarks/quantize_fashion_mnist.py --smoke    # seconds, into a temporary folder: does it still run?

The student comes from benchmarks/fashion_mnist_student.yaml; its run folder is reused when present
and made (or completed) with the pipeline otherwise. Writes benchmarks/results/quantize_fashion_mnist.{json,md}.
"""
from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import smoke  # noqa: E402  (benchmarks/smoke.py, beside this script)

from edgekd import api  # noqa: E402
from edgekd.core.environment import describe  # noqa: E402
from edgekd.core.fileio import atomic_path, write_json_atomic, write_text_atomic  # noqa: E402
from edgekd.core.metrics import (  # noqa: E402
    accuracy_drop,  # noqa: E402
    predict,
    topk,
)
from edgekd.data.calibration import draw, load_recipe  # noqa: E402
from edgekd.device.latency import LatencySpec, measure_interleaved  # noqa: E402
from edgekd.pipeline.config import load_config  # noqa: E402
from edgekd.pipeline.context import RunContext  # noqa: E402
from edgekd.pipeline.manifest import RunManifest  # noqa: E402
from edgekd.pipeline.stages.quantize import qat_int8  # noqa: E402
from edgekd.quant.fallback import FallbackBudget, pick_calibration, quantize_with_fallback  # noqa: E402
from edgekd.quant.host import recipe_for_host  # noqa: E402
from edgekd.runtimes import load_profile  # noqa: E402
from edgekd.runtimes.openvino import OpenVinoSession  # noqa: E402
from edgekd.runtimes.ort import OrtSession  # noqa: E402
from edgekd.runtimes.ptq import ArrayReader, quantized_nodes, strip_node_debug_metadata  # noqa: E402

RUNTIMES = ("ort", "openvino_f32", "openvino_bf16")
# edgekd quantizes per target: each target's recipe (targets/<name>.yaml) is judged on its own runtime's
# columns, as NNCF's OpenVINO model is judged on OpenVINO and its ONNX model on onnxruntime.
TARGET_RUNTIMES = {"x86-cpu": ("ort",), "intel-cpu": ("openvino_f32", "openvino_bf16")}
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
PTQ_BUDGET = 0.5  # points of top-1 on the validation split, the target for the chosen PTQ model
LATENCY_TOLERANCE = 0.05


def open_run(config_path: Path, run_dir: Path) -> RunContext:
    """The pipeline's run, made or completed up to the export stage when needed."""
    manifest = run_dir / "manifest.json"
    if not manifest.is_file() or not (run_dir / "03-export" / "student-fp32.onnx").is_file():
        api.run(config_path, out=run_dir, resume=manifest.is_file(), only=["teachers", "distill", "export"])
    cfg = load_config(config_path)
    return RunContext(cfg, config_path, run_dir, RunManifest.open(run_dir, cfg.digest(), str(config_path)))


def host_recipe(target: str):
    """The target's recipe as the quantize stage uses it on this machine (7-bit weights on x86 CPUs without VNNI,
    whose int8 kernels saturate full-range products: measured here, the full-range model would not be the device's)."""
    return recipe_for_host(load_profile(target).quantization, target=target).recipe


def recipe_groups() -> dict[str, tuple[list[str], object]]:
    """Targets grouped by identical recipe formats (the quantize stage also makes one model for them)."""
    groups: dict[str, tuple[list[str], object]] = {}
    for target in TARGET_RUNTIMES:
        recipe = host_recipe(target)
        groups.setdefault(json.dumps(recipe.model_dump(exclude={"name"}), sort_keys=True), ([], recipe))[0].append(target)
    return groups


def edgekd_ptq(ctx: RunContext, work: Path, calib: np.ndarray) -> list[dict]:
    """Each distinct target recipe, once per calibration method (what quantize.calibrate_method: auto tries)."""
    val, out = ctx.dataset.val, []
    for targets, recipe in recipe_groups().values():
        for method in CALIBRATION_METHODS:
            name = f"edgekd-ptq-{'+'.join(targets)}-{method}"
            started = time.perf_counter()
            report = quantize_with_fallback(ctx.layout.fp32_onnx, work / f"{name}.onnx", recipe, calib, val.x, val.y,
                                            FallbackBudget(PTQ_BUDGET, "absolute", 6, 512), method)
            out.append({"name": name, "tool": "edgekd", "path": work / f"{name}.onnx", "targets": targets,
                        "recipe": recipe.name, "calibrate_method": method, "val_top1": report.val_top1, "val_kl": report.val_kl,
                        "nodes_in_float": report.nodes_in_float,
                        "quantize_seconds": round(time.perf_counter() - started, 1), "report": report})
    return out


def edgekd_qat(ctx: RunContext, work: Path, calib: np.ndarray) -> dict:
    recipe = host_recipe("x86-cpu")
    started = time.perf_counter()
    path, info = qat_int8(ctx, recipe, calib, out=work / "edgekd-qat-u8s8.onnx")
    return {"name": "edgekd-qat-u8s8", "tool": "edgekd", "path": path, "targets": ["x86-cpu"], "recipe": recipe.name, "qat": info["qat"],
            "val_top1": info["qat"]["val_top1"], "quantize_seconds": round(time.perf_counter() - started, 1)}


def onnxruntime_default(fp32: Path, work: Path, calib: np.ndarray) -> dict:
    from onnxruntime.quantization import quantize_static

    path = work / "onnxruntime-default.onnx"
    with atomic_path(path) as tmp:
        quantize_static(str(fp32), str(tmp), ArrayReader("input", calib))  # every other argument at its default
    return {"name": "onnxruntime-default", "tool": "onnxruntime-default", "path": path}


def nncf_default(fp32: Path, work: Path, calib: np.ndarray) -> dict:
    """nncf.quantize with its defaults on the OpenVINO model; the ONNX backend's result is what onnxruntime times."""
    import nncf
    import onnx
    import openvino as ov

    samples = [calib[i:i + 1] for i in range(len(calib))]
    quantized = nncf.quantize(ov.convert_model(str(fp32)), nncf.Dataset(samples))
    xml = work / "nncf-default.xml"
    ov.save_model(quantized, str(xml), compress_to_fp16=False)
    onnx_model = nncf.quantize(onnx.load(str(fp32)), nncf.Dataset([{"input": s} for s in samples]))
    onnx_path = work / "nncf-default-onnx.onnx"
    onnx.save(onnx_model, str(onnx_path))
    return {"name": "nncf-default", "tool": "nncf-default", "path": xml, "files": [xml, xml.with_suffix(".bin")],
            "ort_path": onnx_path, "note": "OpenVINO IR from nncf.quantize(ov_model); onnxruntime runs nncf.quantize(onnx_model)"}


def sessions(candidate: dict, threads: int) -> tuple[dict, dict]:
    base = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads}
    out, errors = {}, {}
    onnx_path = candidate.get("ort_path", candidate["path"])
    out["ort"] = OrtSession(onnx_path, threads).run
    for runtime, hint in (("openvino_f32", "f32"), ("openvino_bf16", "bf16")):
        try:
            out[runtime] = OpenVinoSession(candidate["path"], {**base, "INFERENCE_PRECISION_HINT": hint}).run
        except Exception as exc:  # a flavour the plugin cannot compile is a result, recorded as such
            errors[runtime] = str(exc).replace(str(Path(candidate["path"]).parent) + "/", "")
    return out, errors


def measure(candidates: list[dict], test_x: np.ndarray, test_y: np.ndarray, threads: int, spec: LatencySpec) -> None:
    runners = {runtime: {} for runtime in RUNTIMES}
    for c in candidates:
        by_runtime, c["errors"] = sessions(c, threads)
        # Top-1 on the runtime the model is made for: OpenVINO for NNCF's IR and an OpenVINO-only recipe.
        main_runtime = "openvino_f32" if c["tool"] == "nncf-default" or c.get("targets") == ["intel-cpu"] else "ort"
        c["top1"] = topk(predict(by_runtime[main_runtime], test_x), test_y)
        c["top1_by_runtime"] = {r: topk(predict(run, test_x), test_y) for r, run in by_runtime.items()}
        for runtime, run in by_runtime.items():
            runners[runtime][c["name"]] = run
    batch = np.ascontiguousarray(test_x[:1])
    for runtime in RUNTIMES:
        stats = measure_interleaved(runners[runtime], batch, spec, desc=runtime)
        for c in candidates:
            c.setdefault("latency_ms", {})[runtime] = stats[c["name"]].p50_ms if c["name"] in stats else None
            c.setdefault("latency_cv", {})[runtime] = stats[c["name"]].cv if c["name"] in stats else None


def choose_ptq(candidates: list[dict], target: str) -> dict:
    """edgekd's pick among a target's PTQ models, the rule of quantize.calibrate_method: auto (pick_calibration):
    fewest nodes in float, then lowest KL divergence from the fp32 outputs on the validation split, then the cheaper
    calibration, unless another method's validation top-1 is significantly higher (exact McNemar, p < 0.05).
    The test split plays no part."""
    ptq = {c["calibrate_method"]: c for c in candidates if c["name"].startswith("edgekd-ptq-") and target in c["targets"]}
    return ptq[pick_calibration({method: c["report"] for method, c in ptq.items()})]


def checks(result: dict) -> dict:
    by_name = {c["name"]: c for c in result["candidates"]}
    qat, fp32 = by_name[result["qat"]], result["fp32"]
    peers = [c for c in result["candidates"] if c["tool"] != "edgekd"]
    # Sizes are compared with the fp32 file stripped of the exporter's per-node debug metadata, as the
    # int8 files are: comparing with the file as exported would flatter int8.
    out = {"qat_drop_le_0.2": qat["drop"] <= 0.2, "qat_size_le_30pct": qat["bytes"] <= 0.3 * fp32["bytes_stripped"]}
    for target, name in result["chosen_ptq_by_target"].items():
        chosen = by_name[name]
        out[f"chosen_ptq_{target}_drop_le_0.5"] = chosen["drop"] <= 0.5
        out[f"chosen_ptq_{target}_size_le_30pct"] = chosen["bytes"] <= 0.3 * fp32["bytes_stripped"]
        out[f"chosen_ptq_{target}_at_least_as_accurate_as_peers"] = all(chosen["top1"] >= p["top1"] for p in peers)
    for runtime, name in result["chosen_ptq_by_runtime"].items():
        mine = by_name[name]["latency_ms"][runtime]
        theirs = [p["latency_ms"][runtime] for p in peers if p["latency_ms"][runtime] is not None]
        out[f"chosen_ptq_not_slower_{runtime}"] = mine is not None and all(mine <= t * (1 + LATENCY_TOLERANCE) for t in theirs)
    return out


def stripped_size(fp32: Path, work: Path) -> int:
    copy = work / "fp32-stripped.onnx"
    shutil.copyfile(fp32, copy)
    strip_node_debug_metadata(copy)
    return copy.stat().st_size


def file_bytes(c: dict) -> int:
    return sum(Path(f).stat().st_size for f in c.get("files", [c["path"]]))


def _row(name: str, tool: str, c: dict, fp32: dict) -> str:
    lat = [f"{c['latency_ms'][r]:.3f}" if c["latency_ms"].get(r) is not None else "failed" for r in RUNTIMES]
    drop = f"{c['drop']:+.2f}" if tool != "-" else "-"
    return (f"| {name} | {tool} | {c['top1']:.4f} | {drop} | {c['bytes'] / 1024:.1f} | "
            f"{100 * c['bytes'] / fp32['bytes_stripped']:.0f} | {' | '.join(lat)} |")


def to_markdown(result: dict) -> str:
    fp32 = result["fp32"]
    lines = [f"# Int8 on the distilled Fashion-MNIST student ({result['test_samples']} test images)", "",
             f"fp32: top-1 {fp32['top1']:.4f}. Latency: p50 ms at batch 1, {result['threads']} threads, interleaved per "
             f"runtime. Calibration: {result['calibration']['samples']} samples ('{result['calibration']['recipe']}', "
             f"sha256 {result['calibration']['sha256'][:12]}). Sizes in % of the fp32 file without the exporter's per-node "
             f"debug metadata ({fp32['bytes_stripped'] / 1024:.1f} KB; int8 files are stripped of it too). edgekd's "
             "PTQ is chosen per target on the validation split: x86-cpu's recipe is judged on the onnxruntime column, "
             "intel-cpu's on the OpenVINO ones.", "",
             "| candidate | tool | top-1 | drop (pt) | size KB | % of fp32 | ort | OpenVINO f32 | OpenVINO bf16 |",
             "|---|---|---|---|---|---|---|---|---|", _row("fp32 (as exported)", "-", fp32, fp32)]
    for c in result["candidates"]:
        chosen_for = [target for target, name in result["chosen_ptq_by_target"].items() if name == c["name"]]
        mark = f" (chosen PTQ: {', '.join(chosen_for)})" if chosen_for else ""
        lines.append(_row(c["name"] + mark, c["tool"], c, fp32))
    lines += ["", "## How edgekd chose, on the validation split", "", result["chosen_ptq_rule"], "",
              "| candidate | val top-1 | val KL from fp32 (nats) | nodes in float |", "|---|---|---|---|"]
    lines += [f"| {c['name']} | {c['val_top1']:.4f} | {c['val_kl']:.5f} | {len(c['nodes_in_float'])} |"
              for c in result["candidates"] if "val_kl" in c]
    lines += ["", "## Checks", ""] + [f"- {k}: {'PASS' if v else 'FAIL'}" for k, v in result["checks"].items()]
    notes = [f"- {c['name']}: {c['note']}" for c in result["candidates"] if c.get("note")]
    notes += [f"- {c['name']} on {r}: {e}" for c in result["candidates"] for r, e in c.get("errors", {}).items()]
    notes += [f"- {c['name']}: nodes kept in float by the fallback: {', '.join(c['nodes_in_float'])}"
              for c in result["candidates"] if c.get("nodes_in_float")]
    if notes:
        lines += ["", "## Notes", ""] + notes
    lines += ["", f"Machine: {result['environment'].get('cpu', {}).get('model', '?')}; generated by "
              "benchmarks/quantize_fashion_mnist.py.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=REPO / "benchmarks" / "fashion_mnist_student.yaml")
    parser.add_argument("--run", type=Path, default=REPO / "runs" / "fashion-mnist-student")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "quantize_fashion_mnist")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=600)
    parser.add_argument("--min-seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--test-limit", type=int, default=None, help="evaluate on fewer test images (smoke runs)")
    smoke.add_option(parser)
    args = parser.parse_args()
    if args.smoke:
        work = smoke.folder("quantize_fashion_mnist")
        args.config, args.run = smoke.shrunk_config(args.config, work), work / "run"
        args.out, args.runs, args.min_seconds, args.rounds = work / "results" / "quantize_fashion_mnist", 3, 0.0, 1
    logging.getLogger("nncf").setLevel(logging.WARNING)

    ctx = open_run(args.config, args.run)
    work = args.run / "quantize-bench"
    work.mkdir(parents=True, exist_ok=True)
    data, fp32 = ctx.dataset, ctx.layout.fp32_onnx
    calibration, digest = draw(data, load_recipe(ctx.cfg.quantize.calibration))
    test_x, test_y = data.test.x[:args.test_limit], data.test.y[:args.test_limit]

    candidates = edgekd_ptq(ctx, work, calibration.x)
    candidates.append(edgekd_qat(ctx, work, calibration.x))
    candidates.append(onnxruntime_default(fp32, work, calibration.x))
    candidates.append(nncf_default(fp32, work, calibration.x))
    reference = {"name": "fp32", "tool": "-", "path": fp32}
    spec = LatencySpec(warmup_runs=20, warmup_seconds=0.3, runs=args.runs, min_seconds=args.min_seconds, rounds=args.rounds)
    measure([reference, *candidates], test_x, test_y, args.threads, spec)
    for c in [reference, *candidates]:
        c["bytes"] = file_bytes(c)
        c["drop"] = accuracy_drop(reference["top1"], c["top1"])
        if c.get("nodes_in_float") is not None:
            c["quantized_nodes"] = len(quantized_nodes(c["path"]))
    reference["bytes_stripped"] = stripped_size(fp32, work)
    chosen = {target: choose_ptq(candidates, target)["name"] for target in TARGET_RUNTIMES}
    result = {
        "fp32": {k: reference[k] for k in ("top1", "bytes", "bytes_stripped", "latency_ms", "top1_by_runtime", "errors")},
        "candidates": [{k: (str(v.relative_to(args.run)) if isinstance(v, Path) else v) for k, v in c.items()
                        if k not in ("files", "report")} for c in candidates],
        "chosen_ptq": chosen["x86-cpu"], "chosen_ptq_by_target": chosen,
        "chosen_ptq_by_runtime": {runtime: chosen[target] for target, runtimes in TARGET_RUNTIMES.items() for runtime in runtimes},
        "chosen_ptq_rule": " ".join(line.strip() for line in choose_ptq.__doc__.splitlines()),
        "qat": "edgekd-qat-u8s8", "test_samples": len(test_y), "threads": args.threads,
        "calibration": {"recipe": ctx.cfg.quantize.calibration, "samples": len(calibration), "sha256": digest},
        "latency_spec": vars(spec), "run": str(args.run.relative_to(REPO) if args.run.is_relative_to(REPO) else args.run),
        "environment": describe(),
    }
    result["checks"] = checks(result)
    result["smoke"] = args.smoke  # a smoke run's numbers mean nothing
    write_json_atomic(args.out.with_suffix(".json"), result)
    write_text_atomic(args.out.with_suffix(".md"), to_markdown(result))
    print(to_markdown(result))


if __name__ == "__main__":
    main()
