"""A timing probe for sizing the issue-15 text benchmark: a few training steps, not a training run.

    flock /tmp/edgekd-heavy.lock env PYTHONPATH=$PWD python benchmarks/text_timing_probe.py
    python benchmarks/text_timing_probe.py --smoke          # seconds, into a temporary folder: does it still run?

For three teacher sizes and their half-depth (DistilBERT) students: seconds per training step (AdamW, batch 32,
2 torch threads) at sequence lengths 64 and 128, for the teacher alone, a student from scratch (cross-entropy)
and a KD student (teacher forward + soft targets + cross-entropy + last-hidden-state cosine); parameters; and
onnxruntime latency at batch 1, 2 threads, sequence 128 and the corpus median (73), fp32 and dynamic int8, timed
interleaved (measure_interleaved) so the int8 / fp32 ratio is of one moment of the shared machine.
Inputs are random token ids: a step's time depends on shapes, not on the words.
Then int8's ceiling on this CPU: one MatMul of (tokens x K) by (K x N), fp32 against the same dynamic int8 recipe,
at the families' feed-forward shapes and BERT-base's, 1 and 2 threads. A whole model's int8 speed-up is below
its largest products' (layer norms, softmax and per-operator overhead do not shrink), so this says which model
size the issue's x1.5 needs on this CPU kind (AVX2 without VNNI multiplies int8 with two instructions per pair).
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
from edgekd.device.latency import LatencySpec, measure_interleaved  # noqa: E402
from edgekd.quant.host import saturates_8bit_products  # noqa: E402
from edgekd.text import export, losses, models  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
THREADS, BATCH, CLASSES, MEDIAN_TOKENS = 2, 32, 20, 73
# (name, vocabulary, teacher size): vocabularies small enough that the embeddings stay under a fifth of the
# teacher, so that half the layers can be <= 60% of its parameters (issue 15's target).
# h256-l4 with vocabulary 2,048: a 2-layer student is 0.58 of it (4,096 would make it 0.63).
FAMILIES = [("h256-l6", 4096, models.Size(256, 6, 4, 1024)), ("h256-l4", 2048, models.Size(256, 4, 4, 1024)),
            ("h128-l6", 2048, models.Size(128, 6, 4, 512))]
SMOKE_FAMILIES = [("smoke", 200, models.Size(32, 2, 2, 64))]
# (tokens, K, N) of the int8 ceiling: the feed-forward input products of hidden 128, 256 and 768 (BERT-base), at
# the corpus median; BERT-base also at 128 tokens.
GEMM_SHAPES = [(MEDIAN_TOKENS, 128, 512), (MEDIAN_TOKENS, 256, 1024), (MEDIAN_TOKENS, 768, 3072), (128, 768, 3072)]
SMOKE_GEMM_SHAPES = [(8, 32, 64)]


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


def latency_spec(smoke_run: bool) -> LatencySpec:
    return LatencySpec(warmup_runs=2, warmup_seconds=0.0, runs=6, min_seconds=0.0, rounds=2) if smoke_run else \
        LatencySpec(warmup_runs=20, warmup_seconds=0.5, runs=300, min_seconds=3.0, rounds=5)


def interleaved_ms(sessions: dict, inputs, spec: LatencySpec, desc: str) -> dict[str, float]:
    """p50 ms of every onnxruntime session on the same inputs, timed in alternating rounds."""
    runners = {name: (lambda feed, s=session: s.run(None, feed)) for name, session in sessions.items()}
    return {name: round(stats.p50_ms, 3) for name, stats in measure_interleaved(runners, inputs, spec, desc=desc).items()}


def onnx_latencies(teacher, student, vocab: int, work: Path, spec: LatencySpec) -> dict[str, dict[str, float]]:
    files = {"teacher_fp32": export.export(teacher.eval(), work / "teacher.onnx", max_length=128),
             "student_fp32": export.export(student.eval(), work / "student.onnx", max_length=128)}
    files["student_int8"] = export.quantize_dynamic_int8(files["student_fp32"], work / "student.int8.onnx",
                                                         reduce_range=saturates_8bit_products())
    sessions = {name: export.session(path, threads=THREADS) for name, path in files.items()}
    out: dict[str, dict[str, float]] = {name: {} for name in files}
    for length in (MEDIAN_TOKENS, 128):
        inputs = {"input_ids": np.random.default_rng(0).integers(5, vocab, (1, length)), "attention_mask": np.ones((1, length), np.int64)}
        for name, ms in interleaved_ms(sessions, inputs, spec, f"{work.name} latency {length} tokens").items():
            out[name][f"seq{length}"] = ms
    out["int8_speedup"] = {key: round(out["student_fp32"][key] / out["student_int8"][key], 3) for key in out["student_fp32"]}
    return out


def matmul_file(tokens: int, k: int, n: int, path: Path) -> Path:
    """An ONNX graph of one MatMul (tokens x k) @ (k x n) with a constant, random weight."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array((0.05 * np.random.default_rng(0).standard_normal((k, n))).astype(np.float32), "weight")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "weight"], ["y"])], "matmul",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [tokens, k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [tokens, n])], [weight])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def gemm_ceiling(shapes: list[tuple[int, int, int]], work: Path, spec: LatencySpec) -> list[dict]:
    """fp32 against dynamic int8 (the student's recipe, export.quantize_dynamic_int8) for one MatMul per shape."""
    rows = []
    for tokens, k, n in shapes:
        fp32 = matmul_file(tokens, k, n, work / f"matmul-{tokens}x{k}x{n}.onnx")
        int8 = export.quantize_dynamic_int8(fp32, fp32.with_suffix(".int8.onnx"), reduce_range=saturates_8bit_products())
        x = {"x": np.random.default_rng(1).standard_normal((tokens, k)).astype(np.float32)}
        row = {"tokens": tokens, "k": k, "n": n}
        for threads in (1, THREADS):
            sessions = {"fp32": export.session(fp32, threads=threads), "int8": export.session(int8, threads=threads)}
            ms = interleaved_ms(sessions, x, spec, f"matmul {tokens}x{k}x{n}, {threads} threads")
            row[f"threads{threads}"] = {"fp32_ms": ms["fp32"], "int8_ms": ms["int8"], "int8_speedup": round(ms["fp32"] / ms["int8"], 3)}
        rows.append(row)
    return rows


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
    result["ort_batch1_ms"] = onnx_latencies(teacher, student, vocab, folder, latency_spec(smoke_run))
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def sentence(note: str) -> str:
    return f"{note.rstrip('. ')}. " if note.strip() else ""


