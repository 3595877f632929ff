"""A timing probe for sizing the issue-15 text benchmark: a few training steps, not a training run.

    flock /tmp/edgekd-heavy.lock env PYTHONPATH=$PWD python benchmarks/text_timing_probe.py
    python benchmarks/text_timing_probe.py --smoke          # seconds, into a temporary folder: does it still run?

For two teacher sizes and their half-depth (DistilBERT) students: seconds per training step (AdamW, batch 32,
2 torch threads) at sequence lengths 64 and 128, for the teacher alone, a student from scratch (cross-entropy)
and a KD student (teacher forward + soft targets + cross-entropy + last-hidden-state cosine); parameters; and
onnxruntime latency at batch 1, 2 threads, sequence 128 and the corpus median (73), fp32 and dynamic int8.
Inputs are random token ids: a step's time depends on shapes, not on the words.
docs/text.md turns these into epochs and corpus sizes that fit the 60-minute budget.

Writes benchmarks/results/text_timing_probe.json and .md.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import smoke  # noqa: E402  (benchmarks/smoke.py, beside this script)

from edgekd.core.environment import describe  # noqa: E402
from edgekd.core.fileio import write_json_atomic, write_text_atomic  # noqa: E402
from edgekd.quant.host import saturates_8bit_products  # noqa: E402
from edgekd.text import export, losses, models  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
THREADS, BATCH, CLASSES, MEDIAN_TOKENS = 2, 32, 20, 73
# (name, vocabulary, teacher size): vocabularies small enough that the embeddings stay under a fifth of the
# teacher, so that half the layers can be <= 60% of its parameters (issue 15's target).
FAMILIES = [("h256-l6", 4096, models.Size(256, 6, 4, 1024)), ("h128-l6", 2048, models.Size(128, 6, 4, 512))]
SMOKE_FAMILIES = [("smoke", 200, models.Size(32, 2, 2, 64))]


def batch(vocab: int, length: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    ids = torch.randint(5, vocab, (BATCH, length), generator=generator)
    mask = torch.ones(BATCH, length, dtype=torch.long)
    return ids, mask, torch.randint(0, CLASSES, (BATCH,), generator=generator)


def step_seconds(step, warmup: int, steps: int) -> float:
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def trainer(model: torch.nn.Module, loss_of, extra: list[torch.nn.Parameter] | None = None):
    optimizer = torch.optim.AdamW([*model.parameters(), *(extra or [])], lr=1e-4)

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss_of().backward()
        optimizer.step()
    return step


def train_steps(teacher, student, vocab: int, length: int, warmup: int, steps: int) -> dict[str, float]:
    generator = torch.Generator().manual_seed(length)
    ids, mask, labels = batch(vocab, length, generator)
    teacher.train(), student.train()
    ce = lambda model: torch.nn.functional.cross_entropy(model(input_ids=ids, attention_mask=mask).logits, labels)
    pairs = [models.aligned_layers(student.config.num_hidden_layers, teacher.config.num_hidden_layers)[-1]]

    def kd():
        with torch.no_grad():
            teacher_logits, teacher_hidden = models.logits_and_hidden(teacher.eval(), ids, mask)
        student_logits, student_hidden = models.logits_and_hidden(student, ids, mask)
        return losses.distilbert_loss(student_logits, teacher_logits, labels, student_hidden, teacher_hidden, mask, pairs)["total"]
    return {"teacher": step_seconds(trainer(teacher, lambda: ce(teacher)), warmup, steps),
            "scratch_student": step_seconds(trainer(student, lambda: ce(student)), warmup, steps),
            "kd_student": step_seconds(trainer(student, kd), warmup, steps)}


def latency_ms(path: Path, vocab: int, length: int, runs: int) -> float:
    session = export.session(path, threads=THREADS)
    inputs = {"input_ids": np.random.default_rng(0).integers(5, vocab, (1, length)), "attention_mask": np.ones((1, length), np.int64)}
    return 1000 * step_seconds(lambda: export.run(session, inputs), max(2, runs // 10), runs)


def onnx_latencies(teacher, student, vocab: int, work: Path, runs: int) -> dict[str, dict[str, float]]:
    files = {"teacher_fp32": export.export(teacher.eval(), work / "teacher.onnx", max_length=128),
             "student_fp32": export.export(student.eval(), work / "student.onnx", max_length=128)}
    files["student_int8"] = export.quantize_dynamic_int8(files["student_fp32"], work / "student.int8.onnx",
                                                         reduce_range=saturates_8bit_products())
    return {name: {f"seq{length}": round(latency_ms(path, vocab, length, runs), 3) for length in (MEDIAN_TOKENS, 128)}
            for name, path in files.items()}


def probe(name: str, vocab: int, size: models.Size, work: Path, smoke_run: bool) -> dict:
    torch.manual_seed(0)
    teacher = models.classifier(models.config(vocab, CLASSES, size, max_length=128))
    student, layers = models.half_depth_student(teacher)
    warmup, steps = (1, 2) if smoke_run else (2, 5)
    started = time.perf_counter()
    result = {"family": name, "vocab": vocab, "teacher_size": asdict(size),
              "student_layers_from_teacher": layers,
              "params": {"teacher": models.parameters(teacher), "student": models.parameters(student)},
              "step_seconds": {f"seq{length}": train_steps(teacher, student, vocab, length, warmup, steps) for length in (64, 128)}}
    result["params"]["ratio"] = round(result["params"]["student"] / result["params"]["teacher"], 3)
    folder = work / name
    folder.mkdir(parents=True, exist_ok=True)
    result["ort_batch1_ms"] = onnx_latencies(teacher, student, vocab, folder, 20 if smoke_run else 200)
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def markdown(result: dict) -> str:
    lines = [f"# Text benchmark sizing probe{' (SMOKE: meaningless numbers)' if result['smoke'] else ''}", "",
             f"Seconds per training step (AdamW, batch {BATCH}, {THREADS} torch threads, median of a few steps) and onnxruntime "
             f"latency (batch 1, {THREADS} threads). KD step = teacher forward + student forward/backward with the DistilBERT loss.", "",
             "| family | params teacher / student (ratio) | step s/batch @64: teacher, scratch, KD | @128: teacher, scratch, KD "
             "| ORT ms @73: teacher, student, int8 | @128: teacher, student, int8 |", "|---|---|---|---|---|---|"]
    for row in result["families"]:
        p, s, o = row["params"], row["step_seconds"], row["ort_batch1_ms"]
        steps = [", ".join(f"{s[k][m]:.3f}" for m in ("teacher", "scratch_student", "kd_student")) for k in ("seq64", "seq128")]
        ort = [", ".join(f"{o[m][k]:.2f}" for m in ("teacher_fp32", "student_fp32", "student_int8")) for k in (f"seq{MEDIAN_TOKENS}", "seq128")]
        lines.append(f"| {row['family']} (vocab {row['vocab']}) | {p['teacher']:,} / {p['student']:,} ({p['ratio']}) | {steps[0]} | {steps[1]} "
                     f"| {ort[0]} | {ort[1]} |")
    lines += ["", f"{smoke.machine_line(result['machine'])}; "
              f"int8 with {'7-bit' if result['reduce_range'] else '8-bit'} weights. {result['note']} Load average at start "
              f"{result['load_average_at_start'][0]:.1f}, at end {result['load_average_at_end'][0]:.1f}. {result['total_seconds']} s. "
              "Generated by `benchmarks/text_timing_probe.py`.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    smoke.add_option(parser)
    parser.add_argument("--note", default="", help="how it ran (under the heavy lock or not), recorded with the numbers")
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    load_at_start = os.getloadavg()  # the machine is shared: how busy it was says how far to trust the seconds
    started = time.perf_counter()
    out = smoke.folder("text_timing_probe") if args.smoke else RESULTS
    work = out / "probe-work" if args.smoke else Path.home() / ".cache" / "edgekd" / "text-probe"
    families = [probe(name, vocab, size, work, args.smoke) for name, vocab, size in (SMOKE_FAMILIES if args.smoke else FAMILIES)]
    result = {"smoke": args.smoke, "machine": describe(), "batch": BATCH, "threads": THREADS, "reduce_range": saturates_8bit_products(),
              "note": args.note,
              "load_average_at_start": load_at_start, "load_average_at_end": os.getloadavg(), "families": families,
              "total_seconds": round(time.perf_counter() - started, 1)}
    write_json_atomic(out / "text_timing_probe.json", result)
    write_text_atomic(out / "text_timing_probe.md", markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
