"""Language models (issue 16), a pilot: does sequence-level KD (Kim & Rush 2016: the student trains on the teacher's
own greedy continuations) help the student's perplexity, alone or interleaved with token-level KD?

Four students of the same size, initial weights, steps, batch and schedule, through the distill stage's own code
(edgekd.lm.distill_steps, as `distill.mode` selects it):

* scratch: next-token cross-entropy on corpus blocks;
* token: alpha x T^2 forward KL to the teacher's cached top-k logits (+ tail bucket) + (1 - alpha) x CE, same blocks;
* sequence: cross-entropy on the teacher's greedy continuations of prompts taken from the training blocks;
* both: the two kinds of step interleaved, half each.

The teacher, tokenizer and corpus are benchmarks/distill_lm.py's (its teacher is reused when that script's work
folder has it: `--teacher-work`), the students are its 2 x 128, for fewer steps: this is a pilot, not the
benchmark. Perplexity on the first val and test blocks.

    flock /tmp/edgekd-heavy.lock python benchmarks/distill_lm_modes.py --teacher-work benchmarks/.work/distill_lm
    python benchmarks/distill_lm_modes.py --smoke     # tiny sizes, a temporary folder: does it still run?

Writes benchmarks/results/distill_lm_modes.json and .md.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import distill_lm  # noqa: E402  (benchmarks/distill_lm.py, beside this script: its corpus, tokenizer and teacher)
import numpy as np  # noqa: E402
import smoke  # noqa: E402
import torch  # noqa: E402

from edgekd.core.environment import describe  # noqa: E402
from edgekd.core.fileio import write_json_atomic, write_text_atomic  # noqa: E402
from edgekd.lm.config import LMDistillConfig, LMSequenceConfig, LMTrainConfig  # noqa: E402
from edgekd.lm.corpus import Corpus, stdlib_corpus  # noqa: E402
from edgekd.lm.distill_steps import DistillSteps  # noqa: E402
from edgekd.lm.losses import lm_cross_entropy  # noqa: E402
from edgekd.lm.models import build_lm, parameter_count, student_config  # noqa: E402
from edgekd.lm.training import block_batches, torch_perplexity, train_lm  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
WORK = ROOT / "benchmarks" / ".work" / "distill_lm_modes"
MODES = ("token", "sequence", "both")


@dataclass(frozen=True)
class Pilot:
    student_steps: int = 80
    prompts: int = 1280  # = 80 steps x 16: mode sequence sees each continuation once
    prompt_tokens: int = 32
    new_tokens: int = 96
    generation_batch: int = 64
    share: float = 0.5
    test_blocks: int = 256


SMOKE_PILOT = Pilot(student_steps=4, prompts=8, prompt_tokens=8, new_tokens=16, generation_batch=4, test_blocks=16)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--work", type=Path, default=WORK, help="where this pilot keeps its top-k and sequence caches")
    parser.add_argument("--teacher-work", type=Path, default=distill_lm.WORK,
                        help="distill_lm.py's work folder: its tokenizer and teacher are reused from there (trained there if absent)")
    smoke.add_option(parser)
    args = parser.parse_args()
    # T = 2 pinned: the committed results were made with it (distill_lm.py's default was 2 then, 1 since).
    sizes, pilot = replace(distill_lm.Sizes(), temperature=2.0), Pilot()
    if args.smoke:
        folder = smoke.folder("distill_lm_modes")
        args.results, args.work, args.teacher_work = folder / "results", folder / "work", folder / "teacher"
        sizes, pilot = distill_lm.SMOKE, SMOKE_PILOT
    started = time.perf_counter()
    corpus = stdlib_corpus()
    if args.smoke:  # a few files: the code path, not the numbers
        corpus = Corpus(corpus.root, corpus.source, {s: names[:8] for s, names in corpus.files.items()}, corpus.fractions,
                        corpus.file_list_sha256)
    data = distill_lm.prepare_data(corpus, sizes, args.teacher_work)
    teacher, teacher_record = distill_lm.trained_teacher(data, sizes, args.teacher_work)
    result = {"smoke": bool(args.smoke), **run(data, sizes, pilot, teacher, teacher_record, args.work),
              "total_seconds": round(time.perf_counter() - started, 1)}
    write_json_atomic(args.results / "distill_lm_modes.json", result)
    write_text_atomic(args.results / "distill_lm_modes.md", markdown(result))
    print(markdown(result))


def settings_for(mode: str, sizes, pilot: Pilot) -> LMDistillConfig:
    train = LMTrainConfig(steps=pilot.student_steps, lr=sizes.student_lr, batch_size=sizes.batch)
    sequence = LMSequenceConfig(prompts=pilot.prompts, prompt_tokens=pilot.prompt_tokens, new_tokens=pilot.new_tokens,
                                batch_size=pilot.generation_batch, share=pilot.share)
    return LMDistillConfig(mode=mode, temperature=sizes.temperature, alpha=sizes.alpha, top_k=sizes.top_k, sequence=sequence, train=train)


def run(data: dict, sizes, pilot: Pilot, teacher, teacher_record: dict, work: Path) -> dict:
    train = data["blocks"]["train"]
    val, test = data["blocks"]["val"][: sizes.val_blocks], data["blocks"]["test"][: pilot.test_blocks]
    config = student_config(teacher.config, layers=sizes.student.layers, width=sizes.student.width, heads=sizes.student.heads)
    rows = {}

    def evaluate(name: str, model, stats: dict, extra: dict) -> None:
        rows[name] = {"val_perplexity": round(torch_perplexity(model, val), 4), "test_perplexity": round(torch_perplexity(model, test), 4),
                      "params": parameter_count(model), "training": stats, **extra}
        distill_lm.log(f"{name}: val {rows[name]['val_perplexity']}, test {rows[name]['test_perplexity']}")

    rows_order = distill_lm.order(len(train), sizes.seed + 1)[: pilot.student_steps * sizes.batch]
    scratch = build_lm(config, seed=sizes.seed + 1)
    stats = train_lm(scratch, block_batches(np.ascontiguousarray(train[rows_order]), np.arange(len(rows_order)), sizes.batch),
                     pilot.student_steps, sizes.student_lr, lambda logits, ids, step: lm_cross_entropy(logits, ids), "scratch", distill_lm.log)
    evaluate("scratch", scratch, stats, {"steps": {"token": 0, "sequence": 0}})
    for mode in MODES:
        started = time.perf_counter()
        steps = DistillSteps.prepare(settings_for(mode, sizes, pilot), teacher, train, work, sizes.seed)
        cache_seconds = round(time.perf_counter() - started, 1)
        distill_lm.log(f"{mode}: caches ready in {cache_seconds} s")
        student = build_lm(config, seed=sizes.seed + 1)
        stats = train_lm(student, steps.batch, pilot.student_steps, sizes.student_lr, steps.loss, mode, distill_lm.log)
        evaluate(mode, student, stats, {**steps.metrics(), "cache_seconds": cache_seconds})
    teacher_val = round(torch_perplexity(teacher, val), 4)
    return {"students": rows, "teacher": {"val_perplexity": teacher_val, "params": parameter_count(teacher), "shape": asdict(sizes.teacher),
                                          "training": {k: v for k, v in teacher_record.items() if k != "folder"}},
            "settings": {"pilot": asdict(pilot), "student": asdict(sizes.student), "batch": sizes.batch, "lr": sizes.student_lr,
                         "token_kd": f"{sizes.alpha} x T^2 forward KL (top-{sizes.top_k} + tail), T = {sizes.temperature}",
                         "val_blocks": len(val), "test_blocks": len(test), "context": sizes.context, "seed": sizes.seed},
            "corpus": data["corpus_summary"], "load_average_1min_end": round(os.getloadavg()[0], 2), "environment": describe()}


def markdown(r: dict) -> str:
    s, p, t = r["settings"], r["settings"]["pilot"], r["teacher"]
    scratch = r["students"]["scratch"]["test_perplexity"]
    lines = [f"# Sequence-level KD for language models: a pilot{' (SMOKE: meaningless numbers)' if r['smoke'] else ''}", "",
             smoke.machine_line(r["environment"]) + f"; 1-min load average at the end {r['load_average_1min_end']}.", "",
             f"Teacher {t['shape']['layers']} x {t['shape']['width']} (val perplexity {t['val_perplexity']}, "
             f"{t['training'].get('steps')} steps, {t['training'].get('epochs')} epoch), students {s['student']['layers']} x "
             f"{s['student']['width']}, {p['student_steps']} steps of {s['batch']} x {s['context']} tokens each, lr {s['lr']}, same "
             f"initial weights. Token KD: {s['token_kd']}. Sequence KD: the teacher's greedy continuations of {p['prompts']} prompts "
             f"({p['prompt_tokens']} tokens from the start of distinct training blocks) x {p['new_tokens']} new tokens, cross-entropy on "
             f"the continuation; both: {p['share']:g} of the steps on sequences. Perplexity on the first {s['val_blocks']} val and "
             f"{s['test_blocks']} test blocks.", "",
             "| student | steps token / sequence | val perplexity | test perplexity | test vs scratch | train s |", "|---|---|---|---|---|---|"]
    for name, row in r["students"].items():
        lines.append(f"| {name} | {row['steps']['token']} / {row['steps']['sequence']} | {row['val_perplexity']} | "
                     f"{row['test_perplexity']} | x{row['test_perplexity'] / scratch:.3f} | {row['training']['seconds']} |")
    lines += ["", f"Total {r['total_seconds']} s (the teacher's training not included when it was reused).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    torch.manual_seed(0)
    main()
