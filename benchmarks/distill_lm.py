"""Language models (issue 16): does a GPT-2-style student distilled from a teacher's cached top-k logits beat the
same student trained from scratch, and what do ONNX export and int8 cost in perplexity and buy in speed?

Corpus: the standard library's sources split by file (edgekd.lm.corpus), a byte-level BPE tokenizer trained on
the train split. Teacher 4 x 256, students 2 x 224 (4 heads), context 128, batch 16. The student's width is where int8 pays: a
2 x 128 student decodes ~150 small operators per token around 9 small products, so int8 sped it only x1.13
(results at commit 528dd67); at width 224 the products dominate a step (docs/lm.md, "Student width").

* The teacher trains once and is kept under benchmarks/.work/distill_lm, keyed by a digest of everything that
  makes it (corpus file list, tokenizer file, shape, steps, learning rate, seed); a rerun reuses it. Its training
  time is reported apart from the run's, and both totals are in the results.
* Scratch and KD students: same initial weights, same blocks in the same order, same steps and schedule. KD is
  alpha x T^2 forward KL (top-k + tail bucket, edgekd.lm.losses) + (1 - alpha) x next-token cross-entropy, with
  the teacher's top-k logits cached on disk once (edgekd.lm.teacher.cached_targets).
* Export: one ONNX decoder with a KV cache per model (checked against PyTorch by the exporter); int8 for the
  student: dynamic int8 (7-bit weights where this CPU's int8 kernels saturate, edgekd/quant/host.py) or
  MatMulNBits 8-bit: of those whose validation perplexity is within 1.03 x the fp32 student's, the one that
  decodes faster on validation prompts; chosen on val, reported on test (both candidates' test speeds are shown).
* Speed: torch-free greedy generation (edgekd.lang.generate) at batch 1, 20 held-out test prompts of 32 tokens x
  64 new tokens, models interleaved per prompt, several rounds; tokens/s is the median decode rate.
* generation_match: ONNX greedy against PyTorch greedy (the model's own KV cache) on the same 20 prompts.

    python benchmarks/distill_lm.py --teacher-only   # train and keep the teacher (reported apart)
    flock /tmp/edgekd-heavy.lock python benchmarks/distill_lm.py
    python benchmarks/distill_lm.py --temperature 2  # another KD temperature or --alpha (fills its own top-k cache)
    python benchmarks/distill_lm.py --smoke          # tiny sizes, a temporary folder: does it still run? (--quick: same)

Writes benchmarks/results/distill_lm.json and .md.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import smoke  # noqa: E402  (benchmarks/smoke.py, beside this script)
import torch  # noqa: E402

from edgekd.core.environment import describe  # noqa: E402
from edgekd.core.fileio import read_json, sha256_of, write_json_atomic, write_text_atomic  # noqa: E402
from edgekd.lang.generate import generate  # noqa: E402
from edgekd.lang.generation_bench import greedy_agreement, speed_at_fastest_threads  # noqa: E402
from edgekd.lang.lm_tokenizer import LMTokenizer, blocks, train_on_corpus  # noqa: E402
from edgekd.lang.perplexity import onnx_perplexity  # noqa: E402
from edgekd.lm.corpus import Corpus, stdlib_corpus  # noqa: E402
from edgekd.lm.export import export_decoder  # noqa: E402
from edgekd.lm.losses import TopKTargets, distill_loss, lm_cross_entropy  # noqa: E402
from edgekd.lm.models import LMShape, build_lm, gpt2_config, load_pretrained, parameter_count, student_config, torch_greedy  # noqa: E402
from edgekd.lm.teacher import cached_targets  # noqa: E402
from edgekd.lm.training import block_batches, torch_perplexity, train_lm  # noqa: E402
from edgekd.quant.host import saturates_8bit_products  # noqa: E402
from edgekd.runtimes.decoder_quantize import quantize_decoder  # noqa: E402
from edgekd.runtimes.ort import OnnxDecoder  # noqa: E402
from edgekd.runtimes.registry import load_decoder  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
WORK = ROOT / "benchmarks" / ".work" / "distill_lm"
TEACHER_FORMAT = "edgekd.bench.distill_lm-teacher/1"
INT8_MAX_RATIO = 1.03  # the int8 target, also the rule that picks the int8 method on val


@dataclass(frozen=True)
class Sizes:
    vocab: int = 4096
    context: int = 128
    batch: int = 16
    teacher: LMShape = LMShape(4, 256, 4, 128)
    student: LMShape = LMShape(2, 224, 4, 128)
    teacher_steps: int = 240
    teacher_lr: float = 1.5e-3
    student_steps: int = 200
    student_lr: float = 3e-3
    top_k: int = 32
    # T = 1: at T = 2 (the results at commit 0f32b67) the KD student was worse than scratch (val perplexity 217
    # against 172); a T = 1 run of the same student reached 87 on val (`--temperature 1`, the default since).
    temperature: float = 1.0
    alpha: float = 0.5
    val_blocks: int = 256       # validation: learning checks and the int8 choice
    test_blocks: int = 0        # 0: every test block
    prompts: int = 20
    prompt_tokens: int = 32
    new_tokens: int = 64
    speed_rounds: int = 3
    # onnxruntime intra-op threads, each model timed at each: at batch 1 a small decoder's products are too small
    # to split, and on this 2-core machine 2 threads halved the fp32 student's tokens/s (thread hand-offs), so every
    # speed and ratio below is each model at its own faster setting (all settings are in the results).
    threads: tuple[int, ...] = (1, 2)
    seed: int = 0


SMOKE = Sizes(vocab=300, context=32, batch=4, teacher=LMShape(2, 64, 2, 32), student=LMShape(1, 32, 1, 32), teacher_steps=6,
              student_steps=4, top_k=8, val_blocks=4, test_blocks=16, prompts=3, prompt_tokens=8, new_tokens=8, speed_rounds=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--work", type=Path, default=WORK, help="where the tokenizer, the teacher and the top-k cache are kept")
    parser.add_argument("--teacher-only", action="store_true", help="train (or find) the teacher and stop")
    parser.add_argument("--quick", action="store_true", help="the same as --smoke")
    parser.add_argument("--temperature", type=float, help=f"KD temperature (default {Sizes.temperature})")
    parser.add_argument("--alpha", type=float, help=f"KD weight against cross-entropy (default {Sizes.alpha})")
    smoke.add_option(parser)
    args = parser.parse_args()
    overrides = {name: getattr(args, name) for name in ("temperature", "alpha") if getattr(args, name) is not None}
    sizes, quick = replace(Sizes(), **overrides), args.smoke or args.quick
    if quick:
        folder = smoke.folder("distill_lm")
        args.results, args.work, sizes = folder / "results", folder / "work", replace(SMOKE, **overrides)
    started = time.perf_counter()
    torch.manual_seed(sizes.seed)
    corpus = stdlib_corpus()
    if quick:  # a few files: the code path, not the numbers
        corpus = Corpus(corpus.root, corpus.source, {s: names[:8] for s, names in corpus.files.items()}, corpus.fractions,
                        corpus.file_list_sha256)
    data = prepare_data(corpus, sizes, args.work)
    teacher, teacher_record = trained_teacher(data, sizes, args.work)
    if args.teacher_only:
        print(json.dumps(teacher_record, indent=1))
        return
    result = run(data, sizes, teacher, teacher_record, args.work)
    result = {"smoke": bool(quick), **result, "total_seconds": round(time.perf_counter() - started, 1)}
    result["total_seconds_including_teacher_training"] = round(result["total_seconds"] + (
        teacher_record["train_seconds"] if teacher_record["reused"] else 0.0), 1)
    result["targets"] = targets(result)
    write_json_atomic(args.results / "distill_lm.json", result)
    write_text_atomic(args.results / "distill_lm.md", markdown(result))
    print(markdown(result))


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# ---------------------------------------------------------------- data


def prepare_data(corpus: Corpus, sizes: Sizes, work: Path) -> dict:
    """Tokenizer (trained on train once, kept in `work`), the three splits as blocks, and the prompts."""
    work.mkdir(parents=True, exist_ok=True)
    tokenizer_path = work / f"tokenizer-{corpus.file_list_sha256[:12]}-{sizes.vocab}.json"
    if not tokenizer_path.is_file():
        train_on_corpus(corpus, sizes.vocab, tokenizer_path)
    tokenizer = LMTokenizer(tokenizer_path)
    started = time.perf_counter()
    split_blocks = {split: blocks(tokenizer.encode_documents(corpus.texts(split)), sizes.context) for split in ("train", "val", "test")}
    log(f"corpus encoded in {time.perf_counter() - started:.1f} s: " + ", ".join(f"{s} {len(b)} blocks" for s, b in split_blocks.items()))
    return {"corpus": corpus, "tokenizer": tokenizer, "blocks": split_blocks, "prompts": spread_prompts(split_blocks["test"], sizes),
            "val_prompts": spread_prompts(split_blocks["val"][: sizes.val_blocks], sizes),
            "corpus_summary": {**corpus.describe(), "blocks": {s: len(b) for s, b in split_blocks.items()},
                               "tokens": {s: int(b.size) for s, b in split_blocks.items()}}}


def spread_prompts(split: np.ndarray, sizes: Sizes) -> list[np.ndarray]:
    """The first tokens of blocks spread over a split (one per block, no two from one block)."""
    rows = np.linspace(0, len(split) - 1, sizes.prompts).astype(int)
    return [split[row, : sizes.prompt_tokens] for row in rows]


def order(count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).permutation(count)


# ---------------------------------------------------------------- training (edgekd.lm.training's loop)


def teacher_key(data: dict, sizes: Sizes) -> str:
    settings = {"format": TEACHER_FORMAT, "corpus": data["corpus"].file_list_sha256, "tokenizer": sha256_of(data["tokenizer"].path),
                "shape": asdict(sizes.teacher), "steps": sizes.teacher_steps, "lr": sizes.teacher_lr, "batch": sizes.batch,
                "seed": sizes.seed}
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def trained_teacher(data: dict, sizes: Sizes, work: Path):
    """The teacher from `work` when an earlier run trained it with the same settings, else trained now and kept."""
    folder = work / f"teacher-{teacher_key(data, sizes)[:16]}"
    record_path = folder / "edgekd_teacher.json"
    if record_path.is_file():
        record = read_json(record_path)
        log(f"teacher reused from {folder} (trained in {record['train_seconds']} s by an earlier run)")
        return load_pretrained(folder), {**record, "reused": True}
    config = gpt2_config(data["tokenizer"].vocab_size, sizes.teacher, data["tokenizer"].eos_id)
    model = build_lm(config, seed=sizes.seed)
    train_blocks = data["blocks"]["train"]
    rows = order(len(train_blocks), sizes.seed)
    stats = train_lm(model, block_batches(train_blocks, rows, sizes.batch), sizes.teacher_steps, sizes.teacher_lr,
                     lambda logits, ids, step: lm_cross_entropy(logits, ids), "teacher", log)
    record = {"folder": str(folder.relative_to(ROOT)) if folder.is_relative_to(ROOT) else str(folder), "shape": asdict(sizes.teacher),
              "steps": sizes.teacher_steps, "lr": sizes.teacher_lr, "train_seconds": stats["seconds"], "final_loss": stats["final_loss"],
              "train_tokens": sizes.teacher_steps * sizes.batch * sizes.context,
              "epochs": round(sizes.teacher_steps * sizes.batch / len(train_blocks), 3), "trained_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "load_average_1min_after": round(os.getloadavg()[0], 2)}
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(str(partial), safe_serialization=True)
    write_json_atomic(partial / "edgekd_teacher.json", record)
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)  # only a complete folder carries the name a rerun looks for
    return model, {**record, "reused": False}


def students(data: dict, sizes: Sizes, teacher, work: Path) -> dict:
    """Scratch and KD students: same init, same blocks in the same order, same steps and schedule."""
    train_blocks = data["blocks"]["train"]
    rows = order(len(train_blocks), sizes.seed + 1)[: sizes.student_steps * sizes.batch]
    seen = np.ascontiguousarray(train_blocks[rows])
    config = student_config(teacher.config, layers=sizes.student.layers, width=sizes.student.width, heads=sizes.student.heads)
    started = time.perf_counter()
    cache = cached_targets(teacher, seen, work / "topk", sizes.top_k, sizes.temperature, batch_size=sizes.batch)
    cache_seconds = round(time.perf_counter() - started, 1)
    log(f"teacher top-{sizes.top_k} cache for {len(seen)} blocks: {cache_seconds} s")
    batches = block_batches(seen, np.arange(len(seen)), sizes.batch)
    scratch = build_lm(config, seed=sizes.seed + 1)
    scratch_stats = train_lm(scratch, batches, sizes.student_steps, sizes.student_lr,
                             lambda logits, ids, step: lm_cross_entropy(logits, ids), "scratch student", log)

    def kd_loss(logits, ids, step):
        values, indices, lse = (torch.from_numpy(a) for a in cache.batch(np.arange(step * sizes.batch, (step + 1) * sizes.batch)))
        return distill_loss(logits, ids, TopKTargets(values, indices, lse), sizes.temperature, sizes.alpha)[0]

    kd = build_lm(config, seed=sizes.seed + 1)
    kd_stats = train_lm(kd, batches, sizes.student_steps, sizes.student_lr, kd_loss, "KD student", log)
    return {"scratch": (scratch, scratch_stats), "kd": (kd, kd_stats), "cache_seconds": cache_seconds, "cache_folder": cache.folder}


# ---------------------------------------------------------------- export, int8, speed


def int8_choice(student_onnx: Path, val: np.ndarray, val_prompts: list[np.ndarray], fp32_val: float, folder: Path,
                sizes: Sizes) -> dict:
    """Each int8 method's val perplexity and decode speed on val prompts; the fastest of those within
    INT8_MAX_RATIO x fp32 is chosen, as the pipeline ships the fastest candidate within the gate. Chosen on the
    validation split so that the test prompts' speed, which the results report, is not the maximum of the
    measurements that picked it."""
    reduce_range = saturates_8bit_products()
    candidates = {}
    for method in ("dynamic", "nbits8"):
        path = quantize_decoder(student_onnx, folder / f"student-{method}.onnx", method, reduce_range=reduce_range)
        candidates[method] = {"path": path, "val_perplexity": onnx_perplexity(OnnxDecoder(path), val)}
        log(f"int8 {method}: val perplexity {candidates[method]['val_perplexity']:.3f} (fp32 {fp32_val:.3f})")
    speed, _ = fastest_setting({m: c["path"] for m, c in candidates.items()}, val_prompts, sizes, rounds=2)
    for method, candidate in candidates.items():
        candidate["val_tokens_per_second"] = speed[method]["tokens_per_second"]
    log("int8 decode tokens/s on val prompts: " + ", ".join(f"{m} {c['val_tokens_per_second']}" for m, c in candidates.items()))
    passing = [m for m, c in candidates.items() if c["val_perplexity"] <= INT8_MAX_RATIO * fp32_val]
    chosen = (max(passing, key=lambda m: candidates[m]["val_tokens_per_second"]) if passing
              else min(candidates, key=lambda m: candidates[m]["val_perplexity"]))
    return {"chosen": chosen, "reduce_range": reduce_range, "candidates": candidates}


def fastest_setting(paths: dict[str, Path], prompts: list[np.ndarray], sizes: Sizes, rounds: int) -> tuple[dict, dict]:
    return speed_at_fastest_threads(lambda threads: {name: load_decoder(path, threads) for name, path in paths.items()},
                                    prompts, sizes.new_tokens, rounds, sizes.threads)


def greedy_match(model, onnx_path: Path, prompts: list[np.ndarray], new_tokens: int) -> dict:
    decoder = OnnxDecoder(onnx_path)
    equal = sum(torch_greedy(model, prompt, new_tokens) == generate(decoder, prompt, new_tokens).tokens for prompt in prompts)
    return {"prompts": len(prompts), "new_tokens": new_tokens, "equal": int(equal)}


# ---------------------------------------------------------------- the run


def run(data: dict, sizes: Sizes, teacher, teacher_record: dict, work: Path) -> dict:
    val, test = data["blocks"]["val"][: sizes.val_blocks], data["blocks"]["test"][: sizes.test_blocks or None]
    trained = students(data, sizes, teacher, work)
    (scratch, scratch_stats), (kd, kd_stats) = trained["scratch"], trained["kd"]
    started = time.perf_counter()
    ppl = {name: {"val": torch_perplexity(model, val), "test": torch_perplexity(model, test)}
           for name, model in (("teacher", teacher), ("scratch", scratch), ("student", kd))}
    log("perplexity (torch): " + ", ".join(f"{n} val {p['val']:.2f} test {p['test']:.2f}" for n, p in ppl.items()))
    onnx_folder = work / "onnx"
    onnx_folder.mkdir(parents=True, exist_ok=True)
    paths = {"teacher": export_decoder(teacher, onnx_folder / "teacher.onnx"), "student": export_decoder(kd, onnx_folder / "student.onnx")}
    student_onnx_val = onnx_perplexity(OnnxDecoder(paths["student"]), val)
    choice = int8_choice(paths["student"], val, data["val_prompts"], student_onnx_val, onnx_folder, sizes)
    paths["int8"] = choice["candidates"][choice["chosen"]]["path"]
    others = {f"int8_{m}": c["path"] for m, c in choice["candidates"].items() if m != choice["chosen"]}
    onnx_test = {name: onnx_perplexity(OnnxDecoder(path), test) for name, path in
                 [("student", paths["student"])] + [(f"int8_{m}", c["path"]) for m, c in choice["candidates"].items()]}
    log("perplexity (onnx, test): " + ", ".join(f"{n} {p:.3f}" for n, p in onnx_test.items()))
    evaluation_seconds = time.perf_counter() - started
    started = time.perf_counter()
    speed, speed_by_threads = fastest_setting({**paths, **others}, data["prompts"], sizes, sizes.speed_rounds)
    match = greedy_match(kd, paths["student"], data["prompts"], sizes.new_tokens)
    int8_agreement = greedy_agreement(OnnxDecoder(paths["student"]), OnnxDecoder(paths["int8"]), data["prompts"], sizes.new_tokens)
    generation_seconds = time.perf_counter() - started
    log(f"speed: {json.dumps({n: s['tokens_per_second'] for n, s in speed.items()})}; greedy match {match}")

    def row(model, path, perplexity):
        return {"params": parameter_count(model), "perplexity": round(perplexity, 4), "onnx_bytes": path.stat().st_size, **speed_of(path)}

    def speed_of(path):
        return next(speed[name] for name, p in paths.items() if p == path)

    chosen = choice["chosen"]
    return {
        "teacher": {**row(teacher, paths["teacher"], ppl["teacher"]["test"]), "val_perplexity": round(ppl["teacher"]["val"], 4),
                    "shape": asdict(sizes.teacher), "training": {k: v for k, v in teacher_record.items() if k != "folder"}},
        "student": {**row(kd, paths["student"], ppl["student"]["test"]), "val_perplexity": round(ppl["student"]["val"], 4),
                    "onnx_perplexity": round(onnx_test["student"], 4), "onnx_val_perplexity": round(student_onnx_val, 4),
                    "shape": asdict(sizes.student), "training": kd_stats},
        "int8": {**row(kd, paths["int8"], onnx_test[f"int8_{chosen}"]), "method": chosen, "reduce_range": choice["reduce_range"],
                 "val_perplexity": round(choice["candidates"][chosen]["val_perplexity"], 4),
                 "greedy_agreement_with_fp32_onnx": int8_agreement,
                 "candidates": {m: {"val_perplexity": round(c["val_perplexity"], 4), "test_perplexity": round(onnx_test[f"int8_{m}"], 4),
                                    "val_tokens_per_second": c["val_tokens_per_second"],
                                    "tokens_per_second": speed["int8" if m == chosen else f"int8_{m}"]["tokens_per_second"],
                                    "onnx_bytes": c["path"].stat().st_size} for m, c in choice["candidates"].items()}},
        "scratch": {"params": parameter_count(scratch), "perplexity": round(ppl["scratch"]["test"], 4),
                    "val_perplexity": round(ppl["scratch"]["val"], 4), "training": scratch_stats},
        "generation_match": match,
        "speed_by_threads": {str(t): {name: row["tokens_per_second"] for name, row in rows.items()} for t, rows in speed_by_threads.items()},
        "settings": {**asdict(sizes), "teacher": asdict(sizes.teacher), "student": asdict(sizes.student),
                     "kd_loss": f"{sizes.alpha} x T^2 forward KL (top-{sizes.top_k} + tail bucket) + {1 - sizes.alpha:g} x CE",
                     "speed": "onnxruntime CPU, batch 1, greedy, median decode tokens/s over prompts x rounds, first token excluded, "
                              "each model at its faster thread count"},
        "corpus": data["corpus_summary"],
        "seconds": {"teacher_training": teacher_record["train_seconds"], "teacher_reused": teacher_record["reused"],
                    "topk_cache": trained["cache_seconds"], "scratch_training": scratch_stats["seconds"], "kd_training": kd_stats["seconds"],
                    "evaluation_export_int8": round(evaluation_seconds, 1), "generation": round(generation_seconds, 1)},
        "load_average_1min_end": round(os.getloadavg()[0], 2),
        "environment": describe(),
    }


def targets(r: dict) -> dict:
    return {"kd_perplexity_at_most_0.95_scratch": r["student"]["perplexity"] <= 0.95 * r["scratch"]["perplexity"],
            "int8_perplexity_at_most_1.03_fp32": r["int8"]["perplexity"] <= INT8_MAX_RATIO * r["student"]["onnx_perplexity"],
            "greedy_onnx_equals_torch": r["generation_match"]["equal"] == r["generation_match"]["prompts"],
            "student_at_least_2x_teacher_tokens_per_second": r["student"]["tokens_per_second"] >= 2 * r["teacher"]["tokens_per_second"],
            "int8_at_least_1.3x_student_tokens_per_second": r["int8"]["tokens_per_second"] >= 1.3 * r["student"]["tokens_per_second"],
            "run_under_60_minutes": r["total_seconds"] <= 3600,
            "run_under_60_minutes_including_teacher_training": r["total_seconds_including_teacher_training"] <= 3600}


def markdown(r: dict) -> str:
    s, t, k, q, c = r["settings"], r["teacher"], r["student"], r["int8"], r["corpus"]
    tr = t["training"]
    lines = [f"# Language-model distillation (issue 16){' (SMOKE: meaningless numbers)' if r['smoke'] else ''}", "",
             smoke.machine_line(r["environment"]) + f"; 1-min load average at the end {r['load_average_1min_end']}.", "",
             f"Corpus `{c['source']}` ({c['root']}), file list sha256 `{c['file_list_sha256']}`; files {c['files']}; "
             f"blocks of {s['context']} tokens {c['blocks']}. Byte-level BPE {s['vocab']} trained on train.", "",
             f"Teacher {s['teacher']['layers']} x {s['teacher']['width']}, students {s['student']['layers']} x {s['student']['width']}; "
             f"batch {s['batch']}; students {s['student_steps']} steps each (lr {s['student_lr']}), same init and blocks; "
             f"KD: {s['kd_loss']}, T = {s['temperature']}. Perplexity on {s['test_blocks'] or 'all'} of {c['blocks']['test']} test blocks "
             f"(val: first {s['val_blocks']} blocks, used only to choose the int8 method). Speed: {s['speed']}, "
             f"{s['prompts']} prompts of {s['prompt_tokens']} tokens x {s['new_tokens']} new tokens x {s['speed_rounds']} rounds.", "",
             "| model | params | test perplexity | val perplexity | tokens/s | threads | TTFT ms | p50 / p99 ms | ONNX bytes |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, row in (("teacher", t), ("student (KD), fp32 ONNX", k), (f"student int8 ({q['method']})", q)):
        lines.append(f"| {name} | {row['params']:,} | {row['perplexity']} | {row['val_perplexity']} | {row['tokens_per_second']} | "
                     f"{row['threads']} | {row['time_to_first_token_ms']} | {row['per_token_p50_ms']} / {row['per_token_p99_ms']} | {row['onnx_bytes']:,} |")
    sc = r["scratch"]
    lines += [f"| student from scratch (same steps) | {sc['params']:,} | {sc['perplexity']} | {sc['val_perplexity']} | | | | | |", "",
              "Decode tokens/s at every thread count: " + "; ".join(f"{t} thread(s): " + ", ".join(f"{n} {v}" for n, v in rows.items())
                                                          for t, rows in r["speed_by_threads"].items()) + ".", "",
              f"The KD student's perplexity above is PyTorch's; its fp32 ONNX file gives {k['onnx_perplexity']} (the int8 target "
              f"compares with this). int8 candidates (reduce_range {q['reduce_range']}): " +
              "; ".join(f"{m}: val {v['val_perplexity']}, test {v['test_perplexity']}, {v['val_tokens_per_second']} tokens/s on val prompts, "
                        f"{v['tokens_per_second']} on test prompts, {v['onnx_bytes']:,} bytes" for m, v in q["candidates"].items()) +
              f". Chosen on val (the fastest within {INT8_MAX_RATIO} x the fp32 perplexity): {q['method']}."
              f" int8 greedy vs fp32 ONNX: token agreement {q['greedy_agreement_with_fp32_onnx']['token_agreement']}, "
              f"{q['greedy_agreement_with_fp32_onnx']['equal_sequences']} of {s['prompts']} continuations equal.", "",
              f"Generation match (fp32 ONNX greedy vs PyTorch greedy): {r['generation_match']['equal']} of {r['generation_match']['prompts']} "
              f"prompts x {r['generation_match']['new_tokens']} new tokens equal token for token.", "",
              f"Teacher: {tr['steps']} steps ({tr['epochs']} epoch), {tr['train_seconds']} s of training "
              f"({'reused from an earlier run of this script' if tr['reused'] else 'trained in this run'}). Seconds of this run: "
              + ", ".join(f"{n} {v}" for n, v in r["seconds"].items() if n not in ("teacher_training", "teacher_reused")) +
              f"; total {r['total_seconds']} s, {r['total_seconds_including_teacher_training']} s with the teacher's training.", "",
              "| target | met |", "|---|---|"]
    lines += [f"| {name} | {'yes' if met else '**no**'} |" for name, met in r["targets"].items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
