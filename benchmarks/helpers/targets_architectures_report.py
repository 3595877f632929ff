"""benchmarks/results/targets_architectures.md from its .json (run alone to rewrite the .md without measuring again).

    python benchmarks/helpers/targets_architectures_report.py
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "results"
PROFILE_TOP = 8  # op types shown per profile


def markdown(report: dict) -> str:
    m = report["machine"]
    lines = ["# int8 on trained CNNs: edgekd against onnxruntime's and NNCF's defaults", "",
             *([] if report.get("complete", True) else ["**Partial run**: only the models listed were measured.", ""]),
             f"CPU: {m['model']} ({m['cores']} cores, flags {', '.join(m['flags'])}). int8 instructions: "
             f"{m['int8_instructions']}; bf16 instructions: {m['bf16_instructions']}.",
             f"Models trained on Fashion-MNIST at 3x224x224 ({report['weights']}); {report['data']['eval']} for top-1 "
             f"(against the labels) and agreement (with the target's fp32 candidate); {report['data']['calibration']} to "
             "calibrate every tool. Latency: batch 1, all candidates of a target interleaved (p50 over "
             f"{report['latency_spec']['rounds']} rounds).",
             f"Passing: top-1 agreement >= {report['min_top1_agreement']:.0%} and top-1 drop <= {report['max_top1_drop_points']} "
             "points. edgekd ships the fastest passing edgekd candidate (`edgekd.pipeline.selection.choose`).", "",
             "| model | target | candidate | tool | top-1 % | agreement % | p50 ms | vs fp32 | verdict |",
             "|---|---|---|---|---:|---:|---:|---:|---|"]
    for e in report["models"]:
        for r in e["candidates"]:
            lines.append(f"| {e['model']} | {e['target']} | {r['name']} | {r['tool']} | {r['top1'] * 100:.2f} | "
                         f"{r['top1_agreement'] * 100:.2f} | {r['p50_ms']:.2f} | {e['fp32_p50_ms'] / r['p50_ms']:.2f}x | {r['verdict']} |")
    lines += ["", "| model | target | shipped | drop (points) | p50 ms | fastest passing peer | its p50 ms | within 5% | "
              "vs best peer top-1 (points) | re-timed p50 ms |", "|---|---|---|---:|---:|---|---:|---|---:|---|"]
    for e in report["models"]:
        again = ", ".join(f"{n} {v:.2f}" for n, v in e["confirmation_p50_ms"].items())
        peer_ms = f"{e['fastest_passing_peer_p50_ms']:.2f}" if e["fastest_passing_peer"] else "-"
        lines.append(f"| {e['model']} | {e['target']} | {e['chosen']} | {e['chosen_drop_points']:.2f} | {e['chosen_p50_ms']:.2f} | "
                     f"{e['fastest_passing_peer'] or 'none'} | {peer_ms} | {e['chosen_within_5pct_of_fastest_passing_peer']} | "
                     f"{e['chosen_minus_best_peer_top1_points']:+.2f} | {again} |")
    lines += ["", "Re-timed: shipped, fastest passing peer and fp32 measured again in a fresh interleaved run.", ""]
    lines += _profiles(report)
    skipped = {f"{s['name']} ({s['why']})" for e in report["models"] for s in e["skipped"]}
    lines += ["", "Skipped: " + ("; ".join(sorted(skipped)) if skipped else "none") + ".",
              "Export parity (PyTorch vs onnxruntime, 8 images): " + ", ".join(
                  f"{k}: max |diff| {p['max_abs_diff']:.1e}" for k, p in report["export_parity"].items()),
              f"Load average (1, 5, 15 min) before {_load(report, 'before')}, after {_load(report, 'after')} on {m['cores']} "
              "cores: the machine is shared, so absolute times are inflated; candidates of a target were timed interleaved "
              "so they met the same load.",
              f"Total time {report['seconds']:.0f} s. Library versions: "
              + ", ".join(f"{k} {v}" for k, v in report["library_versions"].items()), ""]
    return "\n".join(lines)


def _profiles(report: dict) -> list[str]:
    lines = ["## Where the time goes (per-op profiles, batch 1, ms per inference)", "",
             "onnxruntime: its profiler, by op type in the optimized graph (count per inference). OpenVINO: PERF_COUNT, "
             "by layer type and the kernel that ran it (`_I8`: int8 kernel; `ref`: reference fallback).", ""]
    for e in report["models"]:
        for name, profile in e["op_profiles"].items():
            ops = list(profile["ops"].items())[:PROFILE_TOP]
            lines.append(f"- {e['model']} / {e['target']} / {name} (total {profile['total_ms']:.2f} ms): " + ", ".join(
                f"{op} {v['ms']:.2f} ({v['count']})" for op, v in ops))
    return lines


def _load(report: dict, when: str) -> str:
    return "/".join(f"{v:.1f}" for v in report["load_average_1_5_15"][when])


def main() -> int:
    report = json.loads((RESULTS / "targets_architectures.json").read_text())
    (RESULTS / "targets_architectures.md").write_text(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
