"""Which op types break PP-OCRv4 rec's int8? (issue 34: the evidence behind the fallback's op-type retry,
quant/fallback.WEIGHTED_OP_TYPES.)

    make third-party-models     # the pinned rapidocr wheel, as for benchmarks/third_party.py
    nice env PYTHONPATH=$PWD python benchmarks/op_type_retry.py [--lines 260]
    python benchmarks/op_type_retry.py --smoke      # third_party.py's tiny rec graph, no download

Renders text lines as third_party.py does (DejaVu fonts, ground-truth strings), upgrades the model to opset 13 as
edgekd's intake does (onnx.version_converter), and quantizes it with x86-cpu's recipe as this host adapts it
(quant/host.recipe_for_host), calibrated on the first 100 lines (minmax), four ways: onnxruntime's whole default op
set (the recipe as it is), every MatMul (attention and linear layers) kept in float, only the weighted op types
(Conv, ConvTranspose, Gemm, MatMul: the retry), and only Conv. Each is scored on the other lines: CTC string
accuracy against the truth and agreement with fp32's strings.

Writes benchmarks/results/op_type_retry.json and .md (a temporary folder with --smoke).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).parent / "helpers"))
sys.path.insert(0, str(Path(__file__).parent))
import rec_lines  # noqa: E402  (benchmarks/helpers/rec_lines.py)
import smoke  # noqa: E402  (benchmarks/smoke.py, beside this script)

from edgekd.core.task_metrics import task_metric  # noqa: E402
from edgekd.quant.fallback import WEIGHTED_OP_TYPES, logits_of, with_op_types  # noqa: E402
from edgekd.quant.host import recipe_for_host  # noqa: E402
from edgekd.runtimes import load_profile  # noqa: E402
from edgekd.runtimes.ptq import quantize_qdq, quantized_nodes  # noqa: E402


def variants(recipe, model: Path) -> dict[str, tuple]:
    """name: (recipe, nodes kept in float)."""
    import onnx

    # Every MatMul: the attention products and the linear layers (Paddle2ONNX feeds their weights from Constant nodes).
    matmuls = [n.name for n in onnx.load(str(model), load_external_data=False).graph.node if n.op_type == "MatMul"]
    return {"whole default op set": (recipe, []),
            "every MatMul in float": (recipe, matmuls),
            "weighted op types only (the retry)": (with_op_types(recipe, WEIGHTED_OP_TYPES), []),
            "Conv only": (with_op_types(recipe, ("Conv",)), [])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=260, help="text lines rendered (the first 100 calibrate)")
    smoke.add_option(parser)  # the tiny rec graph of third_party.py, a temporary folder
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="edgekd-op-type-retry-") as scratch:
        work = Path(scratch)
        lines = rec_lines.rec_lines(args, work, "op_type_retry")
        model, x, y = lines.model, lines.x, lines.y
        metric = task_metric("ctc_accuracy")
        reference = logits_of(model, x)
        recipe = recipe_for_host(load_profile("x86-cpu").quantization).recipe
        rows = [{"model": "fp32", "truth": metric.score(reference, y), "agreement": 1.0}]
        for name, (made_with, in_float) in variants(recipe, model).items():
            path = work / f"{len(rows)}.onnx"
            quantize_qdq(model, path, made_with, lines.calibration, nodes_to_exclude=in_float,
                         calibration_cache=work / "ranges.json")
            outputs = logits_of(path, x)
            rows.append({"model": name, "truth": metric.score(outputs, y), "agreement": metric.score(outputs, metric.labels_of(reference)),
                         "quantized_nodes": len(quantized_nodes(path)), "nodes_in_float": len(in_float)})
            print(f"{name}: {rows[-1]}", flush=True)
    rec_lines.write_results(args, "op_type_retry", lines, recipe, rows, started, report)
    return 0


def report(result: dict) -> str:
    lines = [f"# Which op types break {result['model']}'s int8", "",
             f"x86-cpu's recipe as this host adapts it ({result['recipe']['name']}, reduce_range "
             f"{result['recipe']['reduce_range']}), minmax on {result['lines']['calibration']} lines; scored on "
             f"{result['lines']['scored']} other lines (CTC string accuracy).", "",
             "| int8 made with | quantized nodes | nodes in float | accuracy vs truth | agreement with fp32 |", "|---|---:|---:|---:|---:|"]
    for row in result["rows"]:
        lines.append(f"| {row['model']} | {row.get('quantized_nodes', '')} | {row.get('nodes_in_float', '')} | "
                     f"{row['truth']:.2%} | {row['agreement']:.2%} |")
    lines += ["", rec_lines.machine_line(result, "op_type_retry.py"), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
