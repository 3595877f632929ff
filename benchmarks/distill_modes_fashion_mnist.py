"""Online (deep mutual learning) and data-free distillation on Fashion-MNIST.

Writes benchmarks/results/distill_modes_fashion_mnist.json and .md:
- online: each peer trained alone vs trained mutually (same data, epochs and recipe), per seed;
- data_free: the teacher, a student trained on real data, the data-free student (no real training
  image), and its int8 version calibrated on the synthetic set only; time per phase.

The data-free and real-data students run through `edgekd run` itself (benchmarks/.work/), so the
numbers are the pipeline's. Rerun: `python benchmarks/distill_modes_fashion_mnist.py` (about 15 min
on 2 cores; the pipeline runs are reused across reruns via --resume). `--smoke`: seconds, in a temporary folder.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import smoke  # noqa: E402  (benchmarks/smoke.py, beside this script)

from edgekd import api  # noqa: E402
from edgekd.core.fileio import write_json_atomic, write_text_atomic  # noqa: E402
from edgekd.core.metrics import topk  # noqa: E402
from edgekd.data import load_dataset  # noqa: E402
from edgekd.data.config import DataConfig  # noqa: E402
from edgekd.train.config import ModelConfig, OnlineConfig, TrainConfig  # noqa: E402
from edgekd.train.distill.online import PeerGroup, mutual_loss_fn  # noqa: E402
from edgekd.train.models import build_model, count_parameters  # noqa: E402
from edgekd.train.trainer import cross_entropy_loss, predict_logits, train  # noqa: E402

WORK = HERE / ".work"
RESULTS = HERE / "results"

PEERS = [ModelConfig(arch="convnet", width=8), ModelConfig(arch="resnet", width=8)]
# Mutual learning regularises: it helps when the peers overfit, i.e. with limited data and long training.
# Measured (2 seeds): on 10k images x 8 epochs at T=1 the peers underfit and mutual learning cost the convnet
# 0.9 points; on 2k x 40 epochs it gained +0.15 (convnet) / +1.6 (resnet) at T=1 and +0.9 / +2.2 at T=3.
ONLINE_TRAIN = TrainConfig(epochs=40, lr=0.05, batch_size=128)
ONLINE_SUBSET = 2_000  # both arms use the same subset
ONLINE_TEMPERATURE = OnlineConfig().temperature

TEACHER = {"arch": "convnet", "width": 16, "train": {"epochs": 6, "lr": 0.05, "batch_size": 128}}
STUDENT = {"arch": "convnet", "width": 8}
DATA_FREE: dict = {}  # DataFreeConfig's defaults, which were chosen with this benchmark


@dataclass(frozen=True)
class Plan:
    """Sizes and folders of one run of the benchmark: the published one, or --smoke's."""

    work: Path = WORK
    results: Path = RESULTS
    online_train: TrainConfig = field(default_factory=lambda: ONLINE_TRAIN)
    online_subset: int = ONLINE_SUBSET
    shrink: bool = False  # the pipeline runs' configs go through smoke.shrink


def smoke_plan() -> Plan:
    work = smoke.folder("distill_modes_fashion_mnist")
    return Plan(work=work / "work", results=work / "results", online_subset=200,
                online_train=ONLINE_TRAIN.model_copy(update=smoke.TRAIN), shrink=True)


