"""The language-model bench's table (device/lm_bench.py): one row per bundle, for the terminal and report.md."""
from __future__ import annotations

from typing import Any

from edgekd.device.report.terminal import fitted_table

COLUMNS = ["artifact", "size (KB)", "perplexity", "vs ref", "TTFT (ms)", "p50 (ms)", "p99 (ms)", "tokens/s", "gate", "why"]


def _cell(value, pattern: str) -> str:
    return "n/a" if value is None else pattern.format(value)


def lm_rows(report: dict[str, Any]) -> list[list[str]]:
    return [[row["artifact"], _cell(row["bytes"] / 1024, "{:.1f}"), _cell(row["perplexity"], "{:.3f}"),
             _cell(row.get("perplexity_increase"), "{:+.2%}"), _cell(row["time_to_first_token_ms"], "{:.2f}"),
             _cell(row["per_token_p50_ms"], "{:.3f}"), _cell(row["per_token_p99_ms"], "{:.3f}"),
             _cell(row["tokens_per_second"], "{:.1f}"), row["gate"], row["why"]] for row in report["rows"]]


def _heading(report: dict[str, Any]) -> str:
    decoding = report["decoding"]
    mode = "greedy" if decoding["mode"] == "greedy" else \
        f"top-{decoding['top_k']} sampling at temperature {decoding['temperature']:g} (seed {decoding['seed']})"
    blocks = next((row["eval_blocks"] for row in report["rows"] if row["eval_blocks"]), None)
    ppl = f"perplexity on the bundle's {blocks} held-out blocks; " if blocks else "no perplexity (no held-out blocks); "
    return (f"{ppl}{mode} generation of {report['new_tokens']} tokens from {report['prompts']['count']} prompts "
            f"({report['prompts']['source']}), batch 1, onnxruntime CPU, threads {report['threads'] or 'default'}")


def lm_terminal_table(report: dict[str, Any], width: int | None = None) -> str:
    return "\n".join([_heading(report), "", fitted_table(COLUMNS, lm_rows(report), width), "", report["gate"]["summary"]])


def lm_markdown(report: dict[str, Any]) -> str:
    lines = ["# Language model bench (on this machine)", "", _heading(report) + ".", "",
             "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cells) + " |" for cells in lm_rows(report)]
    cpu = report["environment"].get("cpu") or {}
    lines += ["", report["gate"]["summary"], "", f"CPU: {cpu.get('model', '?')}; flags: {' '.join(cpu.get('flags') or [])}"]
    return "\n".join(lines + [f"warning: {w}" for w in report["warnings"]]) + "\n"
