"""Language models (issue 16) on OpenVINO: the distilled student as IR, fp32 and with NNCF weight compression
(ov_int8: INT8_ASYM per channel; ov_int4: INT4_SYM, ratio 1, groups of the largest of 128, 64, 32, 16 input channels
that divides the student's width: 32 for 224), against the same ONNX decoder on
onnxruntime (fp32 and dynamic int8): test perplexity, greedy agreement with fp32 onnxruntime, generation speed.

Input: the student that benchmarks/distill_lm.py exported (<work>/onnx/student.onnx, 2 x 224, context 128) and
its tokenizer (<work>/tokenizer-*-4096.json); run distill_lm.py first. Its sha256 is in the results. Test split:
the standard library's files, split and cut into 128-token blocks as distill_lm.py does (edgekd.lm.corpus).

* Every model is converted / quantized here from that one ONNX file, into a temporary folder.
* Perplexity: all test blocks, each from an empty cache (edgekd.lang.perplexity.onnx_perplexity).
* Speed: torch-free greedy generation at batch 1 (edgekd.lang.generation_bench.generation_speed), 20 test prompts of 32 tokens
  x 64 new tokens, the five models interleaved per prompt, 3 rounds; tokens/s is the median decode rate. Each
  model is timed at 1 and 2 threads and reported at its faster setting, as distill_lm.py does (2 threads halved the
  fp32 student's rate there); OpenVINO with PERFORMANCE_HINT LATENCY, precision f32.

    flock /tmp/edgekd-heavy.lock python benchmarks/lm_openvino.py [--work benchmarks/.work/distill_lm]
    python benchmarks/lm_openvino.py --smoke   # a random tiny decoder, a temporary folder: does it still run?

Writes benchmarks/results/lm_openvino.json and .md.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import smoke  # noqa: E402  (benchmarks/smoke.py, beside this script)

from edgekd.core.environment import describe  # noqa: E402
from edgekd.core.fileio import sha256_of, write_json_atomic, write_text_atomic  # noqa: E402
from edgekd.lang.generation_bench import greedy_agreement, speed_at_fastest_threads  # noqa: E402
from edgekd.lang.lm_tokenizer import LMTokenizer, blocks, train_on_corpus  # noqa: E402
from edgekd.lang.perplexity import onnx_perplexity  # noqa: E402
from edgekd.lm.corpus import Corpus, stdlib_corpus  # noqa: E402
from edgekd.quant.host import saturates_8bit_products  # noqa: E402
from edgekd.runtimes.decoder_quantize import quantize_decoder  # noqa: E402
from edgekd.runtimes.openvino_convert import Compression, convert_decoder, default_group_size  # noqa: E402
from edgekd.runtimes.registry import load_decoder  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
WORK = ROOT / "benchmarks" / ".work" / "distill_lm"
CONTEXT, PROMPTS, PROMPT_TOKENS, NEW_TOKENS, ROUNDS = 128, 20, 32, 64, 3
INT4 = Compression("sym", group_size=128, ratio=1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--work", type=Path, default=WORK, help="distill_lm.py's folder: onnx/student.onnx and its tokenizer")
    smoke.add_option(parser)
    args = parser.parse_args()
    started = time.perf_counter()
    global CONTEXT, PROMPTS, PROMPT_TOKENS, NEW_TOKENS, ROUNDS, INT4
    with tempfile.TemporaryDirectory(prefix="lm-openvino-") as scratch:
        scratch = Path(scratch)
        if args.smoke:
            folder = smoke.folder("lm_openvino")
            args.results = folder / "results"
            CONTEXT, PROMPTS, PROMPT_TOKENS, NEW_TOKENS, ROUNDS = 32, 3, 8, 8, 1
            INT4 = Compression("sym", group_size=16, ratio=1.0)
            student, tokenizer, corpus = tiny_student(scratch)
        else:
            student, corpus = args.work / "onnx" / "student.onnx", stdlib_corpus()
            tokenizer = args.work / f"tokenizer-{corpus.file_list_sha256[:12]}-4096.json"
            for path in (student, tokenizer):
                if not path.is_file():
                    sys.exit(f"{path}: not found; run benchmarks/distill_lm.py first (it exports the student there)")
            INT4 = Compression("sym", group_size=default_group_size(student), ratio=1.0)
        result = measure(student, LMTokenizer(tokenizer), corpus, scratch)
    result = {"smoke": args.smoke, **result, "total_seconds": round(time.perf_counter() - started, 1),
              "load_average_1min_end": round(os.getloadavg()[0], 2), "environment": describe()}
    write_json_atomic(args.results / "lm_openvino.json", result)
    write_text_atomic(args.results / "lm_openvino.md", markdown(result))
    print(markdown(result))


def tiny_student(folder: Path) -> tuple[Path, Path, Corpus]:
    """--smoke: a random 1 x 32 decoder and a 300-token tokenizer on eight standard-library files."""
    from edgekd.lm.export import export_decoder
    from edgekd.lm.models import LMShape, build_lm, gpt2_config

    corpus = stdlib_corpus()
    corpus = Corpus(corpus.root, corpus.source, {s: names[:8] for s, names in corpus.files.items()}, corpus.fractions,
                    corpus.file_list_sha256)
    tokenizer = train_on_corpus(corpus, 300, folder / "tokenizer.json")
    model = build_lm(gpt2_config(300, LMShape(layers=1, width=32, heads=1, context=CONTEXT), eos_id=0), seed=0)
    return export_decoder(model, folder / "student.onnx"), tokenizer, corpus


def models(student: Path, folder: Path) -> dict[str, Path]:
    """The five decoders, all made from `student` here."""
    reduce_range = saturates_8bit_products()  # 7-bit weights where this CPU's int8 kernels saturate (edgekd/quant/host.py)
    return {"ort_fp32": student,
            "ort_dynamic": quantize_decoder(student, folder / "student-dynamic.onnx", "dynamic", reduce_range=reduce_range),
            "ov_fp32": convert_decoder(student, folder / "student-fp32-ov.xml"),
            "ov_int8": convert_decoder(student, folder / "student-ov_int8.xml", "ov_int8"),
            "ov_int4": convert_decoder(student, folder / "student-ov_int4.xml", "ov_int4", INT4)}


def measure(student: Path, tokenizer: LMTokenizer, corpus: Corpus, folder: Path) -> dict:
    test = blocks(tokenizer.encode_documents(corpus.texts("test")), CONTEXT)
    rows = np.linspace(0, len(test) - 1, PROMPTS).astype(int)
    prompts = [test[row, :PROMPT_TOKENS] for row in rows]  # as distill_lm.py chooses them
    paths = models(student, folder)
    decoders = {name: load_decoder(path) for name, path in paths.items()}
    started = time.perf_counter()
    perplexity = {name: onnx_perplexity(decoder, test) for name, decoder in decoders.items()}
    perplexity_seconds = time.perf_counter() - started
    speed, by_threads = speed_at_fastest_threads(lambda threads: {name: load_decoder(path, threads) for name, path in paths.items()},
                                                 prompts, NEW_TOKENS, ROUNDS)
    agreement = {name: greedy_agreement(decoders["ort_fp32"], decoder, prompts, NEW_TOKENS) for name, decoder in decoders.items()
                 if name != "ort_fp32"}
    reference = perplexity["ort_fp32"]
    return {"student": {"file": str(student), "sha256": sha256_of(student)},
            "settings": {"context": CONTEXT, "test_blocks": len(test), "prompts": PROMPTS, "prompt_tokens": PROMPT_TOKENS,
                         "new_tokens": NEW_TOKENS, "rounds": ROUNDS, "ov_int4": asdict(INT4),
                         "ort_dynamic_reduce_range": saturates_8bit_products()},
            "rows": {name: {"perplexity": round(perplexity[name], 4), "perplexity_vs_ort_fp32": round(perplexity[name] / reference - 1, 6),
                            "bytes": model_bytes(paths[name]), **speed[name],
                            **({"greedy_agreement_with_ort_fp32": agreement[name]} if name in agreement else {})}
                     for name in paths},
            "speed_by_threads": {str(t): {name: row["tokens_per_second"] for name, row in rows.items()} for t, rows in by_threads.items()},
            "perplexity_seconds": round(perplexity_seconds, 1)}


def model_bytes(path: Path) -> int:
    return path.stat().st_size + (path.with_suffix(".bin").stat().st_size if path.suffix == ".xml" else 0)


def markdown(r: dict) -> str:
    s = r["settings"]
    lines = ["# The LM student on OpenVINO (benchmarks/lm_openvino.py)", "",
             f"{'SMOKE RUN: numbers mean nothing. ' if r['smoke'] else ''}Student {r['student']['file']} "
             f"(sha256 {r['student']['sha256'][:12]}). Test perplexity on {s['test_blocks']} blocks of {s['context']} tokens; greedy "
             f"generation of {s['new_tokens']} tokens from {s['prompts']} test prompts of {s['prompt_tokens']}, batch 1, models "
             f"interleaved, {s['rounds']} rounds, median decode tokens/s. ov_int4: {s['ov_int4']}.", "",
             "| model | bytes | test perplexity | vs ORT fp32 | tokens/s | threads | TTFT ms | p50 / p99 ms | greedy agreement with ORT fp32 |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, row in r["rows"].items():
        agree = row.get("greedy_agreement_with_ort_fp32", {}).get("token_agreement", "")
        lines.append(f"| {name} | {row['bytes']:,} | {row['perplexity']} | {row['perplexity_vs_ort_fp32']:+.3%} | {row['tokens_per_second']} | "
                     f"{row['threads']} | {row['time_to_first_token_ms']} | {row['per_token_p50_ms']} / {row['per_token_p99_ms']} | {agree} |")
    lines += ["", "Decode tokens/s at every thread count: " + "; ".join(
        f"{t} thread(s): " + ", ".join(f"{n} {v}" for n, v in rows.items()) for t, rows in r["speed_by_threads"].items()) + ".",
              "", f"{smoke.machine_line(r['environment'])}. Total {r['total_seconds']} s; 1-min load average at the end "
              f"{r['load_average_1min_end']}. Generated by `benchmarks/lm_openvino.py`."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