def markdown(result: dict) -> str:
    lines = [f"# Text benchmark sizing probe{' (SMOKE: meaningless numbers)' if result['smoke'] else ''}", "",
             f"Seconds per training step (AdamW, batch {BATCH}, {THREADS} torch threads, median of a few steps) and onnxruntime "
             f"latency (batch 1, {THREADS} threads). KD step = teacher forward + student forward/backward with the DistilBERT loss.", "",
             "| family | params teacher / student (ratio) | step s/batch @64: teacher, scratch, KD | @128: teacher, scratch, KD "
             "| ORT ms @73: teacher, student, int8 | @128: teacher, student, int8 | int8 x @73, @128 |", "|---|---|---|---|---|---|---|"]
    for row in result["families"]:
        p, s, o = row["params"], row["step_seconds"], row["ort_batch1_ms"]
        steps = [", ".join(f"{s[k][m]:.3f}" for m in ("teacher", "scratch_student", "kd_student")) for k in ("seq64", "seq128")]
        ort = [", ".join(f"{o[m][k]:.2f}" for m in ("teacher_fp32", "student_fp32", "student_int8")) for k in (f"seq{MEDIAN_TOKENS}", "seq128")]
        speedup = o["int8_speedup"]
        lines.append(f"| {row['family']} (vocab {row['vocab']}) | {p['teacher']:,} / {p['student']:,} ({p['ratio']}) | {steps[0]} | {steps[1]} "
                     f"| {ort[0]} | {ort[1]} | x{speedup[f'seq{MEDIAN_TOKENS}']}, x{speedup['seq128']} |")
    lines += ["", "int8's ceiling: one MatMul (tokens x K) @ (K x N), onnxruntime fp32 against the same dynamic int8 recipe, "
              "p50 of interleaved rounds.", "",
              "| tokens x K x N | 1 thread: fp32, int8 ms (x) | 2 threads: fp32, int8 ms (x) |", "|---|---|---|"]
    for row in result["gemm_ceiling"]:
        cells = [f"{c['fp32_ms']:.3f}, {c['int8_ms']:.3f} (x{c['int8_speedup']})" for c in (row["threads1"], row[f"threads{THREADS}"])]
        lines.append(f"| {row['tokens']} x {row['k']} x {row['n']} | {cells[0]} | {cells[1]} |")
    lines += ["", f"{smoke.machine_line(result['machine'])}; "
              f"int8 with {'7-bit' if result['reduce_range'] else '8-bit'} weights. {sentence(result['note'])}Load average at start "
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
    ceiling = gemm_ceiling(SMOKE_GEMM_SHAPES if args.smoke else GEMM_SHAPES, work, latency_spec(args.smoke))
    result = {"smoke": args.smoke, "machine": describe(), "batch": BATCH, "threads": THREADS, "reduce_range": saturates_8bit_products(),
              "note": args.note,
              "load_average_at_start": load_at_start, "load_average_at_end": os.getloadavg(), "families": families,
              "gemm_ceiling": ceiling,
              "total_seconds": round(time.perf_counter() - started, 1)}
    write_json_atomic(out / "text_timing_probe.json", result)
    write_text_atomic(out / "text_timing_probe.md", markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
