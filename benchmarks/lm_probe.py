"""Timing probe for the language-model benchmark (issue 16): how big a teacher and student, how long a context
and how many steps fit the 60-minute budget on this machine.

Measures, with edgekd.lm's own code: the corpus (standard-library sources) and its tokenizer's cost; seconds per
training step of candidate teachers and students (forward, backward, AdamW), the teacher's forward for the top-k
cache, the student's distillation step with the top-k loss; and ONNX decoding speed (fp32, dynamic int8,
MatMulNBits 8/4-bit) at batch 1. Models are randomly initialised: training does not change their speed.
A few steps each: the point is a size estimate, not a result.

    flock /tmp/edgekd-heavy.lock python benchmarks/lm_probe.py
    python benchmarks/lm_probe.py --smoke     # tiny sizes, a temporary folder: does it still run?

Writes benchmarks/results/lm_probe.json and .md.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import smoke  # noqa: E402  (benchmarks/smoke.py, beside this script)
import torch  # noqa: E402

from edgekd.core.environment import describe  # noqa: E402
from edgekd.core.fileio import write_json_atomic, write_text_atomic  # noqa: E402
from edgekd.lang.generate import generate  # noqa: E402
from edgekd.lang.lm_tokenizer import LMTokenizer, blocks, train_on_corpus  # noqa: E402
from edgekd.lm.corpus import Corpus, stdlib_corpus, summary  # noqa: E402
from edgekd.lm.export import export_decoder  # noqa: E402
from edgekd.lm.losses import TopKTargets, distill_loss, lm_cross_entropy  # noqa: E402
from edgekd.lm.models import LMShape, build_lm, gpt2_config, parameter_count  # noqa: E402
from edgekd.runtimes.decoder_quantize import quantize_decoder  # noqa: E402
from edgekd.runtimes.ort import OnnxDecoder  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
VOCAB, CONTEXT, BATCH, TOP_K, TEMPERATURE = 4096, 128, 16, 32, 2.0
TEACHERS = {"T4x256": LMShape(4, 256, 4, CONTEXT), "T6x384": LMShape(6, 384, 6, CONTEXT)}
STUDENTS = {"S2x128": LMShape(2, 128, 2, CONTEXT), "S3x192": LMShape(3, 192, 3, CONTEXT)}
PROMPT, NEW_TOKENS, DECODE_REPEATS = 32, 64, 3
# The benchmark: 60 minutes in all. Plans fill only PLAN_FRACTION of it: the probe times a few steps on a
# machine shared with other jobs, so real steps can be slower; the rest is the margin.
BUDGET_SECONDS, PLAN_FRACTION, TEACHER_SHARE = 3600, 0.6, 0.5
GENERATION_PROMPTS = 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3, help="timed steps per model (after one warm-up step)")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--lock", default="not stated", help="whether the run holds /tmp/edgekd-heavy.lock: recorded as given")
    parser.add_argument("--render", type=Path, help="only rewrite the .md (with its sizing plans) from this lm_probe.json")
    smoke.add_option(parser)
    args = parser.parse_args()
    if args.render:
        result = json.loads(args.render.read_text())
        write_text_atomic(args.render.with_suffix(".md"), markdown(result))
        print(markdown(result))
        return
    sizes = {"vocab": VOCAB, "teachers": TEACHERS, "students": STUDENTS, "batch": BATCH}
    if args.smoke:
        args.results = smoke.folder("lm_probe") / "results"
        args.steps = 1
        sizes = {"vocab": 300, "teachers": {"T2x64": LMShape(2, 64, 2, 32)}, "students": {"S1x32": LMShape(1, 32, 1, 32)}, "batch": 2}
    started, load_before = time.perf_counter(), os.getloadavg()
    torch.manual_seed(0)
    corpus = stdlib_corpus()
    if args.smoke:  # a few files: the code path, not the numbers
        corpus = Corpus(corpus.root, corpus.source, {s: names[:8] for s, names in corpus.files.items()}, corpus.fractions, corpus.file_list_sha256)
    with tempfile.TemporaryDirectory(prefix="edgekd-lm-probe-") as work:
        data = corpus_costs(corpus, sizes["vocab"], Path(work))
        train_blocks = blocks(data.pop("train_stream"), next(iter(sizes["students"].values())).context)
        models = {name: model_costs(shape, data["vocab_size"], train_blocks, sizes["batch"], args.steps, Path(work), name, teacher=True)
                  for name, shape in sizes["teachers"].items()}
        models |= {name: model_costs(shape, data["vocab_size"], train_blocks, sizes["batch"], args.steps, Path(work), name, teacher=False)
                   for name, shape in sizes["students"].items()}
    result = {"smoke": bool(args.smoke), "lock": args.lock, "corpus": data, "batch": sizes["batch"], "top_k": TOP_K,
              "models": models, "probe_seconds": round(time.perf_counter() - started, 1),
              "load_average_1min": {"start": round(load_before[0], 2), "end": round(os.getloadavg()[0], 2)}, "environment": describe()}
    write_json_atomic(args.results / "lm_probe.json", result)
    write_text_atomic(args.results / "lm_probe.md", markdown(result))
    print(markdown(result))


def corpus_costs(corpus: Corpus, vocab: int, work: Path) -> dict:
    started = time.perf_counter()
    tokenizer = LMTokenizer(train_on_corpus(corpus, vocab, work / "tokenizer.json"))
    train_seconds = time.perf_counter() - started
    started = time.perf_counter()
    stream = tokenizer.encode_documents(corpus.texts("train"))
    encode_seconds = time.perf_counter() - started
    report = summary(corpus, tokenizer.count)
    return {**report, "vocab_size": tokenizer.vocab_size, "tokenizer_train_seconds": round(train_seconds, 2),
            "encode_train_seconds": round(encode_seconds, 2), "train_stream": stream}


def model_costs(shape: LMShape, vocab: int, train_blocks: np.ndarray, batch: int, steps: int, work: Path, name: str, teacher: bool) -> dict:
    model = build_lm(gpt2_config(vocab, shape, eos_id=0))
    ids = torch.from_numpy(train_blocks[:batch].astype(np.int64))
    row = {"shape": asdict(shape), "params": parameter_count(model), "train_step_seconds": _train_step(model, ids, steps)}
    if teacher:
        row["forward_topk_seconds"] = _timed(lambda: _teacher_forward(model, ids), steps)
    else:
        row["kd_step_seconds"] = _train_step(model, ids, steps, kd=True)
    row["tokens_per_train_step"] = int(ids.numel())
    row["decode"] = decode_costs(model, work / f"{name}.onnx", variants=not teacher)
    return row


def _train_step(model, ids: torch.Tensor, steps: int, kd: bool = False) -> float:
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    # Stand-in teacher targets of the cache's shape: sorted random logits, a plausible log-sum-exp.
    values = torch.randn(*ids.shape, TOP_K).sort(-1, descending=True).values
    targets = TopKTargets(values.half(), torch.randint(0, model.config.vocab_size, (*ids.shape, TOP_K)), values[..., 0] + 3.0)

    def step():
        optimizer.zero_grad(set_to_none=True)
        logits = model(input_ids=ids).logits
        loss = distill_loss(logits, ids, targets, TEMPERATURE, alpha=0.5)[0] if kd else lm_cross_entropy(logits, ids)
        loss.backward()
        optimizer.step()

    seconds = _timed(step, steps)
    model.eval()
    return seconds


@torch.no_grad()
def _teacher_forward(model, ids: torch.Tensor) -> None:
    logits = model(input_ids=ids).logits.float()
    logits.topk(TOP_K, dim=-1)
    torch.logsumexp(logits / TEMPERATURE, dim=-1)


def _timed(fn, steps: int) -> float:
    """Median seconds of `steps` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return round(statistics.median(times), 4)