def online(seeds: list[int], plan: Plan) -> dict:
    data = load_dataset(DataConfig(source="fashion-mnist", train_limit=plan.online_subset,
                                   test_limit=smoke.DATA["test_limit"] if plan.shrink else None), seed=0)
    x, y = torch.from_numpy(data.train.x), torch.from_numpy(data.train.y)
    peers = [{"name": f"{p.arch}-w{p.width}", "alone_top1": [], "mutual_top1": [], "alone_seconds": [], "params": None} for p in PEERS]
    mutual_seconds = []
    for seed in seeds:
        for entry, spec in zip(peers, PEERS):
            torch.manual_seed(seed)
            model = build_model(spec, data.input_shape, data.num_classes)
            entry["params"] = count_parameters(model)
            result = train(model, x, y, plan.online_train, cross_entropy_loss(), seed=seed, desc=f"alone {entry['name']} s{seed}")
            entry["alone_top1"].append(topk(predict_logits(model, data.test.x), data.test.y))
            entry["alone_seconds"].append(round(result.seconds, 1))
        torch.manual_seed(seed)
        models = []
        for spec in PEERS:  # same initial weights as the alone runs: same seed, same order of construction
            torch.manual_seed(seed)
            models.append(build_model(spec, data.input_shape, data.num_classes))
        result = train(PeerGroup(models), x, y, plan.online_train, mutual_loss_fn(ONLINE_TEMPERATURE), seed=seed, desc=f"mutual s{seed}")
        mutual_seconds.append(round(result.seconds, 1))
        for entry, model in zip(peers, models):
            entry["mutual_top1"].append(topk(predict_logits(model, data.test.x), data.test.y))
    for entry in peers:
        entry["gain_points"] = round(100 * (np.mean(entry["mutual_top1"]) - np.mean(entry["alone_top1"])), 3)
    return {"seeds": seeds, "train_samples": len(y), "epochs": plan.online_train.epochs, "temperature": ONLINE_TEMPERATURE, "peers": peers,
            "mutual_seconds": mutual_seconds}


def _pipeline(name: str, distill: dict, calibration: str, teacher: dict, plan: Plan) -> dict:
    config = {"name": name, "seed": 0, "data": {"source": "fashion-mnist"}, "teachers": [teacher], "student": STUDENT,
              "distill": distill, "quantize": {"calibration": calibration}, "targets": ["x86-cpu"],
              "bench": {"eval_samples": 10_000, "runs": 20, "min_seconds": 0.2},
              "gate": {"reference": "student_fp32", "max_drop": 1.0}}
    config = smoke.shrink(config) if plan.shrink else config
    path = plan.work / f"{name}.yaml"
    plan.work.mkdir(parents=True, exist_ok=True)
    import yaml

    path.write_text(yaml.safe_dump(config))
    run_dir = plan.work / "runs" / name
    started = time.perf_counter()
    ctx = api.run(path, out=run_dir, resume=True, force=False)
    seconds = round(time.perf_counter() - started, 1)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    report = json.loads((run_dir / "report.json").read_text())
    int8 = next(r for r in report["rows"] if r["precision"] == "int8")
    return {"manifest": manifest, "report": report, "int8_top1": int8["top1"], "run_dir": str(ctx.run_dir), "seconds": seconds}


def data_free(plan: Plan) -> dict:
    real = _pipeline("fmnist-real-data", {"mode": "offline", "train": {"epochs": 6, "lr": 0.05, "batch_size": 128}}, "train-1024",
                     TEACHER, plan)
    # The data-free run gets the teacher as a checkpoint, as a data owner would hand it over (and it is
    # not trained twice); its generator and student see no training image.
    checkpoint = Path(real["run_dir"]) / "01-teachers" / "teacher-0.pt"
    teacher = {"arch": TEACHER["arch"], "width": TEACHER["width"], "checkpoint": str(checkpoint)}
    free = _pipeline("fmnist-data-free", {"mode": "data_free", "data_free": DATA_FREE}, "synthetic-512", teacher, plan)
    stages = free["manifest"]["stages"]
    teacher = stages["teachers"]["metrics"]["teachers"][0]
    distill = stages["distill"]["metrics"]
    student_top1 = free["report"]["references"]["student_fp32"]["top1"]
    return {
        "teacher_top1": teacher["top1"], "teacher_params": teacher["params"],
        "real_data_student_top1": real["report"]["references"]["student_fp32"]["top1"],
        "student_top1": student_top1, "student_params": distill["params"],
        "int8_top1": free["int8_top1"], "int8_extra_drop_points": round(100 * (student_top1 - free["int8_top1"]), 3),
        "int8_calibration": stages["quantize"]["metrics"]["calibration"]["recipe"]["source"],
        "synthesis_steps": distill["steps"], "bn_loss_first": distill["bn_loss"]["first"], "bn_loss_last": distill["bn_loss"]["last"],
        "synthetic_class_counts": distill["synthetic"]["class_counts"],
        "data_free_settings": stages["distill"]["metrics"].get("settings"),
        "seconds": {"teacher_train": real["manifest"]["stages"]["teachers"]["seconds"],
                    "data_free_distill": stages["distill"]["seconds"],
                    "real_data_distill": real["manifest"]["stages"]["distill"]["seconds"],
                    "quantize": stages["quantize"]["seconds"],
                    "real_data_pipeline": real["seconds"], "data_free_pipeline": free["seconds"]},
        "synthetic_grid": str(Path(free["run_dir"]) / "02-distill" / "synthetic.png"),
    }


