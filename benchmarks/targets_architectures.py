"""int8 on trained CNNs, on real images, against the peers: every candidate of the `ort` (x86-cpu) and
`openvino` (intel-cpu) targets, the one edgekd's selection ships, and onnxruntime's and NNCF's default int8.

    flock /tmp/edgekd-heavy.lock env PYTHONPATH=$PWD python benchmarks/targets_architectures.py
    python benchmarks/targets_architectures.py --smoke     # mobilenet only, few images: does it still run?

Models: torchvision resnet18 and mobilenet_v3_small trained on Fashion-MNIST at 3x224x224
(../shared/models/fashion-mnist-224, its README gives the preprocessing used here). Each is exported
with edgekd.train.onnx_export (parity-tested). Calibration: the same 128 training images (fixed seed) for every
tool. Evaluation: 2,000 test images (fixed seed): top-1 against the labels and top-1 agreement with
the target's fp32 candidate. Candidates per target:
- edgekd: the target profile's float precisions and edgekd's int8 (`edgekd.api.quantize` with the
  target's recipe, adapted to this CPU as the quantize stage does: 7-bit weights on AVX2-only x86):
  onnxruntime's quantize_static for x86-cpu, NNCF on the ONNX model for intel-cpu (targets/*.yaml);
  for mobilenet_v3_small also `int8-float-se`: the squeeze-excite blocks in float and, with onnxruntime's
  recipe, Q/DQ on Conv/Gemm/Add only (hardswish in float too);
- onnxruntime-default and nncf-default: helpers/int8_peers.py.
All candidates of a target are timed together (batch 1, measure_interleaved). The shipped one is chosen
among edgekd's candidates by edgekd.pipeline.selection.choose (the compile stage's code) with the rule
"top-1 agreement >= 98% and top-1 drop <= 0.5 points"; peers are judged by the same rule.
Per-op profiles (onnxruntime's profiler, OpenVINO's PERF_COUNT) of fp32 and edgekd's int8 say where
int8 time goes.

Writes benchmarks/results/targets_architectures.json and .md.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).parent / "helpers"))
import int8_peers  # noqa: E402  (benchmarks/helpers/, not benchmark scripts themselves)
import smoke  # noqa: E402  (benchmarks/smoke.py, beside this script)

from edgekd.api import Int8Config, quantize  # noqa: E402
from edgekd.core.environment import cpu_info, library_versions  # noqa: E402
from edgekd.core.fileio import write_json_atomic, write_text_atomic  # noqa: E402
from edgekd.core.metrics import fidelity, predict, topk  # noqa: E402
from edgekd.data.sources import FASHION_MNIST_DIR, load_raw  # noqa: E402
from edgekd.device.latency import LatencySpec, measure_interleaved  # noqa: E402
from edgekd.pipeline.selection import choose, fidelity_rule, plan  # noqa: E402
from edgekd.quant.host import recipe_for_host, saturates_8bit_products  # noqa: E402
from edgekd.runtimes import get_backend, load_profile  # noqa: E402
from edgekd.runtimes.ptq import quantize_qdq  # noqa: E402
from edgekd.train.config import ExportConfig  # noqa: E402
from edgekd.train.onnx_export import export_onnx, parity  # noqa: E402

MODELS = {"resnet18": ("resnet18_a.pt", "resnet18_b.pt"), "mobilenet_v3_small": ("mobilenet_v3_small.pt",)}
TARGETS = ["x86-cpu", "intel-cpu"]
WEIGHTS = Path(__file__).resolve().parents[2] / "shared" / "models" / "fashion-mnist-224"
EVAL_SAMPLES, CALIBRATION_SAMPLES, BATCH = 2000, 128, 50
MIN_AGREEMENT, MAX_DROP_POINTS = 0.98, 0.5
CHOSEN_WITHIN = 0.05  # of the fastest passing peer
PEER_TOP1_MARGIN = 0.2  # points the shipped artifact may trail any peer's top-1
MEAN, STD = 0.2860, 0.3530
BF16_FLAGS, INT8_DOT_FLAGS = ("avx512_bf16", "amx_bf16"), ("avx512_vnni", "avx_vnni", "amx_int8")
RESULTS = Path(__file__).parent / "results"


def preprocess(images: np.ndarray) -> np.ndarray:
    """The zoo's preprocessing: normalise the 28x28 image, bilinear resize to 224, three channels."""
    x = (torch.from_numpy(images) - MEAN) / STD
    x = F.interpolate(x, size=(224, 224), mode="bilinear", align_corners=False)
    return np.ascontiguousarray(x.repeat(1, 3, 1, 1).numpy())


