"""Quantization-aware training with torch's core fake-quant ops, exported to the same QDQ ONNX as PTQ.

torch.ao.quantization's eager QAT flow is deprecated in favour of torchao, which targets
torch.export graphs, not QDQ ONNX. The core ops `torch.fake_quantize_per_tensor_affine` and
`torch.fake_quantize_per_channel_affine` are what the legacy ONNX exporter turns into
QuantizeLinear/DequantizeLinear pairs, so this module inserts them itself:

- batch norm is folded into the preceding convolution first (torch.nn.utils.fusion), so the
  weights fake-quantized during training are exactly the weights that are deployed;
- weights: symmetric per-output-channel int8, scales from the current weights (7-bit for
  reduce_range recipes);
- activations: per-tensor, ranges observed (min/max on calibration data, then a moving average
  while training, then frozen), quantized after each ReLU and at the input of every Conv/Linear
  whose input is not quantized already. MaxPool keeps its input's scale, as onnxruntime's own
  QDQ quantizer does, so runtimes can run it in int8.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from edgekd.runtimes.profiles import QuantRecipe

EMA = 0.01  # moving-average constant for activation ranges, torch.ao's default


@dataclass(frozen=True)
class Scheme:
    """The integer formats of a recipe, in the terms of torch's fake-quant ops."""

    act_qmin: int
    act_qmax: int
    symmetric_activations: bool
    weight_qmax: int  # symmetric weights in [-weight_qmax, weight_qmax]
    per_channel: bool

    @classmethod
    def from_recipe(cls, recipe: QuantRecipe) -> Scheme:
        signed = recipe.activation_type == "int8"
        return cls(-128 if signed else 0, 127 if signed else 255, recipe.symmetric_activations,
                   63 if recipe.reduce_range else 127, recipe.per_channel)


class _Tracker:
    """Tensors already fake-quantized in the current forward pass, with the module that did it,
    so a Conv/Linear fed by a ReLU does not quantize its input a second time."""

    def __init__(self):
        self.produced: list[tuple[torch.Tensor, ActivationFakeQuant]] = []

    def find(self, x: torch.Tensor):
        return next((fq for t, fq in self.produced if t is x), None)

    def add(self, x: torch.Tensor, fq: ActivationFakeQuant) -> torch.Tensor:
        self.produced.append((x, fq))
        return x


class ActivationFakeQuant(nn.Module):
    """Per-tensor fake quantization with an observed range; exports as QuantizeLinear/DequantizeLinear."""

    def __init__(self, scheme: Scheme):
        super().__init__()
        self.scheme = scheme
        self.register_buffer("min_val", torch.tensor(float("inf")))
        self.register_buffer("max_val", torch.tensor(float("-inf")))
        self.mode = "minmax"  # minmax (calibration) | ema (training) | frozen

    @torch.no_grad()
    def observe(self, x: torch.Tensor) -> None:
        low, high = x.detach().min().float(), x.detach().max().float()
        if self.mode == "minmax" or not torch.isfinite(self.min_val):
            self.min_val.copy_(torch.minimum(self.min_val, low))
            self.max_val.copy_(torch.maximum(self.max_val, high))
        elif self.mode == "ema":
            self.min_val.lerp_(low, EMA)
            self.max_val.lerp_(high, EMA)

    def qparams(self) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.scheme
        low, high = torch.clamp(self.min_val, max=0.0), torch.clamp(self.max_val, min=0.0)
        if s.symmetric_activations:
            bound = torch.maximum(-low, high)
            low, high = -bound, bound
        scale = torch.clamp((high - low) / (s.act_qmax - s.act_qmin), min=1e-8)
        zero_point = 0 if s.symmetric_activations and s.act_qmin < 0 else torch.round(s.act_qmin - low / scale)
        zero_point = torch.clamp(torch.as_tensor(zero_point), s.act_qmin, s.act_qmax).to(torch.int32)
        return scale.reshape(()), zero_point.reshape(())

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        scale, zero_point = self.qparams()
        if torch.onnx.is_in_onnx_export():  # plain numbers become constant QuantizeLinear inputs
            scale, zero_point = float(scale), int(zero_point)
        return torch.fake_quantize_per_tensor_affine(x, scale, zero_point, self.scheme.act_qmin, self.scheme.act_qmax)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        observing = self.mode == "minmax" or (self.mode == "ema" and self.training)
        if observing and not torch.onnx.is_in_onnx_export():
            self.observe(x)
        return self.quantize(x)


