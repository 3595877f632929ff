"""Fashion-MNIST recipe sweep on a GPU: which student size, schedule and augmentation give KD its biggest margin over
scratch, 3 seeds each, with benchmarks/distill_fashion_mnist.py's teachers (issue 13, part 2: "try what the field
uses to close more of the gap and report which helped").

On two CPU cores one 12-epoch student takes 2.5-3.5 minutes and replayed augmentation adds about 100 s of teacher
forward per epoch (results/distill_fashion_mnist.md: 730 s for 5 scratch students; 5,999 s of teacher forward
saved over 5 KD runs of 12 epochs), so a grid of 54 runs does not fit; on one GPU the runs go 8 at a time (processes on one device).

    python benchmarks/distill_fashion_mnist_gpu_sweep.py [--workers 8]      # on a GPU machine
    python benchmarks/distill_fashion_mnist_gpu_sweep.py --summarize --machine "..."
    python benchmarks/distill_fashion_mnist_gpu_sweep.py --smoke            # seconds, on the CPU: does it still run?

The teachers come from distill_fashion_mnist.py's run folder (trained there first when missing, as that script does).

A run writes one JSON line per student as it finishes (a run stopped by a time limit keeps what finished, and the
next run trains only the students with no line yet);
--summarize pairs KD and scratch rows of the same seed and writes the .json and .md beside the lines. Augmented
variants augment scratch too (same draws), so the margin compares like with like. Each worker trains in its own
copy of the teachers' run folder (the teachers are reused, never retrained: see `teachers_reused` in each line).
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

import torch.multiprocessing as mp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import smoke  # noqa: E402  (benchmarks/smoke.py, beside this script)
from distill_fashion_mnist import CONFIG, RUN_DIR, distill_variant  # noqa: E402

from edgekd.core.environment import describe  # noqa: E402
from edgekd.core.fileio import write_json_atomic, write_text_atomic  # noqa: E402

LINES = ROOT / "benchmarks" / "results" / "distill_fashion_mnist_gpu_sweep.jsonl"
AUG = {"shift": 2, "flip": True, "teachers": "replay"}
GRID = {  # name: (student width, distill overrides, modes)
    "w6": (6, {}, ["scratch", "kd"]),
    "w6 aug": (6, {"augment": AUG}, ["scratch", "kd"]),
    "w6 aug 24ep": (6, {"augment": AUG, "train": {"epochs": 24}}, ["scratch", "kd"]),
    "w6 24ep": (6, {"train": {"epochs": 24}}, ["scratch"]),
    "w4": (4, {}, ["scratch", "kd"]),
    "w4 aug": (4, {"augment": AUG}, ["scratch", "kd"]),
    "w8": (8, {}, ["scratch", "kd"]),
    "w6 6ep": (6, {"train": {"epochs": 6}}, ["scratch", "kd"]),
    "w6 aug shift1": (6, {"augment": {**AUG, "shift": 1}}, ["scratch", "kd"]),
    "w6 aug T8": (6, {"augment": AUG, "temperature": 8.0}, ["kd"]),
}
SEEDS = (0, 1, 2)


def job(args: tuple[str, str, int, str, str, str, str]) -> str:
    """One student in its own copy of the teachers' run folder (`work`/tag), one JSON line appended to `out`."""
    name, mode, seed, out, config, teachers_dir, work = args
    from edgekd.pipeline.config import load_config
    from edgekd.pipeline.context import RunContext
    from edgekd.pipeline.manifest import RunManifest
    from edgekd.pipeline.runner import run_pipeline
    from edgekd.pipeline.stages.distill import distill_student

    width, overrides, _ = GRID[name]
    tag = f"{name}-{mode}-{seed}".replace(" ", "_")
    run_dir = Path(work) / tag
    run_dir.mkdir(parents=True, exist_ok=True)
    shutil.copytree(Path(teachers_dir) / "01-teachers", run_dir / "01-teachers", dirs_exist_ok=True)
    shutil.copy(Path(teachers_dir) / "manifest.json", run_dir / "manifest.json")
    messages: list[str] = []
    ctx = run_pipeline(load_config(Path(config)), Path(config), run_dir, resume=True, only=["teachers"], log=messages.append)
    distill = distill_variant(ctx.cfg.distill, mode, seed, None, {**overrides, "cache_dir": str(Path(work) / "cache" / tag)})
    cfg = ctx.cfg.model_copy(update={"distill": distill, "student": ctx.cfg.student.model_copy(update={"width": width})})
    manifest = RunManifest(ctx.run_dir, ctx.manifest.data)
    manifest.read_only = True
    began = time.perf_counter()
    _, m = distill_student(RunContext(cfg, ctx.config_path, ctx.run_dir, manifest), run_dir / "variant")
    row = {"name": name, "mode": mode, "seed": seed, "val": m["val_top1"], "test": m["test_top1"], "params": m["params"],
           "seconds": round(time.perf_counter() - began, 1), "teachers_reused": any("skipped" in s for s in messages),
           "ensemble": ctx.manifest.metrics("teachers")["ensemble"]["top1"], "phases": m["phases"]}
    with open(out, "a") as f:
        f.write(json.dumps(row) + "\n")
    return tag


