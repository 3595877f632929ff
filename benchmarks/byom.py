"""Bring your own model: the trained Fashion-MNIST ResNet-18 shipped as given, from a folder of PNG files.

    flock /tmp/edgekd-heavy.lock env PYTHONPATH=$PWD python benchmarks/byom.py
    python benchmarks/byom.py --smoke          # seconds, into a temporary folder: does it still run?
    python benchmarks/byom.py --loader-only    # part 3 again (minutes), kept beside the committed parts 1-2

1. The Fashion-MNIST IDX files (Debian's dataset-fashion-mnist) are written out as PNG folders, one
   sub-folder per class (cached under ~/.cache/edgekd/fashion-mnist-png).
2. ../shared/models/fashion-mnist-224/resnet18 (trained at 3x224x224) is shipped twice with no teachers and
   no distillation: (a) from its state_dict and the torchvision factory, (b) from its ONNX export. The data
   is the 10,000-image test folder, prepared as that model's README says (grayscale to three channels,
   resize to 224, (x - 0.2860) / 0.3530): edgekd's own test split is 20% of it, calibration comes from its
   training split. Targets x86-cpu and intel-cpu, gate max_drop 0.5 points.
3. The data loader alone: edgekd's image folder (decoded per batch) over the 60,000-image training folder
   with the same preprocessing, its peak RSS (a fresh process) and images/s, beside torchvision's
   ImageFolder + DataLoader (2 workers) on the same folder and transforms.

Writes benchmarks/results/byom.json and byom.md.
"""
from __future__ import annotations

import argparse
import gzip
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import smoke  # noqa: E402  (benchmarks/smoke.py, beside this script)

from edgekd.core.environment import describe  # noqa: E402
from edgekd.core.fileio import write_json_atomic, write_text_atomic  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
MODELS = REPO.parent / "shared" / "models" / "fashion-mnist-224"
IDX = Path("/usr/share/datasets/fashion-mnist")
CACHE = Path.home() / ".cache" / "edgekd" / "fashion-mnist-png-v2"  # v2: folders named in label order
CLASSES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"]
MEAN, STD = 0.2860, 0.3530
TARGETS = ["x86-cpu", "intel-cpu"]
MAX_DROP = 0.5


def read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as handle:
        data = handle.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)


def png_folder(split: str, limit: int | None = None) -> Path:
    """The IDX split as <root>/<class>/<index>.png (grayscale, 28x28); written once."""
    from PIL import Image

    prefix = "train" if split == "train" else "t10k"
    root = CACHE / (split if limit is None else f"{split}-{limit}")
    done = root / ".complete"
    if done.is_file():
        return root
    images, labels = read_idx(IDX / f"{prefix}-images-idx3-ubyte.gz"), read_idx(IDX / f"{prefix}-labels-idx1-ubyte.gz")
    count = len(labels) if limit is None else limit
    for index in range(count):
        # Class folders sort in the model's label order (0-t-shirt, 1-trouser, ...): an image folder's classes are its
        # sub-folders in sorted order, and the model's output i is label i.
        folder = root / f"{labels[index]}-{CLASSES[labels[index]]}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(images[index], mode="L").save(folder / f"{index:05d}.png")
    done.write_text(str(count))
    return root


def resnet18_files(work: Path) -> tuple[Path, Path]:
    """One fp32 state_dict (the shared weights come as two fp16 halves) and its ONNX export with a dynamic batch."""
    import torch
    import torchvision

    from edgekd.train.config import ExportConfig
    from edgekd.train.onnx_export import export_onnx

    checkpoint, onnx_path = work / "resnet18.pt", work / "resnet18.onnx"
    if checkpoint.is_file() and onnx_path.is_file():
        return checkpoint, onnx_path
    state = {**torch.load(MODELS / "resnet18_a.pt", weights_only=True), **torch.load(MODELS / "resnet18_b.pt", weights_only=True)}
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    torch.save(state, checkpoint)
    model = torchvision.models.resnet18(num_classes=10)
    model.load_state_dict(state)
    example = np.random.default_rng(0).standard_normal((2, 3, 224, 224)).astype(np.float32)
    export_onnx(model.eval(), example, onnx_path, ExportConfig(), {"source": "benchmarks/byom.py"})
    return checkpoint, onnx_path


