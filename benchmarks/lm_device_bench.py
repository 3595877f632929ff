"""`edgekd bench` on a language model's bundles, torch blocked, against the pipeline's own bench stage (issue 16).

The LM pipeline (configs/language_model.yaml's model sizes: teacher 4 x 256, student 2 x 224, vocab 4096, context
128) runs with short training (the student's size, not its quality, sets the speed measured here) and
bench.device_blocks = data.test_blocks, so each bundle carries exactly the test blocks the bench stage scored.
Then, in a child process where torch and transformers cannot be imported (tests/blocking.py), `edgekd bench RUN`
measures every bundle greedily and with top-k sampling. Reported: the device's perplexity next to the bench
stage's (they must be equal: same model file, same blocks), its gate, and TTFT, per-token p50/p99 and tokens/s of
both. Speeds of the arm64-cpu bundle are this x86 machine's, not an ARM board's.

    flock /tmp/edgekd-heavy.lock python benchmarks/lm_device_bench.py
    python benchmarks/lm_device_bench.py --smoke     # tiny sizes, a temporary folder: does it still run?
Writes benchmarks/results/lm_device_bench.json and .md.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import smoke  # noqa: E402  (benchmarks/smoke.py, beside this script)

from edgekd.core.environment import describe  # noqa: E402
from edgekd.core.fileio import read_json, write_json_atomic, write_text_atomic  # noqa: E402
from tests.blocking import CLI_WITHOUT_TORCH  # noqa: E402  (the project's one torch blocker)

RESULTS = REPO / "benchmarks" / "results"
CONFIG = yaml.safe_load((REPO / "configs" / "language_model.yaml").read_text(encoding="utf-8"))
SHORT = {"teacher": {**CONFIG["teacher"], "train": {"steps": 20, "lr": 0.0015}},
         "distill": {**CONFIG["distill"], "train": {"steps": 20, "lr": 0.003}},
         "data": {**CONFIG["data"], "val_blocks": 64, "test_blocks": 64},
         "bench": {**CONFIG["bench"], "device_blocks": 64}}
SMOKE = {"data": {"source": "code", "vocab_size": 300, "context": 32, "val_blocks": 4, "test_blocks": 4},
         "teacher": {"layers": 2, "width": 64, "heads": 2, "train": {"steps": 3, "lr": 0.003, "batch_size": 4}},
         "student": {"layers": 1, "width": 32}, "distill": {"top_k": 8, "train": {"steps": 2, "lr": 0.003, "batch_size": 4}},
         "bench": {"prompts": 2, "prompt_tokens": 8, "new_tokens": 8, "device_blocks": 4}}
TOP_K = ["--top-k", "40", "--temperature", "0.8", "--seed", "0"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS)
    smoke.add_option(parser)
    args = parser.parse_args()
    work = smoke.folder("lm_device_bench") if args.smoke else Path(tempfile.mkdtemp(prefix="edgekd-lm-device-"))
    results = work / "results" if args.smoke else args.results
    started = time.perf_counter()
    run_dir = pipeline(work, {**CONFIG, **(SMOKE if args.smoke else SHORT)})
    pipeline_seconds = round(time.perf_counter() - started, 1)
    device = {mode: device_bench(run_dir, work / f"device-{mode}.json", extra) for mode, extra in (("greedy", []), ("top_k", TOP_K))}
    result = {"smoke": args.smoke, "config": {**CONFIG, **(SMOKE if args.smoke else SHORT)}, "pipeline_seconds": pipeline_seconds,
              "pipeline": read_json(run_dir / "report.json"), "device": device,
              "perplexity_equal": all(same_perplexity(read_json(run_dir / "report.json"), d["report"]) for d in device.values()),
              "environment": describe(), "load_average_1min_end": round(os.getloadavg()[0], 2),
              "total_seconds": round(time.perf_counter() - started, 1)}
    write_json_atomic(results / "lm_device_bench.json", result)
    write_text_atomic(results / "lm_device_bench.md", markdown(result))
    print(markdown(result))


def pipeline(work: Path, config: dict) -> Path:
    from edgekd.pipeline.runner import run_from_file

    path = work / "lm.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    run_from_file(str(path), str(work / "run"))
    return work / "run"


def device_bench(run_dir: Path, json_out: Path, extra: list[str]) -> dict:
    """`edgekd bench RUN` as a device runs it: a fresh interpreter that cannot import torch or transformers."""
    done = subprocess.run([sys.executable, "-c", CLI_WITHOUT_TORCH, "bench", str(run_dir), "--json", str(json_out), *extra],
                          capture_output=True, text=True, timeout=1800, cwd=REPO)
    if done.returncode not in (0, 1):  # 1: a gate failed, which is a result; anything else is a broken run
        raise SystemExit(f"edgekd bench failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return {"exit_code": done.returncode, "args": extra, "report": read_json(json_out), "table": done.stdout}


def same_perplexity(pipeline_report: dict, device_report: dict) -> bool:
    by_target = {row["target"]: row["perplexity"] for row in pipeline_report["rows"] if row["shipped"]}
    return all(abs(row["perplexity"] - by_target[row["target"]]) <= 1e-3 for row in device_report["rows"])


def markdown(r: dict) -> str:
    pipeline_rows = {row["target"]: row for row in r["pipeline"]["rows"] if row["shipped"]}
    lines = ["# edgekd bench on language-model bundles, torch blocked" + (" (SMOKE: numbers mean nothing)" if r["smoke"] else ""),
             "", "`python benchmarks/lm_device_bench.py` (" + ("--smoke" if r["smoke"] else "under the heavy lock") +
             f"). Pipeline {r['pipeline_seconds']} s, total {r['total_seconds']} s. " + smoke.machine_line(r["environment"]) +
             f"; 1-min load average at the end {r['load_average_1min_end']}.", "",
             f"Student {r['config']['student']['layers']} x {r['config']['student']['width']}, context {r['config']['data']['context']}; "
             f"{r['pipeline']['prompts']['count']} held-out prompts x {r['pipeline']['new_tokens']} new tokens, batch 1. Device "
             f"perplexity equal to the bench stage's on the same {r['pipeline']['eval_set']['samples']} blocks: "
             f"**{r['perplexity_equal']}**. "
             "arm64-cpu's speeds are this x86 machine's.", "",
             "| bundle | decoding | perplexity (device / pipeline) | gate | TTFT ms | p50 / p99 ms | tokens/s (device / pipeline) |",
             "|---|---|---|---|---|---|---|"]
    for mode, device in r["device"].items():
        for row in device["report"]["rows"]:
            stage = pipeline_rows[row["target"]]
            gate = (device["report"].get("verdict") or {}).get("artifacts", {}).get(row["artifact"], "n/a")
            lines.append(f"| {row['artifact']} | {mode} | {row['perplexity']} / {stage['perplexity']} | {gate} | "
                         f"{row['time_to_first_token_ms']} | {row['per_token_p50_ms']} / {row['per_token_p99_ms']} | "
                         f"{row['tokens_per_second']} / {stage.get('tokens_per_second')} |")
    lines += ["", "Device gate: " + "; ".join(f"{m}: {d['report']['verdict']['summary']} (exit {d['exit_code']})"
                                             for m, d in r["device"].items())]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