def summarize(lines: Path, planned: int) -> dict:
    """Per variant: mean val/test top-1 of each mode and the mean KD - scratch margin over the seeds both finished."""
    rows = [json.loads(line) for line in lines.read_text(encoding="utf-8").splitlines() if line.strip()]
    variants = []
    for name in GRID:
        by_mode = {mode: {r["seed"]: r for r in rows if r["name"] == name and r["mode"] == mode} for mode in ("scratch", "kd")}
        entry = {"name": name, "params": next((r["params"] for r in rows if r["name"] == name), None)}
        for mode, seeds in by_mode.items():
            if seeds:
                entry[mode] = {"seeds": sorted(seeds), "val": _mean(r["val"] for r in seeds.values()),
                               "test": _mean(r["test"] for r in seeds.values())}
        paired = sorted(set(by_mode["scratch"]) & set(by_mode["kd"]))
        if paired:
            entry["kd_minus_scratch"] = {"seeds": paired, **{split: _mean(by_mode["kd"][s][split] - by_mode["scratch"][s][split] for s in paired)
                                                           for split in ("val", "test")}}
        variants.append(entry)
    return {"benchmark": "distill_fashion_mnist_gpu_sweep", "runs": len(rows), "planned_runs": planned,
            "ensemble_top1": rows[0]["ensemble"] if rows else None, "variants": variants}


def _mean(values) -> float:
    return round(statistics.mean(values), 4)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def _cell(entry: dict | None, fmt) -> str:
    """val / test (seeds) of one mode or of the margin, `-` when no run of it finished."""
    if not entry:
        return "-"
    return f"{fmt(entry['val'])} / {fmt(entry['test'])} ({','.join(map(str, entry['seeds']))})"


def markdown(summary: dict, machine: str) -> str:
    lines = ["# Distillation on Fashion-MNIST: recipe sweep on a GPU", "",
             f"Generated by `benchmarks/distill_fashion_mnist_gpu_sweep.py` from the JSON lines beside it "
             f"({summary['runs']} of {summary['planned_runs']} planned runs finished); teachers of "
             f"distill_fashion_mnist.py, ensemble {_pct(summary['ensemble_top1'])}. Means over the seeds listed; the margin "
             "pairs KD and scratch of the same seed. aug = shift 2 + flip with replayed soft targets (scratch sees the same draws).", "",
             "| variant | params | scratch val / test (seeds) | KD val / test (seeds) | KD - scratch val / test (points, paired seeds) |",
             "|---|---:|---|---|---|"]
    for v in summary["variants"]:
        margin = _cell(v.get("kd_minus_scratch"), lambda d: f"{100 * d:+.2f}")
        lines.append(f"| {v['name']} | {v['params'] or '-'} | {_cell(v.get('scratch'), _pct)} | {_cell(v.get('kd'), _pct)} | {margin} |")
    return "\n".join(lines + ["", machine]) + "\n"


def tasks(seeds=SEEDS, names=tuple(GRID)) -> list[tuple[str, str, int]]:
    return [(name, mode, seed) for seed in seeds for name in names for mode in GRID[name][2]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=Path, default=LINES, help="the JSON lines the runs append to (and --summarize reads)")
    parser.add_argument("--workers", type=int, default=8, help="processes training at once on the GPU")
    parser.add_argument("--summarize", action="store_true", help="only write the .json and .md from the lines already there")
    parser.add_argument("--machine", default=None, help="the machine line of the .md (default: this machine's description)")
    smoke.add_option(parser)
    args = parser.parse_args()
    config, teachers_dir, work, planned = CONFIG, RUN_DIR, Path("/tmp/edgekd-gpu-sweep"), tasks()
    if args.smoke:  # one augmented variant, one seed, smoke sizes, through the pool
        work = smoke.folder("distill_fashion_mnist_gpu_sweep")
        config, teachers_dir, args.lines, args.workers = smoke.shrunk_config(CONFIG, work), work / "teachers", work / "results" / LINES.name, 1
        planned = tasks(seeds=(0,), names=("w6 aug",))
    args.lines.parent.mkdir(parents=True, exist_ok=True)
    if not args.summarize:
        train_teachers(config, teachers_dir)
        todo = not_finished(planned, args.lines)
        print(f"{len(planned) - len(todo)} of {len(planned)} runs already in {args.lines}; {len(todo)} to go", flush=True)
        with mp.get_context("spawn").Pool(args.workers) as pool:
            for tag in pool.imap_unordered(job, [(*t, str(args.lines), str(config), str(teachers_dir), str(work)) for t in todo]):
                print("done", tag, flush=True)
    summary = {**summarize(args.lines, len(planned)), "smoke": args.smoke}
    text = markdown(summary, args.machine or smoke.machine_line(describe()))
    write_json_atomic(args.lines.with_suffix(".json"), summary)
    write_text_atomic(args.lines.with_suffix(".md"), text)
    print(text)


def not_finished(planned: list[tuple[str, str, int]], lines: Path) -> list[tuple[str, str, int]]:
    """The planned runs with no line yet: a sweep stopped by a time limit resumes where it stopped."""
    done = set()
    if lines.is_file():
        rows = [json.loads(line) for line in lines.read_text(encoding="utf-8").splitlines() if line.strip()]
        done = {(r["name"], r["mode"], r["seed"]) for r in rows}
    return [task for task in planned if task not in done]


def train_teachers(config: Path, run_dir: Path) -> None:
    """The teachers once, before the workers copy them (reused when distill_fashion_mnist.py already trained them)."""
    from edgekd.pipeline.config import load_config
    from edgekd.pipeline.runner import run_pipeline

    run_pipeline(load_config(config), config, run_dir, resume=True, only=["teachers"], log=print)


if __name__ == "__main__":
    main()