def decode_costs(model, path: Path, variants: bool) -> dict:
    started = time.perf_counter()
    export_decoder(model, path)
    out = {"export_seconds": round(time.perf_counter() - started, 1), "fp32": _decode(path, path)}
    if variants:
        for method in ("dynamic", "nbits8", "nbits4"):
            out[method] = _decode(quantize_decoder(path, path.with_name(f"{path.stem}-{method}.onnx"), method), path)
    return out


def _decode(path: Path, reference: Path) -> dict:
    decoder = OnnxDecoder(path)
    prompt = np.arange(1, min(PROMPT, decoder.context // 2) + 1)
    new_tokens = min(NEW_TOKENS, decoder.context - len(prompt))
    runs = [generate(decoder, prompt, new_tokens).timing() for _ in range(DECODE_REPEATS + 1)][1:]  # the first warms up
    return {"bytes": path.stat().st_size, "tokens_per_second": round(statistics.median(r["tokens_per_second"] for r in runs), 1),
            "time_to_first_token_ms": round(statistics.median(r["time_to_first_token_ms"] for r in runs), 2),
            "per_token_p50_ms": round(statistics.median(r["per_token_ms"]["p50"] for r in runs), 3),
            "per_token_p99_ms": round(statistics.median(r["per_token_ms"]["p99"] for r in runs), 3)}


def plans(result: dict) -> list[dict]:
    """For each teacher x student: the steps that fill PLAN_FRACTION of the budget, from the measured costs.

    Fixed: tokenizer training, encoding every split (train's rate), perplexity of four models on the test split
    (forward passes at the teacher's or student's measured rate), two exports and the generation checks.
    The rest is split TEACHER_SHARE to teacher training, the remainder to the two students (scratch and KD,
    the same steps) plus the teacher's pass over the blocks the students see (the top-k cache; charged per
    step, an over-estimate once students see a block twice, since the cache is filled once)."""
    corpus, out = result["corpus"], []
    splits = corpus["splits"]
    encode_all = corpus["encode_train_seconds"] * sum(s["bytes"] for s in splits.values()) / max(1, splits["train"]["bytes"])
    for t_name, teacher in ((n, r) for n, r in result["models"].items() if "forward_topk_seconds" in r):
        for s_name, student in ((n, r) for n, r in result["models"].items() if "kd_step_seconds" in r):
            tokens_per_step = student["tokens_per_train_step"]
            teacher_forward_per_token = teacher["forward_topk_seconds"] / tokens_per_step
            student_forward_per_token = student["train_step_seconds"] / 3 / tokens_per_step  # forward ~ 1/3 of a step
            test_tokens = splits["test"]["tokens"]
            generation = GENERATION_PROMPTS * NEW_TOKENS * (2 / student["decode"]["fp32"]["tokens_per_second"]
                                                             + 1 / teacher["decode"]["fp32"]["tokens_per_second"]) * 3  # torch is slower
            fixed = (corpus["tokenizer_train_seconds"] + encode_all + test_tokens * (teacher_forward_per_token + 3 * student_forward_per_token)
                     + teacher["decode"]["export_seconds"] + student["decode"]["export_seconds"] + generation)
            training = BUDGET_SECONDS * PLAN_FRACTION - fixed
            teacher_steps = int(training * TEACHER_SHARE / teacher["train_step_seconds"])
            per_student_step = student["train_step_seconds"] + student["kd_step_seconds"] + teacher["forward_topk_seconds"]
            student_steps = int(training * (1 - TEACHER_SHARE) / per_student_step)
            out.append({"teacher": t_name, "student": s_name, "fixed_seconds": round(fixed), "teacher_steps": teacher_steps,
                        "student_steps": student_steps, "teacher_epochs": round(teacher_steps * tokens_per_step / splits["train"]["tokens"], 2),
                        "student_epochs": round(student_steps * tokens_per_step / splits["train"]["tokens"], 2),
                        "speed_ratio": round(student["decode"]["fp32"]["tokens_per_second"] / teacher["decode"]["fp32"]["tokens_per_second"], 2),
                        "param_ratio": round(teacher["params"] / student["params"], 1)})
    return out


def markdown(result: dict) -> str:
    corpus = result["corpus"]
    cpu = result["environment"]["cpu"]
    lines = [f"# Language-model timing probe{' (SMOKE: meaningless numbers)' if result['smoke'] else ''}", "",
             f"CPU: {cpu.get('model')} ({result['environment']['usable_cpus']} usable cores), flags: "
             f"{' '.join(f for f in ('avx2', 'avx512f', 'avx512_vnni', 'avx_vnni', 'amx_int8') if f in cpu.get('flags', []))}; "
             f"heavy lock: {result['lock']}; probe took {result['probe_seconds']} s; 1-min load average "
             f"{result.get('load_average_1min', 'not recorded')} (2 would be this probe alone).", "",
             f"Corpus `{corpus['source']}` ({corpus['root']}), file list sha256 `{corpus['file_list_sha256'][:16]}...`; "
             f"tokenizer: byte-level BPE, {corpus['vocab_size']} tokens, trained on train in {corpus['tokenizer_train_seconds']} s; "
             f"encoding train took {corpus['encode_train_seconds']} s.", "",
             "| split | files | bytes | tokens |", "|---|---|---|---|"]
    lines += [f"| {s} | {r['files']} | {r['bytes']} | {r['tokens']} |" for s, r in corpus["splits"].items()]
    lines += ["", f"Batch {result['batch']} x context tokens per step; top-k {result['top_k']}. Seconds are medians.", "",
              "| model | layers x width | params | train step s | teacher fwd+top-k s | KD step s | export s "
              "| fp32 tok/s | dynamic tok/s | nbits8 tok/s | nbits4 tok/s | fp32 TTFT ms | fp32 p50/p99 ms |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, row in result["models"].items():
        decode = row["decode"]
        speed = [str(decode[m]["tokens_per_second"]) if m in decode else "" for m in ("fp32", "dynamic", "nbits8", "nbits4")]
        lines.append(f"| {name} | {row['shape']['layers']} x {row['shape']['width']} | {row['params']} | {row['train_step_seconds']} | "
                     f"{row.get('forward_topk_seconds', '')} | {row.get('kd_step_seconds', '')} | {decode['export_seconds']} | {' | '.join(speed)} | "
                     f"{decode['fp32']['time_to_first_token_ms']} | {decode['fp32']['per_token_p50_ms']}/{decode['fp32']['per_token_p99_ms']} |")
    lines += ["", f"Sizing plans: {PLAN_FRACTION:.0%} of {BUDGET_SECONDS // 60} min planned, the rest is margin; "
              f"teacher training gets {TEACHER_SHARE:.0%} of the training time (see plans() for what is counted).", "",
              "| teacher | student | fixed s | teacher steps (epochs) | student steps each (epochs) | student/teacher fp32 tok/s | teacher/student params |",
              "|---|---|---|---|---|---|---|"]
    lines += [f"| {p['teacher']} | {p['student']} | {p['fixed_seconds']} | {p['teacher_steps']} ({p['teacher_epochs']}) | "
              f"{p['student_steps']} ({p['student_epochs']}) | {p['speed_ratio']} | {p['param_ratio']} |" for p in plans(result)]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
