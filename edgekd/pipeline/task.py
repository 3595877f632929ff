"""The task seam: what a model takes (its input spec) and what counts as right (the metric), as one object the
stages ask, so a new kind of model (text, next) plugs in here instead of in every stage. Image classification,
top-1, is the one task today."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from edgekd.core.metrics import take_rows, topk


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
class Classification:
    """One label per sample, scored by top-1: what image and text classifiers share."""

    metric: str = "top1"

    def score(self, logits: np.ndarray, labels: np.ndarray) -> float:
        return topk(logits, labels, 1)


@dataclass(frozen=True)
class ImageClassification(Classification):
    name: str = "image-classification"

    def input_spec(self, dataset: Any, name: str, batch: int | str = "batch") -> dict[str, Any]:
        return {"name": name, "shape": [batch, *dataset.input_shape], "dtype": "float32"}

    def evaluation_set(self, dataset: Any, samples: int) -> tuple[np.ndarray, np.ndarray]:
        test = dataset.test
        n = min(samples, len(test))
        return take_rows(test.x, slice(0, n)), test.y[:n]  # one array, or a model with several inputs' {name: array}


@dataclass(frozen=True)
class TextClassification(Classification):
    """data.source text: token ids and their mask in (edgekd.pipeline.text_data), one label per text, top-1."""

    name: str = "text-classification"

    def input_spec(self, dataset: Any, name: str = "input_ids", batch: int | str = "batch") -> dict[str, Any]:
        return {"name": "input_ids", "shape": [batch, "sequence"], "dtype": "int64"}

    def evaluation_set(self, dataset: Any, samples: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
        test = dataset.test
        n = min(samples, len(test))
        return {name: array[:n] for name, array in test.x.items()}, test.y[:n]

    def load_dataset(self, config, base_dir):
        from edgekd.pipeline.text_data import given_model, load_text_dataset

        # A given model (save_pretrained folder) brings its tokenizer and label order: the data must be encoded with them.
        return load_text_dataset(config.data, config.seed, base_dir, given_model(config, base_dir))


@dataclass(frozen=True)
class LanguageModel:
    """Next-token prediction (`task: language-model`): token blocks in, logits over the vocabulary out; perplexity
    (lower is better) is the metric, so score() gives 1 / perplexity to keep 'higher is better'."""

    name: str = "language-model"
    metric: str = "perplexity"

    def score(self, logits: np.ndarray, labels: np.ndarray) -> float:
        """1 / perplexity of (n, length, vocab) logits against the (n, length) token blocks they were computed from."""
        logits = np.asarray(logits, dtype=np.float64)[:, :-1]
        targets = np.asarray(labels)[:, 1:]
        shifted = logits - logits.max(axis=-1, keepdims=True)
        nll = np.log(np.exp(shifted).sum(axis=-1)) - np.take_along_axis(shifted, targets[..., None], axis=-1)[..., 0]
        return float(np.exp(-nll.mean()))

    def input_spec(self, dataset: Any, name: str = "input_ids", batch: int | str = "batch_size") -> dict[str, Any]:
        return {"name": "input_ids", "shape": [batch, "sequence_length"], "dtype": "int64"}

    def evaluation_set(self, dataset: Any, samples: int) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError("language models are measured on token blocks of the run's tokenizer (pipeline/lm/stages_ship.py)")

    def load_dataset(self, config, base_dir):
        from edgekd.pipeline.lm.data import load_lm_dataset

        return load_lm_dataset(config.data, base_dir)


# A new task: a class like ImageClassification, and one line here (and the config key that picks it).
TASKS: dict[str, Task] = {"image-classification": ImageClassification(), "text-classification": TextClassification(),
                          "language-model": LanguageModel()}


def task_for(config) -> Task:
    """The task of a pipeline config: `task: language-model`, text classification for data.source text, else
    image classification."""
    if getattr(config, "task", None) == "language-model":
        return TASKS["language-model"]
    return TASKS["text-classification" if config.data.source == "text" else "image-classification"]
