"""A GPT-2 decoder as one ONNX file with a KV cache: `past_key_values.{i}.key/value` in, `present.{i}.key/value` out.

Names and layout follow Hugging Face Optimum's text-generation-with-past export (inputs input_ids,
attention_mask, position_ids and past_key_values.{i}.key / .value of shape (batch, heads, past, head_size);
outputs logits and present.{i}.key / .value), so runtimes that know Optimum's files can run ours. Unlike
Optimum's older decoder + decoder-with-past pair, one graph serves both the prompt and each new token: the
first step feeds a cache of length 0.

Exporter: torch.onnx.export(dynamo=True) (torch.export + onnxscript), torch 2.9+'s default. The TorchScript
exporter (dynamo=False) also gave a correct file for this wrapper with torch 2.14 and transformers 5.24, but it
is deprecated ("will be removed"); torch.export's symbolic shapes (batch, new tokens, cache length) are the
maintained path. A thin wrapper turns the flat cache tensors into transformers' DynamicCache and back. The
export is then checked against PyTorch's logits and cache at several lengths.
"""
from __future__ import annotations

from pathlib import Path

import torch

from edgekd.core.errors import ArtifactError
from edgekd.core.fileio import atomic_path
from edgekd.runtimes.decoder import CONTEXT_KEY
from edgekd.train.exporter import ExportSpec, compare_with_torch, write_onnx

OPSET = 18
CHECK_TOLERANCE = 1e-3  # max |logit difference|, fp32 ONNX against PyTorch


def input_names(layers: int) -> list[str]:
    return ["input_ids", "attention_mask", "position_ids"] + [f"past_key_values.{i}.{kv}" for i in range(layers) for kv in ("key", "value")]


def output_names(layers: int) -> list[str]:
    return ["logits"] + [f"present.{i}.{kv}" for i in range(layers) for kv in ("key", "value")]


class _FlatCacheDecoder(torch.nn.Module):
    """(input_ids, attention_mask, position_ids, *past) -> (logits, *present): tensors only, as ONNX needs."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, position_ids, *past):
        from transformers import DynamicCache

        cache = DynamicCache(config=self.model.config)
        for layer in range(len(past) // 2):
            cache.update(past[2 * layer], past[2 * layer + 1], layer)
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, cache=cache, use_cache=True)
        present = [tensor for layer in out.cache.layers for tensor in (layer.keys, layer.values)]
        return (out.logits, *present)


def example_inputs(config, batch: int = 2, seq: int = 5, past: int = 3, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Inputs of the given sizes. Sizes of 0 or 1 are avoided for export: torch.export would fix them as constants."""
    generator = torch.Generator().manual_seed(seed)
    head_size = config.n_embd // config.n_head
    ids = torch.randint(0, config.vocab_size, (batch, seq), generator=generator)
    mask = torch.ones(batch, past + seq, dtype=torch.int64)
    positions = torch.arange(past, past + seq).expand(batch, seq).contiguous()
    cache = [torch.randn(batch, config.n_head, past, head_size, generator=generator) for _ in range(2 * config.n_layer)]
    return (ids, mask, positions, *cache)


def export_decoder(model: torch.nn.Module, path: str | Path, opset: int = OPSET) -> Path:
    """Write `model` (a GPT2LMHeadModel) as one self-contained ONNX file, then check it against PyTorch."""
    model = model.eval()
    config = model.config
    wrapper = _FlatCacheDecoder(model).eval()
    layers = config.n_layer
    batch, seq, past = torch.export.Dim("batch_size"), torch.export.Dim("sequence_length"), torch.export.Dim("past_sequence_length")
    total = torch.export.Dim("total_sequence_length")
    shapes = {"input_ids": {0: batch, 1: seq}, "attention_mask": {0: batch, 1: total}, "position_ids": {0: batch, 1: seq},
              "past": tuple({0: batch, 2: past} for _ in range(2 * layers))}
    spec = ExportSpec(input_names(layers), output_names(layers), example_inputs(config), opset, dynamo=True,
                      dynamic_shapes=shapes, external_data=False, verbose=False, tolerance=CHECK_TOLERANCE)
    path = Path(path)
    with atomic_path(path) as tmp:
        # the exporter's first line says which operator or shape failed
        write_onnx(wrapper, spec, tmp, failure=f"{path}: ONNX export of the decoder failed")
        _record_metadata(tmp, {CONTEXT_KEY: config.n_positions, "edgekd.lm.vocab_size": config.vocab_size})
        check_against_torch(model, tmp)
    return path


def check_against_torch(model: torch.nn.Module, onnx_path: str | Path, tolerance: float = CHECK_TOLERANCE) -> float:
    """Run the ONNX file and PyTorch on the same inputs, with an empty and a filled cache; the largest difference
    of any output (logits and cache). Raises ArtifactError beyond `tolerance`."""
    context = model.config.n_positions
    feeds = []
    for batch, seq, past in ((1, 4, 0), (2, 3, 6), (1, 1, 9)):
        seq = min(seq, context)
        past = min(past, context - seq)  # positions beyond the context have no embedding
        feeds.append(example_inputs(model.config, batch, seq, past, seed=past))
    worst = compare_with_torch(_FlatCacheDecoder(model), onnx_path, feeds, input_names(model.config.n_layer)).max_abs_diff
    if not worst <= tolerance:
        raise ArtifactError(f"{onnx_path}: ONNX outputs differ from PyTorch's by {worst:.2e} (> {tolerance:.0e}); the export is wrong")
    return worst


def _record_metadata(path: Path, values: dict) -> None:
    """Facts the generation loop needs (the context length) in the ONNX file itself, so a device needs no other file."""
    import onnx

    proto = onnx.load(str(path))
    for key, value in values.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, str(value)
    onnx.save(proto, str(path))
