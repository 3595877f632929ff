"""`--smoke` for every benchmark script: the same code paths on tiny sizes, in seconds, writing into a fresh
temporary folder (never benchmarks/results or runs/), so the test suite can run each benchmark and a broken
one is noticed the day it breaks, not when someone tries to reproduce a published number.

A smoke run's numbers mean nothing (three epochs on a few hundred images); only that the script still runs to
the end and writes its results does.
"""
from __future__ import annotations

import argparse
import copy
import tempfile
from pathlib import Path
from typing import Any

import yaml

HELP = "tiny sizes, seconds, outputs in a new temporary folder (never benchmarks/results): checks the script still runs"
# Small enough to run in seconds, large enough that every split, calibration recipe and class is populated.
DATA = {"train_limit": 300, "test_limit": 200, "val_fraction": 0.01}
# Three epochs: a teacher handed on as a checkpoint (the data-free benchmark does) must beat chance, or the
# pipeline refuses it (edgekd/pipeline/teacher_check.py).
TRAIN = {"epochs": 3, "batch_size": 64, "amp": "off"}
def machine_line(machine: dict) -> str:
    """`Machine: <cpu>, <n> cores, flags <...>` from edgekd.core.environment.describe(), for a results file's .md:
    int8 and bf16 speed depend on the flags, so every benchmark states them the same way."""
    cpu = machine["cpu"]
    return f"Machine: {cpu['model']}, {cpu['cores']} cores, flags {', '.join(cpu['flags']) or 'none of note'}"


BENCH = {"eval_samples": 100, "runs": 3, "min_seconds": 0.0, "warmup_runs": 1, "warmup_seconds": 0.0, "rounds": 1,
         "memory": False}


def add_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--smoke", action="store_true", help=HELP)


def folder(benchmark: str) -> Path:
    """A new folder under the system's temporary directory ($TMPDIR), printed so its outputs can be read."""
    path = Path(tempfile.mkdtemp(prefix=f"edgekd-smoke-{benchmark}-"))
    print(f"smoke run: outputs in {path}", flush=True)
    return path


SMOKE_MAX_DROP = 50.0  # points: no smoke-sized model's int8 is refused for accuracy (see shrink)


def shrink(config: dict[str, Any]) -> dict[str, Any]:
    """A pipeline config (as a dict) with tiny data, three-epoch training and a short bench; models stay the same
    architectures, so the code the benchmark exercises is the one it measures."""
    out = copy.deepcopy(config)
    out["data"] = {**out.get("data", {}), **DATA}
    for teacher in out.get("teachers", []):
        teacher["train"] = {**teacher.get("train", {}), **TRAIN}
    distill = out.setdefault("distill", {})
    if distill.get("mode") != "data_free":  # data_free trains its student in distill.data_free and refuses distill.train
        distill["train"] = {**distill.get("train", {}), **TRAIN}
    if "data_free" in distill:
        distill["data_free"] = {**distill["data_free"], "steps": 2, "batch_size": 16, "replay": 64, "keep_samples": 64}
    quantize = out.setdefault("quantize", {})
    if quantize.get("method", "ptq") != "none" and not str(quantize.get("calibration", "")).startswith("synthetic"):
        quantize["calibration"] = "train-64"
    if "qat" in quantize:
        quantize["qat"]["train"] = {**quantize["qat"].get("train", {}), **TRAIN}
    out["bench"] = {**out.get("bench", {}), **BENCH}
    # Three epochs on 300 images leave many near-ties among the logits, which int8 rounding flips: the
    # agreement checks (QAT's QDQ file against its fake-quantized model) would fail on noise, not on a bug.
    out["export"] = {**out.get("export", {}), "min_top1_agreement": 0.8}
    # The same near-ties make int8's drop noise too, and which of them flip depends on the CPU's int8 kernels (8-bit
    # weights with VNNI, 7-bit without): a data-free smoke student dropped 3.2 points on an AVX-512 VNNI CPU and
    # none on AVX2. The accuracy budget (quantize's and the gate's) is for real runs; a smoke run checks the code.
    out["gate"] = {**out.get("gate", {}), "max_drop": SMOKE_MAX_DROP}
    return out


def shrunk_config(source: Path, into: Path) -> Path:
    """Write shrink(source) into the folder `into`, under the same file name."""
    raw = yaml.safe_load(Path(source).read_text(encoding="utf-8"))
    path = Path(into) / Path(source).name
    path.write_text(yaml.safe_dump(shrink(raw), sort_keys=False), encoding="utf-8")
    return path