def data(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    raw = load_raw("fashion-mnist", FASHION_MNIST_DIR, None, None)
    rng = np.random.default_rng(seed)
    eval_idx = np.sort(rng.choice(len(raw.test_x), count, replace=False))
    calib_idx = np.sort(rng.choice(len(raw.x), CALIBRATION_SAMPLES, replace=False))
    eval_x = np.concatenate([preprocess(raw.test_x[eval_idx[i:i + 200]]) for i in range(0, count, 200)])
    about = {"dataset": "Fashion-MNIST", "eval": f"{count} test images, numpy default_rng({seed}) choice",
             "calibration": f"{CALIBRATION_SAMPLES} training images, same generator", "input": "3x224x224 float32"}
    return eval_x, raw.test_y[eval_idx], preprocess(raw.x[calib_idx]), about


def load_model(name: str, weights: Path) -> torch.nn.Module:
    state = {}
    for file in MODELS[name]:
        state.update(torch.load(weights / file, weights_only=True, map_location="cpu"))
    model = getattr(torchvision.models, name)(num_classes=10)
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    return model.eval()


def squeeze_excite_convs(onnx_path: Path) -> list[str]:
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    return [n.name for n in graph.node if n.op_type == "Conv" and any(".fc1." in i or ".fc2." in i for i in n.input)]


def edgekd_int8(model: str, target: str, fp32_onnx: Path, calib: np.ndarray, folder: Path) -> dict[str, Path]:
    """edgekd's int8 models for `target`, made as the quantize stage makes them (host-adapted recipe)."""
    out = {"int8": quantize(fp32_onnx, Int8Config(target=target, calibration=calib, output=folder / f"{target}-int8.onnx"))}
    if model.startswith("mobilenet"):
        # Q/DQ placement for MobileNetV3: hardswish (HardSigmoid * x) and squeeze-excite stay float, so that
        # no Q/DQ pair sits inside them; only Conv/Gemm/Add run int8.
        recipe = recipe_for_host(load_profile(target).quantization, True, target).recipe
        if recipe.tool == "onnxruntime":  # NNCF chooses op types by its own rules; only the excluded nodes apply
            recipe = recipe.model_copy(update={"op_types": ["Conv", "Gemm", "MatMul", "Add"], "extra_op_types": []})
        out["int8-float-se"] = quantize_qdq(fp32_onnx, folder / f"{target}-int8-float-se.onnx", recipe, calib,
                                            nodes_to_exclude=squeeze_excite_convs(fp32_onnx))
    return out


def passing_rule(fp32_top1: float):
    agreement = fidelity_rule(MIN_AGREEMENT)

    def rule(row: dict) -> str | None:
        drop = (fp32_top1 - row["top1"]) * 100
        # Tolerance: 2,000 images move top-1 in steps of 0.05 points, and a drop of exactly 0.50 passes
        # (0.9245 - 0.9195 is 0.50000000000000004 points in floating point).
        failed = drop > MAX_DROP_POINTS + 1e-6
        return agreement(row) or (f"top-1 drop {drop:.2f} points > {MAX_DROP_POINTS}" if failed else None)
    return rule


class Target:
    """One target's candidates for one model: compiled, evaluated, timed, chosen, compared with the peers."""

    def __init__(self, name: str, folder: Path):
        self.name, self.folder = name, folder / name
        self.profile = load_profile(name)
        self.backend = get_backend(self.profile.backend)
        self.rows, self.sessions, self.artifacts, self.skipped = [], {}, {}, []

    def add(self, name: str, tool: str, precision: str, artifact) -> None:
        self.artifacts[name] = artifact
        self.sessions[name] = self.backend.session(artifact, self.profile.threads)
        self.rows.append({"name": name, "tool": tool, "precision": precision, "runtime_options": artifact.runtime_options})

    def compile_edgekd(self, fp32_onnx: Path, int8: dict[str, Path]) -> None:
        has_bf16 = any(f in cpu_info()["flags"] for f in BF16_FLAGS)
        for name, precision, source in plan(self.profile, self.backend.float_precisions, fp32_onnx, int8):
            if precision == "bf16" and not has_bf16:  # OpenVINO would run it in f32: a second fp32 pass, no news
                self.skipped.append({"name": name, "why": "this CPU has no bf16 instructions (avx512_bf16, amx_bf16)"})
                continue
            self.add(name, "edgekd", precision, self.backend.compile(source, precision, self.profile, self.folder / name, {"name": "input"}))

    def compile_peers(self, fp32_onnx: Path, ort_default: Path, calib: np.ndarray) -> None:
        self.add("ort-default-int8", "onnxruntime-default", "int8",
                 self.backend.compile(ort_default, "int8", self.profile, self.folder / "ort-default", {"name": "input"}))
        if self.profile.backend == "openvino":
            artifact = int8_peers.nncf_default_openvino(fp32_onnx, self.folder / "nncf-default", calib,
                                                        self.artifacts["int8"].runtime_options)
        else:
            nncf_onnx = int8_peers.nncf_default_onnx(fp32_onnx, self.folder.parent / f"{self.name}-nncf.onnx", calib)
            artifact = self.backend.compile(nncf_onnx, "int8", self.profile, self.folder / "nncf-default", {"name": "input"})
        self.add("nncf-default-int8", "nncf-default", "int8", artifact)

    def evaluate(self, eval_x: np.ndarray, labels: np.ndarray) -> None:
        logits = {r["name"]: predict(self.sessions[r["name"]].run, eval_x, batch_size=BATCH) for r in self.rows}
        for row in self.rows:
            row.update(top1=topk(logits[row["name"]], labels), **fidelity(logits[row["name"]], logits["fp32"]))
            print(f"  {self.name} {row['name']}: top-1 {row['top1']:.4f}, agreement {row['top1_agreement']:.4f}", flush=True)

    def time(self, batch: np.ndarray, spec: LatencySpec) -> None:
        stats = measure_interleaved({n: s.run for n, s in self.sessions.items()}, batch, spec, desc=f"{self.name} latency")
        for row in self.rows:
            s = stats[row["name"]]
            row.update(p50_ms=s.p50_ms, p90_ms=s.p90_ms, cv=s.cv, round_p50_ms=s.round_p50_ms)

    def decide(self) -> dict:
        fp32 = next(r for r in self.rows if r["name"] == "fp32")
        rule = passing_rule(fp32["top1"])
        ours = [r for r in self.rows if r["tool"] == "edgekd"]
        chosen = ours[choose(ours, rule)]
        peers = [r for r in self.rows if r["tool"] != "edgekd"]
        for row in peers:
            row["verdict"] = rule(row) or "passes"
        passing = [r for r in peers if r["verdict"] == "passes"]
        fastest = min(passing, key=lambda r: r["p50_ms"]) if passing else None
        best_peer_top1 = max(r["top1"] for r in peers)
        return {
            "chosen": chosen["name"], "chosen_precision": chosen["precision"], "fp32_p50_ms": fp32["p50_ms"],
            "fp32_top1": fp32["top1"], "chosen_top1": chosen["top1"], "chosen_p50_ms": chosen["p50_ms"],
            "int8_shipped": chosen["precision"] == "int8", "chosen_drop_points": (fp32["top1"] - chosen["top1"]) * 100,
            "fastest_passing_peer": fastest and fastest["name"], "fastest_passing_peer_p50_ms": fastest and fastest["p50_ms"],
            "chosen_within_5pct_of_fastest_passing_peer": None if fastest is None else chosen["p50_ms"] <= fastest["p50_ms"] * (1 + CHOSEN_WITHIN),
            "best_peer_top1": best_peer_top1, "chosen_minus_best_peer_top1_points": (chosen["top1"] - best_peer_top1) * 100,
            "chosen_top1_within_margin_of_every_peer": (best_peer_top1 - chosen["top1"]) * 100 <= PEER_TOP1_MARGIN + 1e-9,
        }

    def confirm(self, decision: dict, batch: np.ndarray, spec: LatencySpec) -> dict:
        """Chosen, fastest passing peer and fp32 timed again in a fresh interleaved run: the decision was made on
        the first run, this shows whether it holds up to timing noise."""
        names = list(dict.fromkeys(n for n in (decision["chosen"], decision["fastest_passing_peer"], "fp32") if n))
        stats = measure_interleaved({n: self.sessions[n].run for n in names}, batch, spec, desc=f"{self.name} confirm")
        return {n: stats[n].p50_ms for n in names}

    def op_profiles(self, batch: np.ndarray) -> dict:
        """Per-op time of fp32 and edgekd's int8 candidates, in the target's runtime."""
        out = {}
        for row in self.rows:
            if row["tool"] != "edgekd" or row["precision"] == "bf16":
                continue
            artifact = self.artifacts[row["name"]]
            path = artifact.root / artifact.main
            out[row["name"]] = (int8_peers.openvino_op_profile(path, artifact.runtime_options["config"], batch)
                                if self.profile.backend == "openvino" else int8_peers.ort_op_profile(path, batch, self.profile.threads))
        return out


def run_model(name: str, args, eval_x, labels, calib, spec: LatencySpec, scratch: Path) -> tuple[list[dict], dict]:
    folder = scratch / name
    model = load_model(name, args.weights)
    fp32_onnx = export_onnx(model, eval_x[:2], folder / "fp32.onnx", ExportConfig(), {"model": name})
    check = parity(model, fp32_onnx, eval_x[:8], ExportConfig()).to_json()
    ort_default = int8_peers.ort_default(fp32_onnx, folder / "ort-default.onnx", calib)
    entries = []
    for target_name in TARGETS:
        started = time.perf_counter()
        target = Target(target_name, folder)
        target.compile_edgekd(fp32_onnx, edgekd_int8(name, target_name, fp32_onnx, calib, folder))
        target.compile_peers(fp32_onnx, ort_default, calib)
        target.evaluate(eval_x, labels)
        batch = np.ascontiguousarray(eval_x[:1])
        target.time(batch, spec)
        decision = target.decide()
        entry = {"model": name, "target": target_name, "backend": target.profile.backend,
                 "recipe": recipe_for_host(target.profile.quantization, True, target_name).recipe.model_dump(),
                 "threads": target.profile.threads, **decision, "candidates": target.rows, "skipped": target.skipped,
                 "confirmation_p50_ms": target.confirm(decision, np.ascontiguousarray(eval_x[1:2]), spec),
                 "op_profiles": target.op_profiles(batch)}
        entry["why"] = why(entry)
        entry["seconds"] = time.perf_counter() - started
        entries.append(entry)
        print(f"{name:<20} {target_name:<10} chosen {entry['chosen']:<14} " + "  ".join(
            f"{r['name']} {r['p50_ms']:.2f}ms/{r['top1']:.4f}/{r['top1_agreement']:.4f}" for r in target.rows), flush=True)
    return entries, check


def why(entry: dict) -> str:
    """The shipped candidate, and when it is not int8, the int8 candidates' reasons (the selection's verdicts)."""
    chosen = next(r for r in entry["candidates"] if r["name"] == entry["chosen"])
    text = f"shipped {chosen['name']}: {chosen['verdict']}"
    if chosen["precision"] != "int8":
        text += "; " + "; ".join(f"{r['name']}: {r['verdict']}" for r in entry["candidates"]
                                 if r["tool"] == "edgekd" and r["precision"] == "int8")
    return text


def machine() -> dict:
    info = cpu_info()
    int8 = [f for f in INT8_DOT_FLAGS if f in info["flags"]]
    bf16 = [f for f in BF16_FLAGS if f in info["flags"]]
    return {**info,
            "int8_instructions": ", ".join(int8) if int8 else ("AVX2 only (no VNNI, no AMX): u8 x s8 pairs summed in saturating "
                                                                "int16 (vpmaddubsw)" if "avx2" in info["flags"] else "none"),
            "bf16_instructions": ", ".join(bf16) if bf16 else "none (OpenVINO runs a bf16 hint in f32)",
            "int8_saturates_8bit_products": saturates_8bit_products()}


def report(models, parities, labels, about, args, spec, load_before, started, complete: bool) -> dict:
    return {"complete": complete, "smoke": args.smoke, "models": models, "export_parity": parities, "eval_samples": len(labels),
            "calibration_samples": CALIBRATION_SAMPLES, "min_top1_agreement": MIN_AGREEMENT, "max_top1_drop_points": MAX_DROP_POINTS,
            "chosen_within": CHOSEN_WITHIN, "peer_top1_margin_points": PEER_TOP1_MARGIN, "data": about, "weights": str(args.weights),
            "latency_spec": spec.__dict__, "machine": machine(), "library_versions": library_versions(),
            "seconds": time.perf_counter() - started,
            "load_average_1_5_15": {"before": list(load_before), "after": list(os.getloadavg())}}


def write_results(out: Path, data: dict) -> None:
    from targets_architectures_report import markdown  # benchmarks/helpers/

    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "targets_architectures.json", data)
    write_text_atomic(out / "targets_architectures.md", markdown(data))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--weights", type=Path, default=WEIGHTS, help="folder with the trained weights")
    parser.add_argument("--runs", type=int, default=60, help="timed runs per candidate, at least")
    parser.add_argument("--eval-samples", type=int, default=EVAL_SAMPLES, help="test images (fewer only for a smoke run)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    smoke.add_option(parser)
    args = parser.parse_args()
    rounds, min_seconds = 5, 2.0
    if args.smoke:  # the smallest model, few images and runs; numbers mean nothing
        args.models, args.runs, args.eval_samples, args.out = ["mobilenet_v3_small"], 3, 40, smoke.folder("targets_architectures")
        rounds, min_seconds = 1, 0.0
    warnings.simplefilter("ignore")  # the host-adaptation warning is recorded in each entry's recipe
    torch.set_num_threads(2)
    spec = LatencySpec(warmup_runs=5, warmup_seconds=0.5, runs=args.runs, min_seconds=min_seconds, rounds=rounds)
    load_before, started = os.getloadavg(), time.perf_counter()  # the machine is shared: say how busy it was
    eval_x, labels, calib, about = data(args.eval_samples)
    models, parities = [], {}
    with tempfile.TemporaryDirectory(prefix="edgekd-targets-bench-") as scratch:
        for name in args.models:
            # Written after each model too: a long run interrupted still leaves what it measured (marked partial).
            entries, parities[name] = run_model(name, args, eval_x, labels, calib, spec, Path(scratch))
            models += entries
            complete = name == args.models[-1]
            write_results(args.out, report(models, parities, labels, about, args, spec, load_before, started, complete))
    print(json.dumps({e["model"] + "/" + e["target"]: e["chosen"] for e in models}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
