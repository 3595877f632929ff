"""Where a Fashion-MNIST teacher's training step spends its time on a GPU, and which switch shortens it (issue 13,
part 1: configs/fashion_mnist.yaml's teachers + KD should train in under 60 s on one H200).

Trains configs/fashion_mnist.yaml's two CNN teachers (convnet w32, resnet w16) with edgekd's own train() on the whole
training split held on the device, batch 128: one warm-up epoch, then 2 epochs per variant (the median epoch is
reported): as configured (bf16 autocast on CUDA), cudnn.benchmark, autocast off, fused SGD, channels_last, the
three together, and those three with the forward and backward captured as CUDA graphs
(torch.cuda.make_graphed_callables; whole batches only; on a CPU that row records why it did not run). Then
torch.profiler over 100 steps of the convnet as configured: the operators by CPU time and by CUDA time (a step
whose CPU time far exceeds its CUDA time is bound by the host launching kernels).

    python benchmarks/gpu_step_profile.py            # on a GPU machine, about a minute
    python benchmarks/gpu_step_profile.py --smoke    # seconds, on the CPU: does it still run?

Writes benchmarks/results/gpu_step_profile.json and .md.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import smoke  # noqa: E402  (benchmarks/smoke.py, beside this script)

from edgekd.core.environment import describe, library_versions  # noqa: E402
from edgekd.core.fileio import write_json_atomic, write_text_atomic  # noqa: E402
from edgekd.data.sources import FASHION_MNIST_DIR, _fashion_mnist  # noqa: E402
from edgekd.train import trainer  # noqa: E402
from edgekd.train.config import ModelConfig, TrainConfig  # noqa: E402
from edgekd.train.models.loading import build_model  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
TEACHERS = (("convnet", 32), ("resnet", 16))  # configs/fashion_mnist.yaml's CNN teachers
VARIANTS = ({}, {"bench": True}, {"amp": "off"}, {"fused": True}, {"channels_last": True},
            {"amp": "off", "bench": True, "fused": True},
            # CUDA graphs (forward and backward replayed, not launched op by op): the likely way under 60 s if
            # the steps wait on the host. Autocast's cast cache cannot live in a graph, so fp32 like the row above.
            {"amp": "off", "bench": True, "fused": True, "graphed": True})
TRAIN_IMAGES = 51_000  # the training split less the 9,000 validation images the data stage holds out
PROFILED_STEPS = 100


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS)
    smoke.add_option(parser)
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    images, epochs = TRAIN_IMAGES, 2
    if args.smoke:
        args.results, images, epochs = smoke.folder("gpu_step_profile") / "results", 256, 1
    raw = _fashion_mnist(FASHION_MNIST_DIR)
    x = torch.from_numpy(np.ascontiguousarray(raw.x[:images])).to(device)
    y = torch.from_numpy(raw.y[:images])
    rows = []
    for arch, width in TEACHERS:
        epoch_seconds(arch, width, x, y, epochs=1)  # warm-up: cudnn's plans, the allocator
        for variant in VARIANTS:
            rows.append({"arch": arch, "width": width, **variant, **timed_variant(arch, width, x, y, epochs, variant)})
            print(rows[-1], flush=True)
    cpu_table, cuda_table = profile(x[:PROFILED_STEPS * 128], y[:PROFILED_STEPS * 128], device)
    result = {"device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu", "torch": torch.__version__,
              "train_images": images, "batch_size": 128, "epochs_per_variant": epochs, "variants": rows,
              "profile_steps": PROFILED_STEPS, "library_versions": library_versions(), "environment": describe(), "smoke": args.smoke}
    args.results.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.results / "gpu_step_profile.json", result)
    write_text_atomic(args.results / "gpu_step_profile.md", markdown(result, cpu_table, cuda_table))
    print(markdown(result, cpu_table, cuda_table))


def timed_variant(arch: str, width: int, x: torch.Tensor, y: torch.Tensor, epochs: int, variant: dict) -> dict:
    """{"epoch_seconds": ...}, or {"error": ...} for a variant this machine cannot run (CUDA graphs on the CPU, say),
    so one failing switch does not cost the rest of a device's run."""
    if variant.get("graphed") and not x.is_cuda:
        return {"error": "CUDA graphs need a CUDA device"}
    try:
        return {"epoch_seconds": round(epoch_seconds(arch, width, x, y, epochs, **variant), 3)}
    except Exception as error:  # noqa: BLE001  (recorded in the results, where the next session reads it)
        return {"error": f"{type(error).__name__}: {error}"[:300]}