class _QuantWeights(nn.Module):
    """Mixin body for Conv2d/Linear: fake-quantized weights and (unless already quantized) input."""

    def _setup(self, scheme: Scheme, tracker: _Tracker) -> None:
        self.scheme, self._tracker = scheme, [tracker]  # a list keeps the tracker out of the module tree
        self.input_fq = ActivationFakeQuant(scheme)
        channels = self.weight.shape[0] if scheme.per_channel else 1
        self.register_buffer("weight_scale", torch.ones(channels))

    @torch.no_grad()
    def refresh_weight_scale(self) -> None:
        w = self.weight.detach().flatten(1).abs()
        bound = w.amax(1) if self.scheme.per_channel else w.amax().reshape(1)
        self.weight_scale.copy_(torch.clamp(bound / self.scheme.weight_qmax, min=1e-12))

    def quantized_weight(self) -> torch.Tensor:
        if not torch.onnx.is_in_onnx_export():
            self.refresh_weight_scale()
        if self.scheme.per_channel:
            zeros = torch.zeros(self.weight_scale.shape, dtype=torch.int32)
            return torch.fake_quantize_per_channel_affine(self.weight, self.weight_scale, zeros, 0, -128, 127)
        return torch.fake_quantize_per_tensor_affine(self.weight, float(self.weight_scale[0]), 0, -128, 127)

    def quantized_input(self, x: torch.Tensor) -> torch.Tensor:
        tracker = self._tracker[0]
        return x if tracker.find(x) is not None else tracker.add(self.input_fq(x), self.input_fq)


class QuantConv2d(nn.Conv2d, _QuantWeights):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(self.quantized_input(x), self.quantized_weight(), self.bias)


class QuantLinear(nn.Linear, _QuantWeights):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(self.quantized_input(x), self.quantized_weight(), self.bias)


_ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.Hardtanh)
_SAME_SCALE = (nn.MaxPool2d, nn.Flatten, nn.Identity)


class QatModel(nn.Module):
    """A float model with fake quantization inserted; `model` keeps the original module names."""

    def __init__(self, model: nn.Module, scheme: Scheme):
        super().__init__()
        self.scheme, self.tracker = scheme, _Tracker()
        self.model = model
        self.example_input = None  # one input sample, kept for the ONNX export's trace
        self.activation_fq = nn.ModuleDict()
        self._hooks = []
        for name, module in list(model.named_modules()):
            if isinstance(module, _ACTIVATIONS):
                key = name.replace(".", "_")
                self.activation_fq[key] = ActivationFakeQuant(scheme)
                self._hooks.append(module.register_forward_hook(self._quantize_output(self.activation_fq[key])))
            elif isinstance(module, _SAME_SCALE):
                self._hooks.append(module.register_forward_hook(self._keep_scale))

    def _quantize_output(self, fq: ActivationFakeQuant):
        return lambda _module, _inputs, output: self.tracker.add(fq(output), fq)

    def _keep_scale(self, _module, inputs, output):
        source = self.tracker.find(inputs[0]) if inputs else None
        return self.tracker.add(source.quantize(output), source) if source is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.example_input is None:
            self.example_input = x[:1].detach().cpu().numpy()
        self.tracker.produced.clear()
        try:
            return self.model(x)
        finally:
            self.tracker.produced.clear()

    def fake_quant_modules(self) -> list[ActivationFakeQuant]:
        return [m for m in self.modules() if isinstance(m, ActivationFakeQuant)]

    def set_observer_mode(self, mode: str) -> None:
        for fq in self.fake_quant_modules():
            fq.mode = mode


def fold_batch_norms(model: nn.Module) -> list[str]:
    """Fold every BatchNorm2d that directly follows a Conv2d inside an nn.Sequential into the conv.

    Returns the names of batch norms that could not be folded (they stay as float affine ops).
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    model.eval()
    for container in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        keys = list(container._modules)
        for first, second in zip(keys, keys[1:]):
            conv, bn = container._modules[first], container._modules[second]
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                container._modules[first] = fuse_conv_bn_eval(conv, bn)
                container._modules[second] = nn.Identity()
    return [name for name, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def _swap_layers(model: nn.Module, scheme: Scheme, tracker: _Tracker) -> None:
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            kind = QuantConv2d if type(child) is nn.Conv2d else QuantLinear if type(child) is nn.Linear else None
            if kind is None:
                continue
            swapped = copy.copy(child)
            swapped.__class__ = kind  # same parameters and hyper-parameters, quantized forward
            swapped._setup(scheme, tracker)
            setattr(parent, name, swapped)


def prepare_qat(model: nn.Module, recipe: QuantRecipe, calibration: torch.Tensor | None = None,
                batch_size: int = 256) -> QatModel:
    """A fake-quantized copy of `model` (batch norms folded), activation ranges set on `calibration`."""
    scheme = Scheme.from_recipe(recipe)
    float_model = copy.deepcopy(model).float().eval()
    unfolded = fold_batch_norms(float_model)
    qat = QatModel(float_model, scheme)
    _swap_layers(float_model, scheme, qat.tracker)
    qat.unfolded_batch_norms = unfolded
    if calibration is not None:
        calibrate(qat, calibration, batch_size)
    qat.set_observer_mode("ema")
    return qat


@torch.no_grad()
def calibrate(qat: QatModel, samples: torch.Tensor, batch_size: int = 256) -> None:
    qat.eval()
    qat.set_observer_mode("minmax")
    samples = torch.as_tensor(samples)
    for start in range(0, len(samples), batch_size):
        qat(samples[start:start + batch_size])
