"""The task seam: what a model takes (its input spec) and what counts as right (the metric), as one object the
stages ask, so a new kind of model plugs in here instead of in every stage. Three tasks: classification (images,
text; top-1), language models (perplexity), and fidelity (any ONNX model shipped as given, judged output by output
against its fp32 self and by a named task metric, edgekd/core/task_metrics.py)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from edgekd.core.metrics import take_rows, topk
from edgekd.core.task_metrics import task_metric


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

    def steps(self, config) -> dict[str, str]:
        """The stages whose work this task does its own way: {stage name: "module:TaskStep class"}, the steps in the
        task's module under edgekd/tasks/ (named by path: imported only when that stage runs, and the pipeline never
        imports them); the seven stages (pipeline/stages/) do the rest and hand these over."""
        ...


NO_STEPS: dict[str, str] = {}  # a task whose every stage is the generic one (images, a model shipped as given)


@dataclass(frozen=True)
class Classification:
    """One label per sample, scored by top-1: what image and text classifiers share."""

    metric: str = "top1"

    def score(self, logits: np.ndarray, labels: np.ndarray) -> float:
        return topk(logits, labels, 1)

    def steps(self, config) -> dict[str, str]:
        return NO_STEPS


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

    def steps(self, config) -> dict[str, str]:
        return TEXT_AS_GIVEN_STEPS if config.distill.mode == "none" else TEXT_STEPS

    def load_dataset(self, config, base_dir):
        from edgekd.pipeline.text_data import given_model, load_text_dataset

        # A given model (save_pretrained folder) brings its tokenizer and label order: the data must be encoded with them.
        return load_text_dataset(config.data, config.seed, base_dir, given_model(config, base_dir))


@dataclass(frozen=True)
class TabularClassification(Classification):
    """data.source csv or parquet: raw columns in, one (batch, 1) input per column named as it (edgekd/data/table_schema.py),
    one label per row, top-1."""

    name: str = "tabular-classification"

    def input_spec(self, dataset: Any, name: str = "columns", batch: int | str = "batch") -> dict[str, Any]:
        return {"name": name, "shape": [batch, 1], "dtype": "mixed: float32 (numeric) and string (categorical) columns",
                "columns": [c.name for c in dataset.schema.columns]}

    def evaluation_set(self, dataset: Any, samples: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
        test = dataset.test
        n = min(samples, len(test))
        return {name: array[:n] for name, array in test.x.items()}, test.y[:n]

    def steps(self, config) -> dict[str, str]:
        return TABULAR_STEPS

    def load_dataset(self, config, base_dir):
        from edgekd.data.tabular import load_tabular_dataset

        return load_tabular_dataset(config.data, config.seed, base_dir)


@dataclass(frozen=True)
class LanguageModel:
    """Next-token prediction (`task: language-model`): token blocks in, logits over the vocabulary out; perplexity
    (lower is better) is the metric, so score() gives 1 / perplexity to keep 'higher is better'."""

    name: str = "language-model"
    metric: str = "perplexity"

    def score(self, logits: np.ndarray, labels: np.ndarray) -> float:
        """1 / perplexity of (n, length, vocab) logits against the (n, length) token blocks they were computed from."""
        from edgekd.lm.evaluate import next_token_nll

        return float(np.exp(-next_token_nll(logits, labels).mean()))

    def input_spec(self, dataset: Any, name: str = "input_ids", batch: int | str = "batch_size") -> dict[str, Any]:
        return {"name": "input_ids", "shape": [batch, "sequence_length"], "dtype": "int64"}

    def evaluation_set(self, dataset: Any, samples: int) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError("language models are measured on token blocks of the run's tokenizer (edgekd/tasks/lm_ship.py)")

    def steps(self, config) -> dict[str, str]:
        return LANGUAGE_MODEL_STEPS

    def load_dataset(self, config, base_dir):
        from edgekd.pipeline.lm.data import load_lm_dataset

        return load_lm_dataset(config.data, base_dir)


@dataclass(frozen=True)
class Fidelity:
    """`task: {kind: fidelity, metric: NAME}`: an ONNX model of any outputs, shipped as given. Every candidate's output
    is compared with the fp32 model's (cosine, SQNR, max abs error: core.metrics.fidelity) and scored by the task
    metric NAME, against the npz's labels, or without them against the fp32 model's outputs as labels
    (pipeline/fidelity_data.py). The metric's score plays top-1's part everywhere (budget, selection, gate), so its
    drops are in its points."""

    metric: str = "top1"
    name: str = "fidelity"
    output: str | None = None  # the output the metric scores (task.output); the run's copy of the model has it first

    def score(self, outputs: np.ndarray, labels: np.ndarray) -> float:
        return task_metric(self.metric).score(outputs, labels)

    def input_spec(self, dataset: Any, name: str, batch: int | str = "batch") -> dict[str, Any]:
        return {"name": name, "shape": [batch, *dataset.input_shape], "dtype": dataset.first_input.dtype.name}

    def evaluation_set(self, dataset: Any, samples: int) -> tuple[np.ndarray, np.ndarray]:
        test = dataset.test
        n = min(samples, len(test))
        return take_rows(test.x, slice(0, n)), test.y[:n]

    def steps(self, config) -> dict[str, str]:
        return NO_STEPS

    def output_spec(self, outputs: np.ndarray) -> dict[str, Any]:
        return {"name": "output", "shape": ["batch", *outputs.shape[1:]], "dtype": outputs.dtype.name, "task_metric": self.metric}

    def load_dataset(self, config, base_dir):
        from edgekd.pipeline.fidelity_data import load_fidelity_dataset

        return load_fidelity_dataset(config, base_dir)


# Tables fit or load their teachers, distill from cached outputs, export one graph taking raw columns and quantize its
# network part (edgekd/tasks/tabular.py); compile, bench and gate are the generic stages.
TABULAR_STEPS = {name: f"edgekd.tasks.tabular:Tabular{name.capitalize()}Step" for name in ("teachers", "distill", "export", "quantize")}

# Text classifiers train a BERT teacher and a DistilBERT-recipe student, export token ids and mask in and quantize their
# own way (edgekd/tasks/text.py); with distill.mode none the user's save_pretrained folder is shipped as given, its
# tokenizer kept by stage 1. Compile, bench and gate are the generic stages.
TEXT_STEPS = {name: f"edgekd.tasks.text:Text{name.capitalize()}Step" for name in ("teachers", "distill", "export", "quantize")}
TEXT_AS_GIVEN_STEPS = {**TEXT_STEPS, "teachers": "edgekd.tasks.text:TextGivenTokenizerStep",
                       "distill": "edgekd.tasks.text:TextAsGivenStep"}
# Language models do every stage their own way (edgekd/tasks/lm_train.py: teacher, student; lm_ship.py: decoder
# export, quantization, bundles, bench, gate).
LANGUAGE_MODEL_STEPS = {**{name: f"edgekd.tasks.lm_train:LM{name.capitalize()}Step" for name in ("teachers", "distill")},
                        **{name: f"edgekd.tasks.lm_ship:LM{name.capitalize()}Step"
                           for name in ("export", "quantize", "compile", "bench", "gate")}}

# A new task: a class like ImageClassification, and one line here (and the config key that picks it).
TASKS: dict[str, Task] = {"image-classification": ImageClassification(), "text-classification": TextClassification(),
                          "language-model": LanguageModel(), "fidelity": Fidelity(),
                          "tabular-classification": TabularClassification()}


def task_for(config) -> Task:
    """The task of a pipeline config: `task: language-model`, `task: {kind: fidelity, metric: ...}`, text classification
    for data.source text, else image classification."""
    task = getattr(config, "task", None)
    if task == "language-model":
        return TASKS["language-model"]
    if getattr(task, "kind", None) == "fidelity":
        return Fidelity(metric=task.metric, output=task.output)
    if config.data.source in ("csv", "parquet"):
        return TASKS["tabular-classification"]
    return TASKS["text-classification" if config.data.source == "text" else "image-classification"]
