"""Where does int8 pay for a GPT-2 decoder on this CPU? Decode speed of exported decoders by shape, fp32 against
dynamic int8 and MatMulNBits 8-bit, to size benchmarks/distill_lm.py's student (issue 16: int8 >= 1.3x fp32,
student >= 2x the teacher's tokens/s).

Speed does not depend on what the weights learned, so the decoders here are randomly initialised (seeded) and
untrained: no corpus, no training, minutes instead of an hour. Perplexity is not measured (it would mean
nothing); benchmarks/distill_lm.py measures the trained student it picks.

Each shape: edgekd.lm.export.export_decoder (checked against PyTorch), edgekd.runtimes.decoder_quantize.quantize_decoder with
both methods, then edgekd.lang.generation_bench.generation_speed on the three files interleaved per prompt (random prompts,
greedy, batch 1, 1 onnxruntime thread, median decode tokens/s). The whole sweep runs `--repeats` times, each
pass after the last, because fp32 speeds of memory-bound shapes vary between passes on a shared machine.

    python benchmarks/lm_width_sweep.py                       # the default shapes, 3 passes (~15 min on 2 cores)
    python benchmarks/lm_width_sweep.py --shapes 2x192 2x224  # layers x width; heads = width / 56 or / 64
    python benchmarks/lm_width_sweep.py --smoke               # tiny shapes, a temporary folder

Writes benchmarks/results/lm_width_sweep.json and .md.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import smoke  # noqa: E402  (benchmarks/smoke.py, beside this script)

from edgekd.core.environment import describe  # noqa: E402
from edgekd.core.fileio import write_json_atomic, write_text_atomic  # noqa: E402
from edgekd.lang.generation_bench import generation_speed  # noqa: E402
from edgekd.lm.export import export_decoder  # noqa: E402
from edgekd.lm.models import LMShape, build_lm, gpt2_config, parameter_count  # noqa: E402
from edgekd.runtimes.decoder_quantize import quantize_decoder  # noqa: E402
from edgekd.runtimes.ort import OnnxDecoder  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
TEACHER = "4x256"  # benchmarks/distill_lm.py's teacher: the students' speed is compared with it
SHAPES = ("2x128", "2x192", "2x224", "2x256", TEACHER)
INT8 = ("dynamic", "nbits8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), help="layers x width, e.g. 2x224")
    parser.add_argument("--repeats", type=int, default=3, help="passes over all shapes")
    smoke.add_option(parser)
    args = parser.parse_args()
    vocab, context, prompts, new_tokens, rounds = 4096, 128, 10, 64, 3
    shapes, repeats, out = args.shapes, args.repeats, RESULTS
    if args.smoke:
        vocab, context, prompts, new_tokens, rounds, shapes, repeats = 300, 32, 2, 4, 1, ["1x32", "1x64"], 1
        out = smoke.folder("lm_width_sweep")
    start = time.time()
    with tempfile.TemporaryDirectory(prefix="edgekd-width-") as work:
        files = {shape: export_shape(shape, vocab, context, Path(work)) for shape in shapes}
        rng = np.random.default_rng(0)
        prompt_ids = [rng.integers(0, vocab, min(32, context // 2)) for _ in range(prompts)]
        passes = [{shape: measure(paths, prompt_ids, new_tokens, rounds) for shape, paths in files.items()} for _ in range(repeats)]
    result = summarise(files, passes, vocab, context, args.smoke)
    result["total_seconds"] = round(time.time() - start, 1)
    write_json_atomic(out / "lm_width_sweep.json", result)
    write_text_atomic(out / "lm_width_sweep.md", render(result))
    print(render(result))


def parse_shape(text: str) -> LMShape:
    layers, width = (int(part) for part in text.lower().split("x"))
    heads = width // 64 if width % 64 == 0 and width >= 128 else width // 56 if width % 56 == 0 else 1
    return LMShape(layers, width, heads, 0)


def export_shape(shape: str, vocab: int, context: int, work: Path) -> dict:
    parsed = parse_shape(shape)
    model = build_lm(gpt2_config(vocab, LMShape(parsed.layers, parsed.width, parsed.heads, context), eos_id=0))
    fp32 = export_decoder(model, work / f"{shape}.onnx")
    paths = {"fp32": fp32, **{method: quantize_decoder(fp32, work / f"{shape}-{method}.onnx", method) for method in INT8}}
    return {"paths": paths, "params": parameter_count(model), "heads": parsed.heads}


def measure(entry: dict, prompts: list, new_tokens: int, rounds: int) -> dict:
    decoders = {name: OnnxDecoder(str(path), 1) for name, path in entry["paths"].items()}
    speeds = generation_speed(decoders, prompts, new_tokens, rounds)
    return {name: speeds[name]["tokens_per_second"] for name in decoders}


def summarise(files: dict, passes: list[dict], vocab: int, context: int, is_smoke: bool) -> dict:
    teacher = [p[TEACHER]["fp32"] for p in passes] if TEACHER in files else None
    rows = []
    for shape, entry in files.items():
        per_pass = [p[shape] for p in passes]
        row = {"shape": shape, "heads": entry["heads"], "params": entry["params"], "tokens_per_second": per_pass,
               "int8_ratio": {m: [round(p[m] / p["fp32"], 3) for p in per_pass] for m in INT8}}
        if teacher and shape != TEACHER:
            row["fp32_vs_teacher"] = [round(p["fp32"] / t, 2) for p, t in zip(per_pass, teacher)]
        rows.append(row)
    return {"smoke": is_smoke, "vocab": vocab, "context": context, "threads": 1, "weights": "random (seeded), untrained",
            "passes": len(passes), "shapes": rows, "environment": describe()}


def render(result: dict) -> str:
    def spread(values):
        return f"{min(values)}-{max(values)} (median {statistics.median(values)})" if len(values) > 1 else str(values[0])

    lines = ["# Decode speed by decoder shape: where int8 pays", "", smoke.machine_line(result["environment"]) + ".", "",
             f"Random-weight GPT-2 decoders, vocab {result['vocab']}, context {result['context']}; onnxruntime, 1 thread, "
             f"batch 1, greedy, median decode tokens/s; {result['passes']} passes over all shapes (ranges are across passes).", "",
             "| shape | heads | params | fp32 tokens/s | int8 dynamic / fp32 | nbits8 / fp32 | fp32 / teacher fp32 |",
             "|---|---|---|---|---|---|---|"]
    for row in result["shapes"]:
        fp32 = [p["fp32"] for p in row["tokens_per_second"]]
        versus = spread(row["fp32_vs_teacher"]) if "fp32_vs_teacher" in row else ""
        lines.append(f"| {row['shape']} | {row['heads']} | {row['params']:,} | {spread(fp32)} | {spread(row['int8_ratio']['dynamic'])} | "
                     f"{spread(row['int8_ratio']['nbits8'])} | {versus} |")
    lines += ["", f"Total {result['total_seconds']} s. Generated by `benchmarks/lm_width_sweep.py`."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
