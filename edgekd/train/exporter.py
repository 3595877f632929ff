"""The one torch -> ONNX exporter, after Hugging Face Optimum's exporters (issue 33).

Each model family describes its graph in an ExportSpec, as Optimum's OnnxConfig does: input and output names,
dummy inputs, dynamic axes, opset, which of torch's two exporters, and the tolerance its check allows. `write_onnx`
is the only call to torch.onnx.export in edgekd (tests/test_import_contracts.py), and `compare_with_torch` the one
check that a written file computes what PyTorch does. What is a family's own stays with it: the image classifier's
metadata and opset check (train/onnx_export.py), the text classifier's onnxruntime fusion (text/export.py), the
decoder's cache wrapper (lm/export.py), the QAT model's weight folding (quant/qat_export.py) and the table network
(tabular/student.py).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from edgekd.core.errors import StageError


@dataclass(frozen=True)
class ExportSpec:
    """What the exporter needs to know of one family's graph. Options left None are not passed to torch, so
    torch's own defaults apply exactly as when the family called it directly."""
    input_names: list[str]
    output_names: list[str]
    dummy_inputs: tuple[torch.Tensor, ...]
    opset: int
    # torch.export + onnxscript (True) or the TorchScript exporter (False); each family says why it takes its own
    dynamo: bool
    dynamic_axes: dict | None = None  # the TorchScript exporter's: {input or output name: {axis: label}}
    dynamic_shapes: dict | tuple | None = None  # torch.export's: keyed by the forward's argument names
    external_data: bool | None = None  # torch.export only: False keeps the weights inside the one .onnx file
    verbose: bool | None = None
    tolerance: float | None = None  # the largest |output difference| from PyTorch the family accepts


def export_options(spec: ExportSpec) -> dict:
    """The keyword arguments torch.onnx.export gets for `spec`."""
    options = {"input_names": list(spec.input_names), "output_names": list(spec.output_names),
               "opset_version": spec.opset, "dynamo": spec.dynamo}
    optional = {"dynamic_axes": spec.dynamic_axes, "dynamic_shapes": spec.dynamic_shapes,
                "external_data": spec.external_data, "verbose": spec.verbose}
    return options | {key: value for key, value in optional.items() if value is not None}


def write_onnx(model: torch.nn.Module, spec: ExportSpec, path: str | Path, failure: str | None = None) -> Path:
    """Export `model` (in eval mode) to `path` as `spec` says. With `failure`, an exporter error becomes one line,
    StageError("<failure> (<the exporter's first line>)"); without, it propagates as torch raised it."""
    try:
        torch.onnx.export(model, spec.dummy_inputs, str(path), **export_options(spec))
    except Exception as exc:  # the exporters raise many internal types; all mean "cannot export"
        if failure is None:
            raise
        raise StageError(f"{failure} ({export_failure_cause(exc)[:200]})") from None
    return Path(path)


_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_CLASS = re.compile(r"^<class '(?:[\w.]*\.)?(\w+)'>:\s*")  # "<class 'torch.x.GuardOn...'>: " -> "GuardOn...: "


def export_failure_cause(exc: BaseException) -> str:
    """The line that says why an export failed, without terminal colours. The dynamo exporter's own first line is its
    boilerplate ("Failed to export the model with torch.export. This is step 1/3 ... Next steps:"), the same for every
    failure: the cause is the first line of its "## Exception summary" section, else of the exception it wraps
    (__cause__); the TorchScript exporter's first line is the cause itself."""
    lines = [_ANSI.sub("", line).strip() for line in str(exc).splitlines()]
    if "## Exception summary" in lines:
        summary = [line for line in lines[lines.index("## Exception summary") + 1:] if line]
        if summary:
            return _CLASS.sub(lambda m: f"{m.group(1)}: ", summary[0])
    cause = exc.__cause__
    if lines and lines[0].startswith("Failed to export") and cause is not None and str(cause).strip():
        return f"{type(cause).__name__}: {_ANSI.sub('', str(cause)).strip().splitlines()[0]}"
    return next((line for line in lines if line), type(exc).__name__)


@dataclass
class Agreement:
    """How close an ONNX file's outputs are to PyTorch's on the same inputs."""
    max_abs_diff: float  # over every output and every feed
    top1_agreement: float  # of the first output: how often its argmax (over `top1_axis`) is the same
    samples: int  # rows fed, over every feed


def compare_with_torch(model: torch.nn.Module, onnx_path: str | Path, feeds: list[tuple[torch.Tensor, ...]],
                       input_names: list[str], threads: int | None = None, inter_threads: int | None = None,
                       top1_axis: int = -1) -> Agreement:
    """Run `model` and the ONNX file through onnxruntime (runtimes.ort.open_session, `threads` as it takes them) on
    each feed (one tensor per input, in `input_names` order) and compare every output."""
    from edgekd.runtimes.ort import open_session

    session = open_session(onnx_path, threads, inter_threads)
    model = model.eval()
    worst, agree, rows = [], [], 0
    for feed in feeds:
        with torch.no_grad():
            expected = model(*feed)
        expected = [t.float().numpy() for t in (expected if isinstance(expected, (tuple, list)) else (expected,))]
        got = session.run(None, {name: tensor.numpy() for name, tensor in zip(input_names, feed, strict=True)})
        worst += [float(np.abs(a - b).max()) for a, b in zip(got, expected)]
        agree.append(expected[0].argmax(top1_axis) == got[0].argmax(top1_axis))
        rows += len(feed[0])
    # np.max, not max(): a NaN difference stays NaN, and fails the caller's check
    return Agreement(float(np.max(worst)), float(np.concatenate([a.reshape(-1) for a in agree]).mean()), rows)