def pipeline(student: dict, folder: Path, size: int, bench: dict, targets: list[str]) -> dict:
    return {"name": "byom-resnet18", "seed": 0,
            "data": {"source": "imagefolder", "path": str(folder), "color": "gray3", "resize": size,
                     "normalize": {"mean": [MEAN] * 3, "std": [STD] * 3}, "val_fraction": 0.1},
            "student": student, "quantize": {"calibration": "train-256"}, "targets": targets,
            "bench": bench, "gate": {"max_drop": MAX_DROP}}


def ship(name: str, config: dict, work: Path) -> list[dict]:
    """Run the pipeline file `config` as edgekd run does; one result row per target."""
    import yaml

    from edgekd import api
    from edgekd.core.errors import GateFailed
    from edgekd.core.fileio import read_json

    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    started = time.perf_counter()
    try:
        ctx = api.run(path, work / name, force=True, log=lambda m: print(f"[{name}] {m}", flush=True))
    except GateFailed as failed:
        ctx = failed.context
    seconds = time.perf_counter() - started
    report, gate = read_json(ctx.run_dir / "report.json"), read_json(ctx.run_dir / "gate.json")
    fp32 = report["references"]["student_fp32"]["top1"]
    runs = []
    for target in config["targets"]:
        shipped = next(r for r in report["rows"] if r["target"] == target and r.get("shipped"))
        runs.append({"source": name, "target": target, "shipped": shipped["artifact"], "shipped_precision": shipped["precision"],
                     "top1_fp32": fp32, "top1_shipped": shipped["top1"], "drop_points": round((fp32 - shipped["top1"]) * 100, 3),
                     "p50_ms_shipped": shipped.get("p50_ms"),
                     "eval_samples": report["eval_set"]["samples"], "gate_passed": gate["passed"], "seconds": round(seconds, 1)})
    return runs


LOADER_PROBE = """
import json, resource, sys, time
from edgekd.data.config import DataConfig
from edgekd.data import load_dataset
cfg = DataConfig(source="imagefolder", path=sys.argv[1], color="gray3", resize=int(sys.argv[2]),
                 normalize={"mean": [float(sys.argv[3])] * 3, "std": [float(sys.argv[4])] * 3}, val_fraction=0.1)
started = time.perf_counter()
data = load_dataset(cfg, seed=0, lazy=True)
images = 0
for split in (data.train, data.val, data.test):
    for start in range(0, len(split), 64):
        images += len(split.x[start:start + 64])
seconds = time.perf_counter() - started
print(json.dumps({"images": images, "seconds": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

TORCHVISION_PROBE = """
import json, sys, time
import torch
from torchvision import datasets, transforms
tf = transforms.Compose([transforms.Grayscale(3), transforms.Resize(int(sys.argv[2])), transforms.ToTensor(),
                         transforms.Normalize([float(sys.argv[3])] * 3, [float(sys.argv[4])] * 3)])
loader = torch.utils.data.DataLoader(datasets.ImageFolder(sys.argv[1], tf), batch_size=64, num_workers=2)
started, images = time.perf_counter(), 0
for x, _ in loader:
    images += len(x)
print(json.dumps({"images": images, "seconds": time.perf_counter() - started}))
"""


def loader_benchmark(folder: Path, size: int) -> dict:
    """Each loader in a fresh process, so peak RSS is the loader's own (plus the interpreter and numpy)."""
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    args = [str(folder), str(size), str(MEAN), str(STD)]
    run = lambda code: json.loads(subprocess.run([sys.executable, "-c", code, *args], env=env, check=True,  # noqa: E731
                                                 capture_output=True, text=True).stdout.strip().splitlines()[-1])
    edgekd, torchvision = run(LOADER_PROBE), run(TORCHVISION_PROBE)
    return {"images": edgekd["images"], "image_size": [3, size, size], "peak_rss_mb": round(edgekd["peak_rss_mb"], 1),
            "images_per_second": round(edgekd["images"] / edgekd["seconds"], 1),
            "torchvision_images_per_second": round(torchvision["images"] / torchvision["seconds"], 1),
            "torchvision": "ImageFolder + DataLoader(batch_size=64, num_workers=2), Grayscale(3), Resize, ToTensor, Normalize"}


