"""ONNX export of a BERT-style classifier with dynamic batch and sequence axes (inputs `input_ids` and
`attention_mask`, output `logits`, as Optimum names them), checked against PyTorch through onnxruntime, and
onnxruntime's fusion and int8 quantization of it (called in edgekd/runtimes/ort_quantize.py: text/ imports no runtime).
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgekd.core.errors import ArtifactError, StageError
from edgekd.core.fileio import atomic_path
from edgekd.train.exporter import ExportSpec, compare_with_torch, write_onnx

INPUT_NAMES = ["input_ids", "attention_mask"]
OUTPUT_NAME = "logits"
OPSET = 18


class LogitsOnly(nn.Module):
    """The classifier as a graph with two tensor inputs and one output: no token_type_ids (one segment), no
    ModelOutput dataclass, which the exported graph would otherwise flatten into unnamed outputs."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


def export(model: nn.Module, path: str | Path, max_length: int, opset: int = OPSET, fuse: bool = True) -> Path:
    """Write `model` as ONNX with batch and sequence dynamic and check it with onnx's checker. The sequence may be
    up to `max_length` tokens, the position table's size (the graph itself does not bound it; the tokenizer does).
    With `fuse`, the graph is then rewritten by onnxruntime's transformer optimizer into its fused BERT operators
    (see `fuse_for_onnxruntime`): faster on onnxruntime, and what lets dynamic int8 quantize attention; only
    onnxruntime runs those operators, so pass fuse=False for other runtimes."""
    import onnx

    wrapped = LogitsOnly(model).eval()
    example = (torch.ones(2, 8, dtype=torch.long), torch.ones(2, 8, dtype=torch.long))
    dynamic = {name: {0: "batch", 1: "sequence"} for name in INPUT_NAMES} | {OUTPUT_NAME: {0: "batch"}}
    path = Path(path)
    # The TorchScript exporter (dynamo=False), not dynamo: onnxruntime's BERT optimizer recognises its attention
    # subgraph (3 Attention + 1 EmbedLayerNormalization on a 3-layer student) and not the dynamo graph's (no
    # Attention fused), and fused attention is what int8 needs to pay off at hidden 128.
    spec = ExportSpec(INPUT_NAMES, [OUTPUT_NAME], example, opset, dynamo=False, dynamic_axes=dynamic, verbose=False)
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        write_onnx(wrapped, spec, tmp, failure="export: torch.onnx.export failed")
        onnx.checker.check_model(onnx.load(str(tmp)), full_check=True)
        if fuse:
            fuse_for_onnxruntime(tmp, tmp, model.config.num_attention_heads, model.config.hidden_size)
    return path


# The operators onnxruntime's BERT optimizer writes (domain com.microsoft), counted by `fused_operators`, and the
# int8 forms dynamic quantization turns two of them into (so an int8 file shows it kept the fusion).
FUSED_OPERATORS = ("Attention", "EmbedLayerNormalization", "SkipLayerNormalization", "BiasGelu", "FastGelu", "Gelu",
                   "QAttention", "QEmbedLayerNormalization")


def fuse_for_onnxruntime(source: str | Path, target: str | Path, num_heads: int, hidden_size: int) -> dict[str, int]:
    """Rewrite an exported BERT graph into onnxruntime's fused operators (runtimes/ort_quantize.fuse_bert). Returns
    the count of each fused operator; a graph it could not fuse is still written, and still correct, only not faster."""
    from edgekd.runtimes.ort_quantize import fuse_bert

    fuse_bert(source, target, num_heads, hidden_size)
    return fused_operators(target)


def fused_operators(path: str | Path) -> dict[str, int]:
    """How many of onnxruntime's fused BERT operators the file at `path` holds, by type (zeros omitted)."""
    import onnx

    counts: dict[str, int] = {}
    for node in onnx.load(str(path)).graph.node:
        if node.domain == "com.microsoft" and node.op_type in FUSED_OPERATORS:
            counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


def session(path: str | Path, threads: int = 1):
    from edgekd.runtimes.ort import open_session

    try:
        return open_session(path, threads, 1)
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types for a bad file
        raise ArtifactError(f"{path}: onnxruntime cannot load it ({str(exc)[:160]}); re-export it") from None


def run(path_or_session, inputs: dict[str, np.ndarray]) -> np.ndarray:
    """Logits from onnxruntime for numpy input_ids / attention_mask (int64)."""
    ort_session = session(path_or_session) if isinstance(path_or_session, (str, Path)) else path_or_session
    return ort_session.run([OUTPUT_NAME], {name: inputs[name].astype(np.int64) for name in INPUT_NAMES})[0]


def _feed(inputs: dict[str, np.ndarray]) -> tuple[torch.Tensor, ...]:
    return tuple(torch.from_numpy(inputs[name].astype(np.int64)) for name in INPUT_NAMES)


def compare(model: nn.Module, path: str | Path, inputs: dict[str, np.ndarray]) -> dict[str, float]:
    """How far the ONNX file's logits are from PyTorch's, and how often their top-1 agrees (the one check,
    train/exporter.py, on a one-thread session as `run` opens)."""
    agreement = compare_with_torch(LogitsOnly(model), path, [_feed(inputs)], INPUT_NAMES, threads=1, inter_threads=1)
    return {"max_abs_error": agreement.max_abs_diff, "top1_agreement": agreement.top1_agreement}


def quantize_dynamic_int8(fp32_path: str | Path, int8_path: str | Path, reduce_range: bool) -> Path:
    """onnxruntime dynamic int8 (runtimes/ort_quantize.dynamic_int8_bert): weights of MatMul (and Gather: the
    embedding tables; Attention and EmbedLayerNormalization where fused) stored as int8, activations quantized per
    batch at run time, no calibration data. `reduce_range`: 7-bit weights, which x86 CPUs without VNNI need (their
    8-bit products saturate; see edgekd/quant/host.py)."""
    from edgekd.runtimes.ort_quantize import dynamic_int8_bert

    return dynamic_int8_bert(fp32_path, int8_path, reduce_range)


def quantize_static_int8(fp32_path: str | Path, int8_path: str | Path, calibration: list[dict[str, np.ndarray]],
                         reduce_range: bool, per_channel: bool = False) -> Path:
    """onnxruntime static int8 in QDQ format (runtimes/ort_quantize.static_int8_bert): MatMul weights int8 and their
    activations uint8 with ranges calibrated (min-max) on `calibration`, a list of input batches from the training
    split; weight scales per output channel with `per_channel`. No per-batch quantizing of activations at run time,
    which is what dynamic int8 pays for on small matrices. `reduce_range` as above."""
    from edgekd.runtimes.ort_quantize import static_int8_bert

    if not calibration:
        raise StageError("static int8 needs calibration batches; give at least one batch of training texts")
    return static_int8_bert(fp32_path, int8_path, calibration, INPUT_NAMES, reduce_range, per_channel)