def epoch_seconds(arch: str, width: int, x: torch.Tensor, y: torch.Tensor, epochs: int, amp: str = "auto",
                  bench: bool = False, fused: bool = False, channels_last: bool = False, graphed: bool = False) -> float:
    """Median epoch of edgekd's train() with one variant's switches (restored afterwards)."""
    torch.backends.cudnn.benchmark = bench
    plain = trainer.make_optimizer
    if fused:  # fused=True exists for CUDA tensors only
        trainer.make_optimizer = lambda model, cfg: torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9, nesterov=True,
                                                                    weight_decay=cfg.weight_decay, fused=x.is_cuda)
    try:
        torch.manual_seed(0)
        model = build_model(ModelConfig(arch=arch, width=width), (1, 28, 28), 10).to(x.device)
        cfg = TrainConfig(epochs=epochs, lr=0.05, batch_size=128, amp=amp, channels_last=channels_last)
        if graphed:  # a graph has fixed shapes: whole batches only
            full = len(y) - len(y) % cfg.batch_size
            x, y = x[:full], y[:full]
            model = torch.cuda.make_graphed_callables(model, (x[:cfg.batch_size].clone(),))
        return trainer.train(model, x, y, cfg, trainer.cross_entropy_loss(), seed=0, desc=f"{arch} w{width}").epoch_seconds
    finally:
        trainer.make_optimizer, torch.backends.cudnn.benchmark = plain, False


def profile(x: torch.Tensor, y: torch.Tensor, device: torch.device) -> tuple[str, str]:
    """torch.profiler tables (top 20 by CPU time and by self CUDA time) of the convnet w32 teacher as configured."""
    activities = [torch.profiler.ProfilerActivity.CPU] + ([torch.profiler.ProfilerActivity.CUDA] if device.type == "cuda" else [])
    model = build_model(ModelConfig(arch="convnet", width=32), (1, 28, 28), 10).to(device)
    with torch.profiler.profile(activities=activities) as run:
        trainer.train(model, x, y, TrainConfig(epochs=1, lr=0.05, batch_size=128), trainer.cross_entropy_loss(), seed=0, desc="profile")
    averages = run.key_averages()
    by_cuda = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    return averages.table(sort_by="cpu_time_total", row_limit=20), averages.table(sort_by=by_cuda, row_limit=20)


def markdown(result: dict, cpu_table: str, cuda_table: str) -> str:
    lines = ["# Training-step time on the GPU: Fashion-MNIST teachers", "",
             f"Generated by `benchmarks/gpu_step_profile.py` on {result['device']} (torch {result['torch']}): edgekd's train() "
             f"on {result['train_images']} images held on the device, batch {result['batch_size']}, median of "
             f"{result['epochs_per_variant']} epochs after a warm-up epoch.", "",
             "| teacher | variant | epoch seconds |", "|---|---|---:|"]
    for row in result["variants"]:
        switches = {k: v for k, v in row.items() if k not in ("arch", "width", "epoch_seconds", "error")}
        lines.append(f"| {row['arch']} w{row['width']} | {', '.join(f'{k}={v}' for k, v in switches.items()) or 'as configured'} | "
                     f"{row.get('epoch_seconds', row.get('error'))} |")
    lines += ["", f"## Profile of {result['profile_steps']} convnet w32 steps, by CPU time", "", "```", cpu_table, "```", "",
              "## The same, by CUDA time", "", "```", cuda_table, "```", "", smoke.machine_line(result["environment"])]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
