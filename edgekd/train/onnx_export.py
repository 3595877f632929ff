"""An image classifier to ONNX: its ExportSpec for the one exporter (train/exporter.py), then checks, metadata and
a parity test against onnxruntime."""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from edgekd.core.errors import ArtifactError, StageError
from edgekd.core.fileio import atomic_path
from edgekd.train.config import ExportConfig
from edgekd.train.exporter import ExportSpec, compare_with_torch, write_onnx

INPUT_NAME, OUTPUT_NAME = "input", "logits"


@dataclass
class Parity:
    samples: int
    max_abs_diff: float
    top1_agreement: float

    def to_json(self) -> dict:
        return {"samples": self.samples, "max_abs_diff": self.max_abs_diff, "top1_agreement": self.top1_agreement}


# The torch.export-based exporter emits opset 18 or newer; asked for 17 it exports 18 and tries a
# version conversion that fails on common graphs. Opset 17 therefore goes through the TorchScript
# exporter, which still writes it natively.
DYNAMO_MIN_OPSET = 18


def export_onnx(model: torch.nn.Module, example: np.ndarray, out_path: Path, cfg: ExportConfig, metadata: dict) -> Path:
    """Export to ONNX, then check, infer shapes, confirm the opset and attach metadata."""
    import onnx

    model = model.eval()
    with atomic_path(out_path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        write_onnx(model, export_spec(model, torch.as_tensor(example[:2]), cfg), tmp, failure="export: torch.onnx.export failed")
        proto = onnx.load(str(tmp))
        onnx.checker.check_model(proto, full_check=True)
        proto = onnx.shape_inference.infer_shapes(proto, strict_mode=True)
        opset = next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
        if opset != cfg.opset:
            raise StageError(f"export: asked for export.opset {cfg.opset} but the exporter wrote opset {opset}; "
                             f"set export.opset: {opset}")
        for key, value in metadata.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value if isinstance(value, str) else json.dumps(value)
        onnx.save(proto, str(tmp))
    return out_path


def export_spec(model: torch.nn.Module, sample: torch.Tensor, cfg: ExportConfig) -> ExportSpec:
    """An image classifier's graph: one input, one output, the batch axis dynamic when export.dynamic_batch says."""
    names = {"input_names": [INPUT_NAME], "output_names": [OUTPUT_NAME], "dummy_inputs": (sample,), "opset": cfg.opset,
             "verbose": False, "tolerance": cfg.parity_atol}
    if cfg.opset >= DYNAMO_MIN_OPSET:
        dynamic = {"x": {0: torch.export.Dim("batch", min=1, max=4096)}} if cfg.dynamic_batch else None
        return ExportSpec(**names, dynamo=True, dynamic_shapes=_named(model, dynamic), external_data=False)
    dynamic = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}} if cfg.dynamic_batch else None
    return ExportSpec(**names, dynamo=False, dynamic_axes=dynamic)


def _named(model: torch.nn.Module, dynamic: dict | None) -> dict | None:
    """torch.export keys dynamic shapes by the forward argument's name."""
    if dynamic is None:
        return None
    import inspect

    first = next(iter(inspect.signature(model.forward).parameters))
    return {first: dynamic["x"]}


def read_metadata(onnx_path: Path) -> dict:
    import onnx

    try:
        proto = onnx.load(str(onnx_path), load_external_data=False)
    except Exception as exc:  # protobuf DecodeError and friends
        raise ArtifactError(f"{onnx_path}: not a valid ONNX file ({str(exc).splitlines()[0][:120]}); re-export it") from None
    out = {}
    for entry in proto.metadata_props:
        try:
            out[entry.key] = json.loads(entry.value)
        except json.JSONDecodeError:
            out[entry.key] = entry.value
    return out


def check_onnx_file(onnx_path: Path) -> None:
    """Refuse corrupt or truncated ONNX files with one clear line."""
    import onnx

    try:
        onnx.checker.check_model(str(onnx_path))
    except Exception as exc:  # onnx raises ValidationError, DecodeError, OSError
        raise ArtifactError(f"{onnx_path}: not a valid ONNX model ({str(exc).splitlines()[0][:160]}); re-export it") from None


def parity(model: torch.nn.Module, onnx_path: Path, samples: np.ndarray, cfg: ExportConfig) -> Parity:
    """Compare PyTorch and onnxruntime logits (top-1 over the class axis, 1); fail past the tolerance."""
    agreement = compare_with_torch(model, onnx_path, [(torch.as_tensor(samples),)], [INPUT_NAME], top1_axis=1)
    result = Parity(len(samples), agreement.max_abs_diff, agreement.top1_agreement)
    if result.max_abs_diff > cfg.parity_atol or result.top1_agreement < cfg.min_top1_agreement:
        raise StageError(f"export: ONNX output differs from PyTorch (max |diff| {result.max_abs_diff:.2e} > "
                         f"export.parity_atol {cfg.parity_atol:g} or top-1 agreement {result.top1_agreement:.3f} < "
                         f"{cfg.min_top1_agreement}); try another export.opset")
    return result
