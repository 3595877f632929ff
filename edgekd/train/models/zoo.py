"""Built-in small CNN families, sized by a base width, for inputs from 8x8 up to 224x224.

Hand-written because torchvision has no models small enough for 8x8 and 28x28 inputs on a CPU.
Named layers (`features.N`, `head`) are stable so hint distillation can refer to them.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Union

import torch
from torch import nn


def _conv_bn(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


Size = Union[int, tuple[int, int]]  # square side, or (height, width)


def _hw(size: Size) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def _stage_count(size: Size) -> int:
    """Downsample while the feature map stays at least 2x2 (along its shorter side), at most three times."""
    return max(1, min(3, (min(_hw(size)) // 2).bit_length() - 1))


class ConvNet(nn.Module):
    """VGG-style: two conv-bn-relu per stage, max-pool between stages, global average pool."""

    def __init__(self, in_channels: int, num_classes: int, input_size: Size, width: int = 16):
        super().__init__()
        layers, cin = [], in_channels
        stages = _stage_count(input_size)
        for stage in range(stages):
            cout = width * 2**stage
            layers += [_conv_bn(cin, cout), _conv_bn(cout, cout)]
            if stage < stages - 1:
                layers.append(nn.MaxPool2d(2))
            cin = cout
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(self.pool(self.features(x)), 1))


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout),
        )
        self.skip = nn.Identity() if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.skip(x))


class ResNetMini(nn.Module):
    """A ResNet with one basic block per stage; stride-2 blocks between stages."""

    def __init__(self, in_channels: int, num_classes: int, input_size: Size, width: int = 16):
        super().__init__()
        blocks, cin = [_conv_bn(in_channels, width)], width
        for stage in range(_stage_count(input_size)):
            cout = width * 2**stage
            blocks.append(BasicBlock(cin, cout, stride=1 if stage == 0 else 2))
            cin = cout
        self.features = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(self.pool(self.features(x)), 1))


class MLP(nn.Module):
    """Two hidden layers; the smallest student, and a sanity baseline."""

    def __init__(self, in_channels: int, num_classes: int, input_size: Size, width: int = 64):
        super().__init__()
        height, width_px = _hw(input_size)
        features = in_channels * height * width_px  # from the data's own shape: images need not be square
        self.features = nn.Sequential(nn.Flatten(), nn.Linear(features, width), nn.ReLU(inplace=True),
                                      nn.Linear(width, width), nn.ReLU(inplace=True))
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


BUILTIN_MODELS: dict[str, tuple[Callable[..., nn.Module], int, str]] = {
    "convnet": (ConvNet, 16, "VGG-style CNN: conv-bn-relu pairs, max-pool, global average pool"),
    "resnet": (ResNetMini, 16, "small ResNet, one basic block per stage"),
    "mlp": (MLP, 64, "two-hidden-layer perceptron"),
}
