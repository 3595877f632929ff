"""Fashion-MNIST: does distilling a 3-teacher ensemble beat training the same student from scratch?

Uses the pipeline's own code: the teachers stage (trained once, then reused from the run folder on
reruns), and the distill stage's distill_student() for every student, with distill.alpha 0 (scratch,
labels only) or the recipe's alpha (KD on the cached ensemble soft targets), same epochs, same seeds.

    flock /tmp/edgekd-heavy.lock python benchmarks/distill_fashion_mnist.py [--seeds 0 1 2]
    flock /tmp/edgekd-heavy.lock python benchmarks/distill_fashion_mnist.py --trials   # the recipe search, one seed
    python benchmarks/distill_fashion_mnist.py --smoke     # seconds, into a temporary folder: does it still run?

The whole training split (less the validation images the data stage holds out). The teachers take about half an
hour on two CPU cores; they are trained once into the run folder and reused by every later run (the issue allows
teachers from a cache), and the results give their training seconds beside the run's own.

--trials trains one seed of each variant in TRIALS (KD settings, schedule length) and of scratch, and reports
validation and test top-1: the recipe in the YAML is the one the validation split favoured (never the test split).
--trials NAME ... runs only those variants; rows of other variants from an earlier --trials run of the same
config, seed and machine are kept in the results beside them (each row says when it ran).

Writes benchmarks/results/distill_fashion_mnist.json and .md (--trials: distill_fashion_mnist_trials.json and .md).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import smoke  # noqa: E402  (benchmarks/smoke.py, beside this script)

from edgekd.core.environment import describe  # noqa: E402
from edgekd.core.fileio import write_json_atomic, write_text_atomic  # noqa: E402
from edgekd.pipeline.config import load_config  # noqa: E402
from edgekd.pipeline.context import RunContext  # noqa: E402
from edgekd.pipeline.manifest import RunManifest  # noqa: E402
from edgekd.pipeline.runner import run_pipeline  # noqa: E402
from edgekd.pipeline.stages.distill import distill_student  # noqa: E402

CONFIG = ROOT / "benchmarks" / "distill_fashion_mnist.yaml"
RESULTS = ROOT / "benchmarks" / "results"
RUN_DIR = ROOT / "runs" / "bench-distill-fashion-mnist"
TIMING_ROUNDS = 3
# Epochs per timed run. A full-split epoch of the student lasts ~15 s on two cores, so a 2-epoch window is long
# enough to outlast a scheduler hiccup (at 6,000 images an epoch lasted ~50 ms and needed 12-epoch windows).
TIMING_EPOCHS = 2
DKD_YAML = {"target_weight": 2.0, "nontarget_weight": 1.0}  # distill.dkd of distill_fashion_mnist.yaml
# The variants --trials compares on one seed: (name, distill overrides; "train" entries go to distill.train).
TRIALS: tuple[tuple[str, dict], ...] = (
    ("scratch", {"alpha": 0.0}),
    ("kd T4 alpha0.9", {"temperature": 4.0, "alpha": 0.9}),
    ("kd T4 alpha0.5", {"temperature": 4.0, "alpha": 0.5}),
    ("kd T2 alpha0.9", {"temperature": 2.0, "alpha": 0.9}),
    ("kd T4 alpha1.0", {"temperature": 4.0, "alpha": 1.0}),
    ("kd T8 alpha0.9", {"temperature": 8.0, "alpha": 0.9}),
    ("kd T4 alpha0.9 + 1 label epoch", {"temperature": 4.0, "alpha": 0.9, "finetune_epochs": 1}),
    # configs/fashion_mnist.yaml's feature hint: the student's 14x14 features predict the convnet w32 teacher's.
    ("kd T4 alpha0.9 + hint", {"temperature": 4.0, "alpha": 0.9,
                               "hints": [{"student": "features.4", "teacher": "features.4", "teacher_index": 0, "weight": 0.5}]}),
    # distill.logit_standardize (Sun et al. 2024): z-scored logits, so the student need not reach the teachers' scale;
    # z-scores span a few units, so the temperature that softens them is near 1-2, not 4.
    ("kd T1 alpha0.9 standardized", {"temperature": 1.0, "alpha": 0.9, "logit_standardize": True}),
    ("kd T2 alpha0.9 standardized", {"temperature": 2.0, "alpha": 0.9, "logit_standardize": True}),
    # distill.dkd (Zhao et al. 2022): the labelled class's share and the other classes' ranking weighted apart;
    # the paper's nontarget_weight 8 was for 100 classes, Fashion-MNIST has 10. alpha only has to be > 0.
    ("kd T4 dkd beta1", {"temperature": 4.0, "alpha": 0.9, "dkd": {"nontarget_weight": 1.0}}),
    ("kd T4 dkd beta2", {"temperature": 4.0, "alpha": 0.9, "dkd": {"nontarget_weight": 2.0}}),
    ("kd T4 dkd beta4", {"temperature": 4.0, "alpha": 0.9, "dkd": {"nontarget_weight": 4.0}}),
    ("kd T4 dkd beta8", {"temperature": 4.0, "alpha": 0.9, "dkd": {"nontarget_weight": 8.0}}),
    ("kd T2 dkd beta2", {"temperature": 2.0, "alpha": 0.9, "dkd": {"nontarget_weight": 2.0}}),
    ("kd T8 dkd beta2", {"temperature": 8.0, "alpha": 0.9, "dkd": {"nontarget_weight": 2.0}}),
    # The labelled class's share weighted apart too (DKD's alpha, target_weight here), and the ensemble's targets
    # from its mean logits (one softmax of the averaged logits: sharper than the mean of three softmaxes).
    ("kd T4 dkd tckd0.5 beta1", {"temperature": 4.0, "alpha": 0.9, "dkd": {"target_weight": 0.5, "nontarget_weight": 1.0}}),
    ("kd T4 dkd tckd2 beta1", {"temperature": 4.0, "alpha": 0.9, "dkd": DKD_YAML}),
    ("kd T4 dkd tckd4 beta1", {"temperature": 4.0, "alpha": 0.9, "dkd": {"target_weight": 4.0, "nontarget_weight": 1.0}}),
    ("kd T4 alpha0.9 logit_mean", {"temperature": 4.0, "alpha": 0.9, "ensemble": "logit_mean"}),
    ("kd T4 dkd beta1 logit_mean", {"temperature": 4.0, "alpha": 0.9, "dkd": {"nontarget_weight": 1.0}, "ensemble": "logit_mean"}),
    ("scratch 24 epochs", {"alpha": 0.0, "train": {"epochs": 24}}),
    ("kd T4 alpha0.9 24 epochs", {"temperature": 4.0, "alpha": 0.9, "train": {"epochs": 24}}),
    # Settings both modes share, so each is tried for scratch and for the YAML's KD (DKD, target weight 2) alike:
    # a 10K-parameter student may be held back by weight decay 5e-4 (scratch more than KD, whose soft targets
    # already regularise), and KD's smaller loss scale may want a larger step.
    ("scratch wd5e-5", {"alpha": 0.0, "train": {"weight_decay": 5e-5}}),
    ("kd T4 dkd tckd2 beta1 wd5e-5", {"temperature": 4.0, "alpha": 0.9, "dkd": DKD_YAML, "train": {"weight_decay": 5e-5}}),
    ("scratch lr0.1", {"alpha": 0.0, "train": {"lr": 0.1}}),
    ("kd T4 dkd tckd2 beta1 lr0.1", {"temperature": 4.0, "alpha": 0.9, "dkd": DKD_YAML, "train": {"lr": 0.1}}),
)
ENSEMBLE_TARGET = 0.933
# distill.train settings of one mode only, each the best of that mode on the validation split in --trials (seed 0,
# results/distill_fashion_mnist_trials.md, AVX-512 VNNI CPU, bf16 teachers): KD val 92.64% at lr 0.1 against 92.27%
# at the YAML's 0.05 (and 92.38% at weight decay 5e-5); scratch 92.20% at 0.05 against 92.03% at 0.1 (91.72% at
# 5e-5). Tuning each side on validation is the fair comparison; the test split never picks.
MODE_TRAIN: dict[str, dict] = {"scratch": {}, "kd": {"lr": 0.1}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # Five: one seed moves a 10k-parameter student's test top-1 by about 0.3 points, as much as the effect measured.
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--run-dir", type=Path, default=RUN_DIR)
    parser.add_argument("--config", type=Path, default=CONFIG, help="another recipe (e.g. a smaller smoke test)")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--trials", nargs="*", metavar="NAME", default=None,
                        help="one seed of each recipe variant (TRIALS; or only those named), val and test top-1")
    smoke.add_option(parser)
    args = parser.parse_args()
    rounds, epochs = TIMING_ROUNDS, TIMING_EPOCHS
    if args.smoke:
        work = smoke.folder("distill_fashion_mnist")
        args.config, args.run_dir, args.results = smoke.shrunk_config(args.config, work), work / "run", work / "results"
        args.seeds, rounds, epochs = args.seeds[:1], 1, 1
    started = time.perf_counter()
    config = load_config(args.config)
    messages: list[str] = []
    ctx = run_pipeline(config, args.config, args.run_dir, resume=True, only=["teachers"], log=messages.append)
    teachers = ctx.manifest.metrics("teachers")
    teachers["reused"] = any("skipped" in m for m in messages)  # trained by an earlier run of this benchmark
    if args.trials is not None:
        run_trials(ctx, teachers, args.seeds[0], args.results, started, args.trials)
        return
    runs = {mode: [train_student(ctx, mode, seed) for seed in args.seeds] for mode in ("scratch", "kd")}
    timing = time_epochs(ctx, rounds, epochs)
    result = summarize(teachers, runs, timing, ctx, time.perf_counter() - started, args.seeds, epochs)
    result["smoke"] = args.smoke  # a smoke run's numbers mean nothing
    write_json_atomic(args.results / "distill_fashion_mnist.json", result)
    write_text_atomic(args.results / "distill_fashion_mnist.md", markdown(result))
    print(markdown(result))


def distill_variant(distill, mode: str, seed: int, epochs: int | None = None, overrides: dict | None = None):
    """`distill` (the config's distill section) with the student seed and alpha of one variant, and any other
    distill settings in `overrides` (a "train" entry updates distill.train). Validated, not model_copy(update=...):
    a hint given as a dict must become a HintConfig, and a misspelt key must stop the run, not be ignored."""
    overrides = dict(overrides or {})
    fields = distill.model_dump()
    fields["train"].update({**({} if epochs is None else {"epochs": epochs}), **overrides.pop("train", {})})
    fields.update({"seed": seed, "alpha": 0.0 if mode == "scratch" else distill.alpha, **overrides})
    return type(distill).model_validate(fields)


def variant(ctx: RunContext, mode: str, seed: int, epochs: int | None = None, overrides: dict | None = None) -> RunContext:
    """The benchmark's config with one variant's distill section (distill_variant); the data split never changes."""
    cfg = ctx.cfg.model_copy(update={"distill": distill_variant(ctx.cfg.distill, mode, seed, epochs, overrides)})
    manifest = RunManifest(ctx.run_dir, ctx.manifest.data)
    manifest.read_only = True  # variants are recorded in the benchmark's results, not in the run's manifest
    return RunContext(cfg, ctx.config_path, ctx.run_dir, manifest)


def mode_settings(mode: str) -> dict:
    """The distill overrides of one mode in the benchmark's runs (MODE_TRAIN), not in --trials' variants."""
    return {"train": dict(MODE_TRAIN[mode])} if MODE_TRAIN[mode] else {}


def train_student(ctx: RunContext, mode: str, seed: int) -> dict:
    started = time.perf_counter()
    _, metrics = distill_student(variant(ctx, mode, seed, overrides=mode_settings(mode)),
                                 ctx.run_dir / "variants" / f"{mode}-seed{seed}")
    metrics["wall_seconds"] = round(time.perf_counter() - started, 2)
    print(f"{mode} seed {seed}: test top-1 {metrics['test_top1']:.4f} ({metrics['wall_seconds']:.0f} s)", flush=True)
    return metrics


def run_trials(ctx: RunContext, teachers: dict, seed: int, results: Path, started: float, names: list[str]) -> None:
    unknown = sorted(set(names) - {name for name, _ in TRIALS})
    if unknown:
        raise SystemExit(f"--trials: no variant named {unknown[0]!r}; choose from {[name for name, _ in TRIALS]}")
    rows = earlier_trials(results / "distill_fashion_mnist_trials.json", ctx, seed, keep=set(names))
    for index, (name, overrides) in enumerate(TRIALS):
        if names and name not in names:
            continue
        mode = "scratch" if overrides.get("alpha", ctx.cfg.distill.alpha) == 0 else "kd"
        began = time.perf_counter()
        _, metrics = distill_student(variant(ctx, mode, seed, overrides=trial_settings(overrides)),
                                     ctx.run_dir / "variants" / f"trial-{index}")
        rows.append(stamp_row({"name": name, "overrides": overrides, "val_top1": metrics["val_top1"],
                               "test_top1": metrics["test_top1"], "seconds": round(time.perf_counter() - began, 1),
                               "ran": time.strftime("%Y-%m-%dT%H:%M:%S")}, describe(), teachers["ensemble"]["top1"]))
        print(f"trial {name}: val {metrics['val_top1']:.4f} test {metrics['test_top1']:.4f}", flush=True)
    order = [name for name, _ in TRIALS]
    rows.sort(key=lambda row: order.index(row["name"]))
    result = {"benchmark": "distill_fashion_mnist --trials", "config": _shown(ctx.config_path), "seed": seed,
              "data": {"train_images": len(ctx.dataset.train), "val_images": len(ctx.dataset.val)},
              "student": f"{ctx.cfg.student.arch} w{ctx.cfg.student.width}", "ensemble_top1": teachers["ensemble"]["top1"],
              "trials": rows, "total_seconds": round(time.perf_counter() - started, 1), "environment": describe()}
    write_json_atomic(results / "distill_fashion_mnist_trials.json", result)
    lines = ["# Distillation on Fashion-MNIST: recipe trials (one seed)", "",
             f"Generated by `benchmarks/distill_fashion_mnist.py --trials` from `{result['config']}` ({result['data']['train_images']} "
             f"training images; val {result['data']['val_images']}); student {result['student']}; ensemble "
             f"{100 * result['ensemble_top1']:.2f}% (this run's teachers). The recipe is picked on validation top-1; "
             "compare rows of one ensemble only (teachers retrained on another CPU are other teachers).", "",
             "| variant | val top-1 | test top-1 | seconds | ensemble | CPU flags | ran |", "|---|---:|---:|---:|---:|---|---|"]
    lines += [f"| {r['name']} | {100 * r['val_top1']:.2f}% | {100 * r['test_top1']:.2f}% | {r['seconds']} | "
              f"{_percent(r.get('ensemble_top1'))} | {', '.join(r.get('cpu_flags') or []) or '-'} | {r.get('ran', '-')} |"
              for r in rows]
    lines += ["", f"Total {result['total_seconds']} s (this invocation; a KD row's seconds include the teacher-output cache "
              "fill when it was the first KD run). " + smoke.machine_line(result["environment"])]
    write_text_atomic(results / "distill_fashion_mnist_trials.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def trial_settings(overrides: dict) -> dict:
    """A trial's distill overrides on top of plain Hinton KD: the YAML's own soft loss (distill.dkd) is itself one
    of the variants, so a trial uses it only where it names it."""
    return {"dkd": None, **overrides}


def earlier_trials(path: Path, ctx: RunContext, seed: int, keep: set[str]) -> list[dict]:
    """The rows of an earlier --trials run to keep beside a partial one: same config and seed, variants still in
    TRIALS and not rerun now (`keep`: the names rerun; empty: all, so nothing earlier is kept). Each row keeps the
    CPU flags and ensemble it ran with (stamp_row): teachers retrained on another machine are other teachers, so
    only rows of one ensemble compare."""
    if not keep or not path.exists():
        return []
    earlier = json.loads(path.read_text(encoding="utf-8"))
    if (earlier.get("config"), earlier.get("seed")) != (_shown(ctx.config_path), seed):
        return []
    names = {name for name, _ in TRIALS}
    return [stamp_row(row, earlier.get("environment", {}), earlier.get("ensemble_top1"))
            for row in earlier.get("trials", []) if row["name"] in names and row["name"] not in keep]


def stamp_row(row: dict, environment: dict, ensemble_top1: float | None) -> dict:
    """`row` with the CPU flags and ensemble top-1 of the run it came from, unless it already says them."""
    flags = environment.get("cpu", {}).get("flags", [])
    return {"cpu_flags": flags, "ensemble_top1": ensemble_top1, **row}


def time_epochs(ctx: RunContext, rounds: int = TIMING_ROUNDS, epochs: int = TIMING_EPOCHS) -> dict:
    """Runs of the student alone and of KD on the cached ensemble, interleaved (the order alternates each round)
    so both see the same machine load. Per run: the mean epoch over the whole window (total training seconds /
    epochs); per round: the KD / alone ratio of its two adjacent runs. Summaries: medians over rounds."""
    seconds: dict[str, list[float]] = {"scratch": [], "kd": []}
    for round_index in range(rounds):
        modes = ("scratch", "kd") if round_index % 2 == 0 else ("kd", "scratch")
        for mode in modes:
            folder = ctx.run_dir / "variants" / f"timing-{mode}"
            _, metrics = distill_student(variant(ctx, mode, 100 + round_index, epochs=epochs, overrides=mode_settings(mode)),
                                         folder)
            phase = metrics["phases"]["scratch" if mode == "scratch" else "distill"]
            seconds[mode].append(round(phase["seconds"] / phase["epochs"], 4))
    timing = {mode: {"median": round(statistics.median(v), 4), "min": min(v), "rounds": v} for mode, v in seconds.items()}
    timing["paired_ratios"] = [_ratio(k, s) for k, s in zip(seconds["kd"], seconds["scratch"], strict=True)]
    return timing


def _ratio(numerator: float, denominator: float) -> float | None:
    """numerator / denominator to 3 decimals; None when the denominator rounded to 0 s (the --smoke sizes on a quiet
    machine train an epoch faster than the recorded precision): there is no ratio to take, and its check fails."""
    return round(numerator / denominator, 3) if denominator > 0 else None


def _at_most(ratio: float | None, limit: float) -> bool:
    return ratio is not None and ratio <= limit


def _spread(values: list[float]) -> dict:
    return {"mean": round(statistics.mean(values), 4), "std": round(statistics.stdev(values), 4) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values)}


def paired_differences(kd: list[float], scratch: list[float]) -> dict:
    """KD minus scratch of each seed, in points, and the standard error of their mean: how far the headline margin
    could move with other seeds."""
    points = [round(100 * (k - s), 2) for k, s in zip(kd, scratch, strict=True)]
    error = statistics.stdev(points) / len(points) ** 0.5 if len(points) > 1 else None
    return {"points": points, "standard_error": round(error, 3) if error is not None else None}


def summarize(teachers: dict, runs: dict, timing: dict, ctx: RunContext, total: float, seeds: list[int],
              timing_epochs: int = TIMING_EPOCHS) -> dict:
    scratch = [r["test_top1"] for r in runs["scratch"]]
    kd = [r["test_top1"] for r in runs["kd"]]
    ensemble = teachers["ensemble"]["top1"]
    best_teacher = max(t["top1"] for t in teachers["teachers"])
    teacher_train_seconds = sum(t.get("seconds", 0.0) for t in teachers["teachers"])
    gap = ensemble - statistics.mean(scratch)
    caches = [r["teacher_cache"] for r in runs["kd"]]
    student_params = runs["kd"][0]["params"]
    ratio = _ratio(timing["kd"]["median"], timing["scratch"]["median"])
    # On a shared machine rounds are bimodal (quiet or loaded); the fastest rounds show the undisturbed cost.
    fastest_ratio = _ratio(timing["kd"]["min"], timing["scratch"]["min"])
    paired = [r for r in timing["paired_ratios"] if r is not None]
    paired_ratio = statistics.median(paired) if paired else None  # each round's two runs met the same load
    total_with_teachers = total + (teacher_train_seconds if teachers["reused"] else 0.0)
    return {
        "benchmark": "distill_fashion_mnist", "config": _shown(ctx.config_path), "seeds": seeds,
        "data": {"source": "fashion-mnist", "train_images": len(ctx.dataset.train), "test_images": len(ctx.dataset.test)},
        "teachers": [{"name": f"{t['name']} ({t['arch']} w{t['width']})", "params": t["params"], "top1": t["top1"],
                      "epoch_seconds": t.get("epoch_seconds")}  # a paused process inflates seconds, not an epoch's
                     for t in teachers["teachers"]],
        "ensemble": {"params": teachers["ensemble"]["params"], "top1": ensemble, "mode": ctx.cfg.distill.ensemble},
        "student": {"params": student_params, "arch": f"{ctx.cfg.student.arch} w{ctx.cfg.student.width}",
                    "fraction_of_ensemble_params": round(student_params / teachers["ensemble"]["params"], 4)},
        "recipe": {"epochs": ctx.cfg.distill.train.epochs, "temperature": ctx.cfg.distill.temperature,
                   "alpha_kd": ctx.cfg.distill.alpha, "alpha_scratch": 0.0, "batch_size": ctx.cfg.distill.train.batch_size,
                   "dkd": ctx.cfg.distill.dkd.model_dump() if ctx.cfg.distill.dkd is not None else None,
                   "lr": ctx.cfg.distill.train.lr, "weight_decay": ctx.cfg.distill.train.weight_decay,
                   "train_per_mode": MODE_TRAIN},
        "scratch": {"top1": scratch, **_spread(scratch)},
        "kd": {"top1": kd, **_spread(kd)},
        "kd_minus_scratch_points": round(100 * (statistics.mean(kd) - statistics.mean(scratch)), 3),
        "kd_minus_scratch_per_seed": paired_differences(kd, scratch),
        "gap_recovered": round((statistics.mean(kd) - statistics.mean(scratch)) / gap, 4) if gap > 0 else None,
        "epoch_seconds": {"student_alone": timing["scratch"]["median"], "kd_cached": timing["kd"]["median"],
                          "kd_over_student_alone": ratio, "rounds": {k: timing[k]["rounds"] for k in ("scratch", "kd")},
                          "fastest": {k: timing[k]["min"] for k in ("scratch", "kd")},
                          "kd_over_student_alone_fastest": fastest_ratio,
                          "paired_ratios": timing["paired_ratios"], "kd_over_student_alone_paired_median": paired_ratio,
                          "epochs_per_timed_run": timing_epochs},
        "phase_seconds": {
            "teachers_training": round(teacher_train_seconds, 2),
            "teachers_reused_from_earlier_run": teachers["reused"],
            "teacher_cache_fill": caches[0]["teacher_forward_seconds_computed"],
            "scratch_students": round(sum(r["wall_seconds"] for r in runs["scratch"]), 2),
            "kd_students": round(sum(r["wall_seconds"] for r in runs["kd"]), 2),
        },
        # From the interleaved timing rounds: the accuracy runs go all-scratch then all-KD, so load drift biases them.
        "images_per_second": {"scratch": round(len(ctx.dataset.train) / timing["scratch"]["median"], 1),
                              "kd": round(len(ctx.dataset.train) / timing["kd"]["median"], 1),
                              "teachers": [t.get("images_per_second") for t in teachers["teachers"]]},
        "teacher_cache": {"hits": sum(c["hits"] for c in caches), "misses": sum(c["misses"] for c in caches),
                          "teacher_forward_seconds_saved": round(sum(c["teacher_forward_seconds_saved"] for c in caches), 2)},
        "checks": {
            "ensemble_beats_best_member": ensemble > best_teacher,
            "ensemble_at_least_93.3": ensemble >= ENSEMBLE_TARGET,
            "kd_beats_scratch_by_0.5_points": statistics.mean(kd) - statistics.mean(scratch) >= 0.005,
            "student_at_most_a_tenth_of_ensemble": student_params * 10 <= teachers["ensemble"]["params"],
            "kd_epoch_at_most_1.3x_student_alone": _at_most(ratio, 1.3),
            "kd_epoch_at_most_1.3x_student_alone_fastest_rounds": _at_most(fastest_ratio, 1.3),
            "kd_epoch_at_most_1.3x_student_alone_paired_rounds": _at_most(paired_ratio, 1.3),
            # The issue allows teachers from a cache: the run's own time counts; with their training it is reported.
            "under_60_minutes": total <= 3600,
            "under_60_minutes_including_teacher_training": total_with_teachers <= 3600,
        },
        "total_seconds": round(total, 1),
        "total_seconds_including_teacher_training": round(total_with_teachers, 1),
        "environment": describe(),
    }


def _shown(path: Path) -> str:
    path = Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def markdown(r: dict) -> str:
    pct = lambda v: f"{100 * v:.2f}%"  # noqa: E731
    lines = ["# Distillation on Fashion-MNIST", "",
             f"Generated by `benchmarks/distill_fashion_mnist.py` from `{r['config']}` "
             f"({r['data']['train_images']} training images, {r['data']['test_images']} test images, seeds {r['seeds']}).", "",
             "| model | params | test top-1 |", "|---|---:|---:|"]
    lines += [f"| teacher {t['name']} | {t['params']:,} | {pct(t['top1'])} |" for t in r["teachers"]]
    lines += [f"| ensemble ({r['ensemble']['mode']}) | {r['ensemble']['params']:,} | {pct(r['ensemble']['top1'])} |",
              f"| student from scratch ({r['student']['arch']}) | {r['student']['params']:,} | "
              f"{pct(r['scratch']['mean'])} ± {100 * r['scratch']['std']:.2f} |",
              f"| student with KD | {r['student']['params']:,} | {pct(r['kd']['mean'])} ± {100 * r['kd']['std']:.2f} |", "",
              f"- KD minus scratch: **{r['kd_minus_scratch_points']:+.2f} points**; gap recovered "
              f"(KD - scratch) / (ensemble - scratch): **{r['gap_recovered']}**",
              f"- per seed, scratch: {[pct(v) for v in r['scratch']['top1']]}; KD: {[pct(v) for v in r['kd']['top1']]}; "
              f"KD - scratch: {r['kd_minus_scratch_per_seed']['points']} points, standard error of their mean "
              f"{r['kd_minus_scratch_per_seed']['standard_error']}",
              f"- recipe: {r['recipe']}",
              f"- student / ensemble parameters: {r['student']['fraction_of_ensemble_params']}",
              f"- epoch seconds (mean epoch of a {r['epoch_seconds']['epochs_per_timed_run']}-epoch run, median of "
              f"{len(r['epoch_seconds']['rounds']['kd'])} interleaved rounds): student alone "
              f"{r['epoch_seconds']['student_alone']} s, KD with the cached 3-teacher ensemble {r['epoch_seconds']['kd_cached']} s "
              f"(x{r['epoch_seconds']['kd_over_student_alone']}); KD / alone within each round, median "
              f"x{r['epoch_seconds']['kd_over_student_alone_paired_median']} (every round: {r['epoch_seconds']['paired_ratios']}); "
              f"fastest rounds {r['epoch_seconds']['fastest']} (x{r['epoch_seconds']['kd_over_student_alone_fastest']}); "
              f"every round: {r['epoch_seconds']['rounds']}",
              f"- teacher cache: {r['teacher_cache']['hits']} hits, {r['teacher_cache']['misses']} misses; teacher forward "
              f"time saved: {r['teacher_cache']['teacher_forward_seconds_saved']} s",
              f"- seconds per phase: {r['phase_seconds']}",
              f"- images/second: {r['images_per_second']}",
              f"- total: {r['total_seconds']} s this run; {r['total_seconds_including_teacher_training']} s with the teachers' "
              f"training (reused from an earlier run: {r['phase_seconds']['teachers_reused_from_earlier_run']})", "", "## Checks", ""]
    lines += [f"- {'PASS' if ok else 'FAIL'} {name}" for name, ok in r["checks"].items()]
    lines += ["", smoke.machine_line(r["environment"])]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