def markdown(result: dict) -> str:
    on, df = result["online"], result["data_free"]
    lines = ["# Online and data-free distillation on Fashion-MNIST", "",
             f"Generated by `benchmarks/distill_modes_fashion_mnist.py` in {result['total_seconds']:.0f} s. Accuracies are test-set top-1.", "",
             f"## Online (deep mutual learning): {on['train_samples']} training images, {on['epochs']} epochs, "
             f"temperature {on['temperature']}, seeds {on['seeds']}", "",
             "| peer | params | alone top-1 (per seed) | mutual top-1 (per seed) | gain (points) |", "|---|---|---|---|---|"]
    for p in on["peers"]:
        fmt = lambda v: ", ".join(f"{x * 100:.2f}" for x in v)  # noqa: E731
        lines.append(f"| {p['name']} | {p['params']} | {fmt(p['alone_top1'])} | {fmt(p['mutual_top1'])} | {p['gain_points']:+.2f} |")
    lines += ["", "## Data-free: the student never sees a real training image", "",
              "| model | top-1 |", "|---|---|",
              f"| teacher ({df['teacher_params']} params, real data) | {df['teacher_top1'] * 100:.2f} |",
              f"| student trained on real data (KD) | {df['real_data_student_top1'] * 100:.2f} |",
              f"| data-free student ({df['student_params']} params, {df['synthesis_steps']} steps) | {df['student_top1'] * 100:.2f} |",
              f"| data-free student, int8, calibrated on synthetic data | {df['int8_top1'] * 100:.2f} |", "",
              f"Batch-norm matching loss: {df['bn_loss_first']:.3f} at the start, {df['bn_loss_last']:.3f} at the end. "
              f"int8 loses {df['int8_extra_drop_points']:.2f} points (calibration: {df['int8_calibration']} samples).", "",
              f"Time (s): online phase {on['seconds']:.0f} (mutual runs {on['mutual_seconds']}); data-free phase {json.dumps(df['seconds'])}.", "",
              f"Data-free settings: {json.dumps(df['data_free_settings'])}."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    smoke.add_option(parser)
    args = parser.parse_args()
    plan = smoke_plan() if args.smoke else Plan()
    seeds = args.seeds[:1] if args.smoke else args.seeds
    started = time.perf_counter()
    result = {"online": online(seeds, plan)}
    result["online"]["seconds"] = round(time.perf_counter() - started, 1)
    result["data_free"] = data_free(plan)
    result["total_seconds"] = round(time.perf_counter() - started, 1)
    result["smoke"] = args.smoke  # a smoke run's numbers mean nothing
    plan.results.mkdir(parents=True, exist_ok=True)
    write_json_atomic(plan.results / "distill_modes_fashion_mnist.json", result)
    write_text_atomic(plan.results / "distill_modes_fashion_mnist.md", markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