def remeasure_loader() -> None:
    """Part 3 alone (the shipping runs take an hour on 2 cores and do not depend on the loader's memory)."""
    result = json.loads((RESULTS / "byom.json").read_text())
    started = time.perf_counter()
    result["loader"] = loader_benchmark(png_folder("train"), 224)
    result["loader"]["measured_separately"] = {"seconds": round(time.perf_counter() - started, 1), "machine": describe(),
                                               "command": "python benchmarks/byom.py --loader-only"}
    write_json_atomic(RESULTS / "byom.json", result)
    write_text_atomic(RESULTS / "byom.md", markdown(result))
    print(markdown(result))


def markdown(result: dict) -> str:
    lines = ["# Bring your own model: trained ResNet-18 shipped as given", "",
             f"{smoke.machine_line(result['machine'])}. Generated by `benchmarks/byom.py`"
             f"{' (SMOKE: numbers mean nothing)' if result['smoke'] else ''}.", "",
             "| source | target | shipped | top-1 fp32 | top-1 shipped | drop (points) | p50 ms | eval images | gate |",
             "|---|---|---|---:|---:|---:|---:|---:|---|"]
    for r in result["runs"]:
        p50 = f"{r['p50_ms_shipped']:.2f}" if r["p50_ms_shipped"] is not None else "n/a"
        lines.append(f"| {r['source']} | {r['target']} | {r['shipped']} | {r['top1_fp32']:.2%} | {r['top1_shipped']:.2%} | "
                     f"{r['drop_points']:.2f} | {p50} | {r['eval_samples']} | {'PASS' if r['gate_passed'] else 'FAIL'} |")
    loader = result["loader"]
    lines += ["", f"Data loader over {loader['images']:,} PNG files at {loader['image_size']}: peak RSS "
              f"{loader['peak_rss_mb']:.0f} MB, {loader['images_per_second']:.0f} images/s; torchvision "
              f"{loader['torchvision_images_per_second']:.0f} images/s ({loader['torchvision']})."
              + (" Measured separately (`--loader-only`)." if "measured_separately" in loader else ""),
              "", f"Total {result['total_seconds']:.0f} s."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    smoke.add_option(parser)
    parser.add_argument("--loader-only", action="store_true",
                        help="measure the data loader again and replace only that part of benchmarks/results/byom.json")
    args = parser.parse_args()
    if args.loader_only:
        return remeasure_loader()
    started = time.perf_counter()
    out = smoke.folder("byom") if args.smoke else RESULTS
    work = (out if args.smoke else Path.home() / ".cache" / "edgekd") / "byom-work"
    work.mkdir(parents=True, exist_ok=True)
    # Smoke: 200 test images (the model's input is 224x224 all the same), one target, the loader on those too.
    size, folder = 224, png_folder("test", 200) if args.smoke else png_folder("test")
    bench = smoke.BENCH if args.smoke else {"eval_samples": 2000, "runs": 30, "min_seconds": 1.0, "rounds": 5, "memory": False}
    checkpoint, onnx_path = resnet18_files(work)
    runs = []
    for name, student in (("checkpoint", {"arch": "torchvision:resnet18", "checkpoint": str(checkpoint)}),
                          ("onnx", {"onnx": str(onnx_path)})):
        runs += ship(name, pipeline(student, folder, size, bench, TARGETS[:1] if args.smoke else TARGETS), work)
    loader = loader_benchmark(folder if args.smoke else png_folder("train"), size)
    result = {"smoke": args.smoke, "machine": describe(), "model": "torchvision resnet18, Fashion-MNIST 3x224x224 (shared/models)",
              "max_drop_points": MAX_DROP, "runs": runs, "loader": loader, "total_seconds": round(time.perf_counter() - started, 1),
              "peak_rss_mb_this_process": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    write_json_atomic(out / "byom.json", result)
    write_text_atomic(out / "byom.md", markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
