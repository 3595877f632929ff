"""The table student: preprocessing (median imputation and standardization of numbers, one-hot categories) fitted on
the training split, then a small network (an MLP, or a residual MLP) on the features it makes, trained with Hinton's
KD on the ensemble's cached outputs (or labels alone: the scratch baseline).

One ONNX file holds both: the preprocessing is written as ONNX-ML operators (tabular/front.py; categories arrive as
strings, and torch has no string tensors) and joined in front of the network's export (onnx.compose.merge_models),
its one-hot slot selection folded into the network's first layer for fp32. int8 quantizes the network part alone
(calibrated on its features), then the same front is joined again.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgekd.core.errors import ConfigError
from edgekd.data.table_schema import Schema

STUDENT_ARCHS = ("mlp", "resmlp")
FEATURES = "features"  # the network's input: what the preprocessing outputs


class MLP(nn.Module):
    """depth hidden layers of `width` units with ReLU."""

    def __init__(self, inputs: int, classes: int, width: int = 64, depth: int = 2):
        super().__init__()
        layers, size = [], inputs
        for _ in range(depth):
            layers += [nn.Linear(size, width), nn.ReLU()]
            size = width
        self.net = nn.Sequential(*layers, nn.Linear(size, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ResidualBlock(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.inner = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.inner(x))


class ResidualMLP(nn.Module):
    """A projection to `width`, depth residual blocks (two linear layers each), a linear head."""

    def __init__(self, inputs: int, classes: int, width: int = 64, depth: int = 2):
        super().__init__()
        self.stem = nn.Sequential(nn.Linear(inputs, width), nn.ReLU())
        self.blocks = nn.Sequential(*(ResidualBlock(width) for _ in range(depth)))
        self.head = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))


def build_network(arch: str, width: int | None, kwargs: dict, inputs: int, classes: int, where: str = "student") -> nn.Module:
    if arch not in STUDENT_ARCHS:
        raise ConfigError(f"{where}.arch: tables take {' or '.join(STUDENT_ARCHS)}; got {arch!r}")
    unknown = sorted(set(kwargs) - {"depth"})
    if unknown:
        raise ConfigError(f"{where}.kwargs: unknown key '{unknown[0]}'; a table network takes depth (and width)")
    cls = MLP if arch == "mlp" else ResidualMLP
    return cls(inputs, classes, width=width or 64, depth=int(kwargs.get("depth", 2)))


def parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def fit_preprocessing(schema: Schema, x_train: dict[str, np.ndarray]):
    """The student's ColumnTransformer, fitted on the training split."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from edgekd.data.tabular import frame

    parts = []
    if schema.numeric:
        parts.append(("numeric", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), schema.numeric))
    if schema.categorical:
        categories = [list(c.categories) for c in schema.columns if c.kind == "categorical"]
        parts.append(("categorical", OneHotEncoder(categories=categories, handle_unknown="ignore", sparse_output=False,
                                                   dtype=np.float32), schema.categorical))
    front = ColumnTransformer(parts, sparse_threshold=0)
    front.fit(frame(x_train))
    return front


def features(front, x: dict[str, np.ndarray]) -> np.ndarray:
    from edgekd.data.tabular import frame

    return np.ascontiguousarray(front.transform(frame(x)), dtype=np.float32)


@dataclass
class TrainedStudent:
    network: nn.Module
    front: object  # the fitted ColumnTransformer


def export_network(network: nn.Module, inputs: int, path: Path, opset: int) -> Path:
    """The network alone as ONNX: 'features' (batch, F) in, 'logits' (batch, classes) out."""
    import warnings

    from edgekd.train.exporter import ExportSpec, write_onnx

    network = network.eval()
    sample = torch.zeros(2, inputs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        write_onnx(network, ExportSpec([FEATURES], ["logits"], (sample,), opset, dynamo=True,
                                       dynamic_shapes={"x": {0: torch.export.Dim("batch", min=1, max=65536)}},
                                       external_data=False, verbose=False), path)
    return path


def join(front_onnx, network_path: Path, out: Path) -> Path:
    """Preprocessing in front of the network: one graph taking raw columns, giving logits."""
    import onnx
    from onnx import compose

    network = onnx.load(str(network_path))
    front_out = front_onnx.graph.output[0].name
    clash = {i.name for i in front_onnx.graph.input} & {o.name for o in network.graph.output}
    if clash:  # one name for a column and the model's output: ONNX refuses the graph
        raise ConfigError(f"data: column '{sorted(clash)[0]}' has the name of the model's output; rename the column "
                          "(or use data.inputs: types)")
    domains = {o.domain: o.version for o in network.opset_import}
    for opset in front_onnx.opset_import:  # both sides must import the same version of a shared domain
        if opset.domain in domains:
            opset.version = domains[opset.domain]
    front = compose.add_prefix(front_onnx, "pre_", rename_inputs=False, rename_outputs=True)
    network = compose.add_prefix(network, "net_", rename_inputs=True, rename_outputs=False)
    front.ir_version = network.ir_version = max(front.ir_version, network.ir_version)
    merged = compose.merge_models(front, network, io_map=[("pre_" + front_out, "net_" + FEATURES)])
    onnx.checker.check_model(merged)
    onnx.save(merged, str(out))
    return out
