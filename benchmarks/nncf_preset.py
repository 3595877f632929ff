"""Which NNCF preset keeps PP-OCRv4 rec's int8 on OpenVINO? (issue 34: the evidence behind the fallback's preset
retry, quant/fallback.FallbackBudget.retry_presets.)

    make third-party-models     # the pinned rapidocr wheel, as for benchmarks/third_party.py
    nice env PYTHONPATH=$PWD python benchmarks/nncf_preset.py [--lines 260]
    python benchmarks/nncf_preset.py --smoke      # third_party.py's tiny rec graph, no download

Renders text lines as third_party.py does (DejaVu fonts, ground-truth strings), upgrades the model to opset 13 as
edgekd's intake does, and quantizes it with NNCF and intel-cpu's recipe as this host adapts it
(quant/host.recipe_for_host), calibrated on the first 100 lines, with each preset: performance (intel-cpu's own;
symmetric activations) and mixed (asymmetric activations). Each is built and run as edgekd ships it for intel-cpu
(runtimes/openvino.py: compile, then a session with the profile's threads) and scored on the other lines: CTC string
accuracy against the truth and agreement with fp32's strings on OpenVINO, and the truth score of the same file on
onnxruntime (what the fallback search judges by). No timing: third_party.py times what ships.

Writes benchmarks/results/nncf_preset.json and .md (a temporary folder with --smoke).
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

from edgekd.core.metrics import predict  # noqa: E402
from edgekd.core.task_metrics import task_metric  # noqa: E402
from edgekd.quant.fallback import logits_of, with_preset  # noqa: E402
from edgekd.quant.host import recipe_for_host  # noqa: E402
from edgekd.runtimes import get_backend, load_profile  # noqa: E402
from edgekd.runtimes.ptq import quantize_qdq  # noqa: E402

PRESETS = ("performance", "mixed")


def on_openvino(model: Path, precision: str, x, folder: Path):
    """The model's outputs on x as edgekd's intel-cpu artifact computes them."""
    profile, backend = load_profile("intel-cpu"), get_backend("openvino")
    artifact = backend.compile(model, precision, profile, folder)
    return predict(backend.session(artifact, profile.threads).run, x)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=260, help="text lines rendered (the first 100 calibrate)")
    smoke.add_option(parser)  # the tiny rec graph of third_party.py, a temporary folder
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="edgekd-nncf-preset-") as scratch:
        work = Path(scratch)
        lines = rec_lines.rec_lines(args, work, "nncf_preset")
        model, x, y = lines.model, lines.x, lines.y
        metric = task_metric("ctc_accuracy")
        reference = on_openvino(model, "fp32", x, work / "fp32")
        recipe = recipe_for_host(load_profile("intel-cpu").quantization).recipe
        rows = [{"model": "fp32", "truth": metric.score(reference, y), "agreement": 1.0,
                 "truth_onnxruntime": metric.score(logits_of(model, x), y)}]
        for preset in PRESETS:
            path = quantize_qdq(model, work / f"{preset}.onnx", with_preset(recipe, preset), lines.calibration)
            outputs = on_openvino(path, "int8", x, work / preset)
            rows.append({"model": f"int8, NNCF preset {preset}", "truth": metric.score(outputs, y),
                         "agreement": metric.score(outputs, metric.labels_of(reference)),
                         "truth_onnxruntime": metric.score(logits_of(path, x), y)})
            print(f"{preset}: {rows[-1]}", flush=True)
    rec_lines.write_results(args, "nncf_preset", lines, recipe, rows, started, report)
    return 0


def report(result: dict) -> str:
    lines = [f"# Which NNCF preset keeps {result['model']}'s int8 on OpenVINO", "",
             f"intel-cpu's recipe as this host adapts it ({result['recipe']['name']}, reduce_range "
             f"{result['recipe']['reduce_range']}), NNCF on {result['lines']['calibration']} lines; scored on "
             f"{result['lines']['scored']} other lines (CTC string accuracy) as edgekd's intel-cpu artifact runs them "
             "(OpenVINO), and the same file on onnxruntime.", "",
             "| model | accuracy vs truth (OpenVINO) | agreement with fp32 (OpenVINO) | accuracy vs truth (onnxruntime) |",
             "|---|---:|---:|---:|"]
    for row in result["rows"]:
        lines.append(f"| {row['model']} | {row['truth']:.2%} | {row['agreement']:.2%} | {row['truth_onnxruntime']:.2%} |")
    lines += ["", rec_lines.machine_line(result, "nncf_preset.py"), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
