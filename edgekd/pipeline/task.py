"""The task seam: what differs between kinds of model, as one object the stages ask, so a new kind of model plugs in
here instead of in every stage. A Task says how its data is read and split, what a model takes (its input spec), what
counts as right (its metric and score), which references the report carries, and which stages it does its own way
(TaskSteps). Each task is one module under edgekd/tasks/ (image, text, tabular, lm, fidelity), named below by dotted
path and imported when a run asks for it: the pipeline never imports a task's module, the tasks build on the
pipeline."""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cache
from typing import Any, ClassVar, Protocol

import numpy as np

from edgekd.core.metrics import topk


class Task(Protocol):
    name: str
    metric: str  # the name its score goes by in metrics and reports
    # The fp32 student's reference outputs come from its ONNX file, which the export stage checked against PyTorch
    # (text, tables: their torch models are not the image student run_models.build_student rebuilds).
    fp32_from_onnx: ClassVar[bool]
    # Its outputs are one score per class: a chance level, a class order and an input scaling to check a given model by
    # (stages/as_given.py). A fidelity task's outputs are anything its metric scores.
    has_classes: ClassVar[bool]

    def score(self, logits: np.ndarray, labels: np.ndarray) -> float:
        """The metric of the outputs against the labels, as a fraction (higher is better)."""
        ...

    def input_spec(self, dataset: Any, name: str, batch: int | str = "batch") -> dict[str, Any]:
        """The model's input: name, shape (batch first) and dtype, as the manifest and the bundles record it."""
        ...

    def load_dataset(self, config, base_dir, layout=None) -> Any:
        """The run's data, read and split (RunContext.dataset); `layout`: the run folder's, where a task's data needs a
        file the run makes (a language model's blocks, its tokenizer)."""
        ...

    def evaluation_set(self, dataset: Any, samples: int) -> tuple[np.ndarray, np.ndarray]:
        """The held-out samples bench and gate measure on (shipped as each bundle's eval.npz)."""
        ...

    def teacher_outputs(self, ctx, x: Any, samples: int) -> np.ndarray:
        """The teachers' outputs on the evaluation set `x` (its `samples` first test samples), as the student learned
        from them: the report's teacher row (asked by the bench stage when the run has teachers)."""
        ...

    def teacher_members(self, ctx, x: Any, samples: int) -> list[np.ndarray]:
        """Each teacher's own outputs on the evaluation set, in config order, when the teachers are an ensemble the task
        runs one by one: the report's teacher row lists their scores beside the ensemble's (empty: not listed)."""
        ...

    def baselines(self, ctx, y: np.ndarray) -> dict[str, dict[str, float]]:
        """Cheap baselines of this kind of model scored on the evaluation set's labels `y`: reference rows of the
        report, by name (the bench stage adds the student trained from scratch)."""
        ...

    def output_spec(self, dataset: Any, outputs: np.ndarray) -> dict[str, Any]:
        """The model's output as the manifest and the bundles record it, from the fp32 model's `outputs`."""
        ...

    def report_rows(self, config, base_dir) -> list[str]:
        """Every row name the bench stage's report will have for this config, references first: what gate.reference
        may name (GateStage.check)."""
        ...

    def steps(self, config) -> dict[str, str]:
        """The stages whose work this task does its own way: {stage name: "module:TaskStep class"}, the steps in the
        task's module under edgekd/tasks/ (named by path: imported only when that stage runs, and the pipeline never
        imports them); the seven stages (pipeline/stages/) do the rest and hand these over."""
        ...


NO_STEPS: dict[str, str] = {}  # a task whose every stage is the generic one (images, a model shipped as given)


@dataclass(frozen=True)
class Classification:
    """One label per sample, scored by top-1: what image, text and table classifiers share."""

    metric: str = "top1"
    fp32_from_onnx: ClassVar[bool] = False
    has_classes: ClassVar[bool] = True

    def score(self, logits: np.ndarray, labels: np.ndarray) -> float:
        return topk(logits, labels, 1)

    def output_spec(self, dataset: Any, outputs: np.ndarray) -> dict[str, Any]:
        return {"name": "logits", "shape": ["batch", dataset.num_classes], "dtype": "float32"}

    def steps(self, config) -> dict[str, str]:
        return NO_STEPS

    def baselines(self, ctx, y: np.ndarray) -> dict[str, dict[str, float]]:
        return {}

    def teacher_members(self, ctx, x: Any, samples: int) -> list[np.ndarray]:
        return []

    def report_rows(self, config, base_dir) -> list[str]:
        return report_rows(config, base_dir)


def report_rows(config, base_dir) -> list[str]:
    """Every row name the bench stage's report will have for this config, references first (stages/bench.py):
    any of them can be the gate's reference: the classifiers' and fidelity tasks' Task.report_rows."""
    from edgekd.core.errors import EdgeKDError
    from edgekd.pipeline.records import INT8_NAMES
    from edgekd.runtimes import load_profile

    rows = ["student_fp32"] + (["teacher"] if config.teachers else [])
    rows += ["tfidf_logreg"] if config.data.source == "text" else []
    rows += ["student_scratch"] if config.distill.compare_scratch else []
    for name in config.targets:
        try:
            profile = load_profile(name, base_dir)
        except EdgeKDError:
            continue  # the compile stage's check names the target at fault
        rows += [f"{profile.name}/{p}" for p in profile.precisions if p != "int8"]
        if "int8" in profile.precisions and config.quantize.method != "none":  # the names the method can make
            made = ("int8-qat",) if config.quantize.method == "qat" else tuple(n for n in INT8_NAMES if n != "int8-qat")
            rows += [f"{profile.name}/{n}" for n in made]
    return rows


# A new task: one module under edgekd/tasks/ with its Task class (and its TaskSteps, if it does a stage its own way),
# one line here, and the config key that picks it (task_for below).
TASKS: dict[str, str] = {
    "image-classification": "edgekd.tasks.image:ImageClassification",
    "text-classification": "edgekd.tasks.text:TextClassification",
    "tabular-classification": "edgekd.tasks.tabular:TabularClassification",
    "language-model": "edgekd.tasks.lm:LanguageModel",
    "fidelity": "edgekd.tasks.fidelity:Fidelity",
}


def task_class(name: str) -> type:
    """The Task class registered as `name`, its module imported now."""
    module, _, cls = TASKS[name].partition(":")
    return getattr(importlib.import_module(module), cls)


@cache
def task_named(name: str) -> Task:
    """The task `name` with its defaults (one object per name)."""
    return task_class(name)()


def task_for(config) -> Task:
    """The task of a pipeline config: `task: language-model`, `task: {kind: fidelity, metric: ...}`, tables for
    data.source csv or parquet, text classification for data.source text, else image classification."""
    task = getattr(config, "task", None)
    if isinstance(task, str):  # a file with sections of its own names its task (pipeline/config.OWN_SECTIONS)
        return task_named(task)
    if getattr(task, "kind", None) == "fidelity":
        return task_class("fidelity")(metric=task.metric, output=task.output)
    if config.data.source in ("csv", "parquet"):
        return task_named("tabular-classification")
    return task_named("text-classification" if config.data.source == "text" else "image-classification")


def task_name(config) -> str:
    """The registry name (TASKS) of a config's task, as run folders record it."""
    cls = type(task_for(config))
    return next(name for name, where in TASKS.items() if where.endswith(f":{cls.__name__}"))
