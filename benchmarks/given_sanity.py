"""The sanity floor of a model shipped as given (issue 32, items 1-2), on a real trained model and real mistakes.

    flock /tmp/edgekd-heavy.lock env PYTHONPATH=$PWD python benchmarks/given_sanity.py
    python benchmarks/given_sanity.py --smoke          # 200 images, into a temporary folder: does it still run?

Fashion-MNIST's mobilenet_v3_small (../shared/models/fashion-mnist-224, 93.25% test top-1 with its own preprocessing:
grey to three channels, 224x224, (x - 0.2860) / 0.3530) is shipped as given from 2,000 test PNG files (benchmarks/byom.py
writes them, class folders `0-t-shirt` ... `9-boot`), through the teachers and distill stages only (where the given
model is measured and judged), once per case:

- right: the folders in the model's label order, its own scaling (and `dataset`, the data's statistics);
- alphabetical: the folders named `t-shirt`, `trouser`, ... so that they sort `bag, boot, coat, ...`;
- two swapped: the pullover and coat images each in the other's folder;
- normalize none, normalize imagenet: the right folders fed [0, 1] pixels or ImageNet's mean/std.

Per case: shipped (exit 0) or refused (exit 2) with which line, the validation top-1 as the run measured it, seconds.
Then the cost of the checks on the right case: seconds of the validation pass the stage makes anyway against seconds of
the checks themselves (edgekd/pipeline/given_check.py), measured in-process.

Writes benchmarks/results/given_sanity.json and .md.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import re
import time
from pathlib import Path

import byom  # noqa: E402  (benchmarks/byom.py, beside this script: the PNG folders)
import smoke  # noqa: E402  (benchmarks/smoke.py, beside this script)

from edgekd.core.environment import describe  # noqa: E402
from edgekd.core.fileio import write_json_atomic, write_text_atomic  # noqa: E402

RESULTS = byom.RESULTS
MODEL = byom.MODELS / "mobilenet_v3_small.pt"  # ../shared/models beside the checkout, or $EDGEKD_SHARED_MODELS
OWN = {"mean": [byom.MEAN] * 3, "std": [byom.STD] * 3}


def checkpoint(work: Path) -> Path:
    """The shared fp16 state_dict as float32 (what torchvision's constructor loads)."""
    import torch

    path = work / "mobilenet_v3_small-fp32.pt"
    if not path.is_file():
        state = torch.load(MODEL, weights_only=True)
        torch.save({k: v.float() if v.is_floating_point() else v for k, v in state.items()}, path)
    return path


def renamed(source: Path, into: Path, names: dict[str, str]) -> Path:
    """`source`'s class folders under other names (`names`: old -> new), as links to the same files."""
    if into.is_dir():
        return into
    for folder in sorted(p for p in source.iterdir() if p.is_dir()):
        target = into / names.get(folder.name, folder.name)
        target.mkdir(parents=True)
        for file in folder.iterdir():
            (target / file.name).symlink_to(file.resolve())
    return into


def cases(folder: Path, work: Path) -> dict[str, dict]:
    ordered = sorted(p.name for p in folder.iterdir() if p.is_dir())  # 0-t-shirt ... 9-boot
    plain = {name: name.split("-", 1)[1] for name in ordered}
    swap = {"2-pullover": "4-coat", "4-coat": "2-pullover"}
    data = {"source": "imagefolder", "color": "gray3", "resize": 224}
    return {"right (own mean/std)": {**data, "path": str(folder), "normalize": OWN},
            "right (normalize dataset)": {**data, "path": str(folder), "normalize": "dataset"},
            "alphabetical folders": {**data, "path": str(renamed(folder, work / "alphabetical", plain)), "normalize": OWN},
            "two swapped folders": {**data, "path": str(renamed(folder, work / "swapped", swap)), "normalize": OWN},
            "normalize none": {**data, "path": str(folder), "normalize": "none"},
            "normalize imagenet": {**data, "path": str(folder), "normalize": "imagenet"}}


def ship_case(name: str, data: dict, model: Path, work: Path) -> dict:
    """Teachers and distill stages of the pipeline shipping the model as given: refused or not, and the lines it printed."""
    import yaml

    from edgekd import api
    from edgekd.core.errors import EdgeKDError

    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    config = work / f"{slug}.yaml"
    config.write_text(yaml.safe_dump({"name": slug, "seed": 0, "data": data, "targets": ["x86-cpu"],
                                      "student": {"arch": "torchvision:mobilenet_v3_small", "checkpoint": str(model)}}))
    printed, error = io.StringIO(), None
    started = time.perf_counter()
    with contextlib.redirect_stderr(printed):
        try:
            api.run(config, work / slug, force=True, only=["teachers", "distill"], log=lambda m: None)
        except EdgeKDError as exc:
            error = str(exc)
    lines = [line for line in printed.getvalue().splitlines() if line.startswith("student (as given)")]
    top1 = re.search(r"validation top-1 ([\d.]+)% on (\d+) images", "\n".join(lines))
    return {"case": name, "exit": 2 if error else 0, "refused": error, "val_top1": float(top1.group(1)) / 100 if top1 else None,
            "val_images": int(top1.group(2)) if top1 else None, "printed": lines, "seconds": round(time.perf_counter() - started, 1)}


def check_cost(data_config: dict, model: Path) -> dict:
    """Seconds of the validation pass the as-given stage makes anyway, and of the sanity checks on top of it."""
    from edgekd.data import load_dataset
    from edgekd.data.config import DataConfig
    from edgekd.pipeline.given_check import check_label_order, check_scaling, given_probe
    from edgekd.train.config import ModelConfig
    from edgekd.train.models import build_model
    from edgekd.train.trainer import predict_logits

    data = load_dataset(DataConfig(**data_config), seed=0, lazy=True)
    net = build_model(ModelConfig(arch="torchvision:mobilenet_v3_small", checkpoint=str(model)), data.input_shape,
                      data.num_classes).eval()
    logits = lambda x: predict_logits(net, x)  # noqa: E731
    started = time.perf_counter()
    predictions = logits(data.val.x).argmax(1)
    validation = time.perf_counter() - started
    seen = []
    counted = lambda x: seen.append(len(x)) or logits(x)  # noqa: E731
    started = time.perf_counter()  # as the as-given stage runs them: the probe's training images, then the checks
    probe, labels, rows = given_probe(data, counted, predictions)
    tops = check_scaling(data, counted, probe, "student", log=lambda m: None)
    check_label_order(probe, labels, data.classes, "data.path", folders=True, rows=rows)
    checks = time.perf_counter() - started
    return {"val_images": len(data.val), "val_pass_seconds": round(validation, 2), "checks_seconds": round(checks, 2),
            "extra_images_inferred": int(sum(seen)), "other_scalings_top1": tops}


def markdown(result: dict) -> str:
    lines = ["# A model shipped as given: wrong folder order and wrong scaling", "",
             f"{smoke.machine_line(result['machine'])}. Generated by `benchmarks/given_sanity.py`"
             f"{' (SMOKE: numbers mean nothing)' if result['smoke'] else ''}. Model: {result['model']}; "
             f"{result['images']} PNG files.", "",
             "| case | validation top-1 as given | exit | refused with |", "|---|---:|---:|---|"]
    for row in result["cases"]:
        top1 = f"{row['val_top1']:.1%} of {row['val_images']}" if row["val_top1"] is not None else "n/a"
        message = (row["refused"] or "shipped through distill").replace("|", "\\|")
        lines.append(f"| {row['case']} | {top1} | {row['exit']} | {message} |")
    cost = result["cost"]
    lines += ["", f"Cost of the checks (right case): the validation pass the stage makes anyway took "
              f"{cost['val_pass_seconds']:.1f} s on {cost['val_images']} images; the checks {cost['checks_seconds']:.1f} s "
              f"({cost['extra_images_inferred']} more images inferred: other scalings "
              + ", ".join(f"{k} {v:.1%}" for k, v in cost["other_scalings_top1"].items()) + ").",
              "", f"Total {result['total_seconds']:.0f} s."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    smoke.add_option(parser)
    args = parser.parse_args()
    started = time.perf_counter()
    out = smoke.folder("given_sanity") if args.smoke else RESULTS
    work = (out if args.smoke else Path.home() / ".cache" / "edgekd") / "given-sanity-work"
    work.mkdir(parents=True, exist_ok=True)
    images = 200 if args.smoke else 2000
    folder, model = byom.png_folder("test", images), checkpoint(work)
    all_cases = cases(folder, work)
    rows = [ship_case(name, data, model, work) for name, data in all_cases.items()]
    for row in rows:
        print(f"{row['case']}: exit {row['exit']}, {row['refused'] or 'shipped'}", flush=True)
    result = {"smoke": args.smoke, "machine": describe(), "images": images,
              "model": "torchvision mobilenet_v3_small, Fashion-MNIST 3x224x224 (shared/models, 93.25% test top-1)",
              "cases": rows, "cost": check_cost(all_cases["right (own mean/std)"], model),
              "total_seconds": round(time.perf_counter() - started, 1)}
    write_json_atomic(out / "given_sanity.json", result)
    write_text_atomic(out / "given_sanity.md", markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
