"""The task seam: what a model takes (its input spec) and what counts as right (the metric), as one object the
stages ask, so a new kind of model (text, next) plugs in here instead of in every stage. Image classification,
top-1, is the one task today."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from edgekd.core.metrics import topk


class Task(Protocol):
    name: str
    metric: str  # the name its score goes by in metrics and reports

    def score(self, logits: np.ndarray, labels: np.ndarray) -> float:
        """The metric of the outputs against the labels, as a fraction (higher is better)."""
        ...

    def input_spec(self, dataset: Any, name: str, batch: int | str = "batch") -> dict[str, Any]:
        """The model's input: name, shape (batch first) and dtype, as the manifest and the bundles record it."""
        ...

    def evaluation_set(self, dataset: Any, samples: int) -> tuple[np.ndarray, np.ndarray]:
        """The held-out samples bench and gate measure on (shipped as each bundle's eval.npz)."""
        ...


@dataclass(frozen=True)
class ImageClassification:
    name: str = "image-classification"
    metric: str = "top1"

    def score(self, logits: np.ndarray, labels: np.ndarray) -> float:
        return topk(logits, labels, 1)

    def input_spec(self, dataset: Any, name: str, batch: int | str = "batch") -> dict[str, Any]:
        return {"name": name, "shape": [batch, *dataset.input_shape], "dtype": "float32"}

    def evaluation_set(self, dataset: Any, samples: int) -> tuple[np.ndarray, np.ndarray]:
        test = dataset.test
        n = min(samples, len(test))
        return test.x[:n], test.y[:n]


@dataclass(frozen=True)
class TextClassification:
    """data.source text: token ids and their mask in (edgekd.pipeline.text_data), one label per text, top-1."""

    name: str = "text-classification"
    metric: str = "top1"

    def score(self, logits: np.ndarray, labels: np.ndarray) -> float:
        return topk(logits, labels, 1)

    def input_spec(self, dataset: Any, name: str = "input_ids", batch: int | str = "batch") -> dict[str, Any]:
        return {"name": "input_ids", "shape": [batch, "sequence"], "dtype": "int64"}

    def evaluation_set(self, dataset: Any, samples: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
        test = dataset.test
        n = min(samples, len(test))
        return {name: array[:n] for name, array in test.x.items()}, test.y[:n]

    def load_dataset(self, config, base_dir):
        from edgekd.pipeline.text_data import load_text_dataset

        return load_text_dataset(config.data, config.seed, base_dir)


# A new task: a class like ImageClassification, and one line here (and the config key that picks it).
TASKS: dict[str, Task] = {"image-classification": ImageClassification(), "text-classification": TextClassification()}


def task_for(config) -> Task:
    """The task of a pipeline config: text classification for data.source text, else image classification."""
    return TASKS["text-classification" if config.data.source == "text" else "image-classification"]
