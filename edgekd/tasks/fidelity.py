"""Fidelity: any ONNX model shipped as given, judged output by output against its fp32 self and by a named task metric
(edgekd/core/task_metrics.py); every stage is the generic one."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from edgekd.core.metrics import take_rows
from edgekd.core.task_metrics import task_metric
from edgekd.pipeline.task import NO_STEPS


@dataclass(frozen=True)
class Fidelity:
    """`task: {kind: fidelity, metric: NAME}`: an ONNX model of any outputs, shipped as given. Every candidate's output
    is compared with the fp32 model's (cosine, SQNR, max abs error: core.metrics.fidelity) and scored by the task
    metric NAME, against the npz's labels, or without them against the fp32 model's outputs as labels
    (tasks/fidelity_data.py). The metric's score plays top-1's part everywhere (budget, selection, gate), so its
    drops are in its points."""

    metric: str = "top1"
    name: str = "fidelity"
    output: str | None = None  # the output the metric scores (task.output); the run's copy of the model has it first
    fp32_from_onnx: ClassVar[bool] = False  # the model is given as ONNX: run_models reads it (config.ships_onnx)
    has_classes: ClassVar[bool] = False  # no chance level, scaling or class order to judge a task metric by

    def score(self, outputs: np.ndarray, labels: np.ndarray) -> float:
        return task_metric(self.metric).score(outputs, labels)

    def input_spec(self, dataset: Any, name: str, batch: int | str = "batch") -> dict[str, Any]:
        return {"name": name, "shape": [batch, *dataset.input_shape], "dtype": dataset.first_input.dtype.name}

    def evaluation_set(self, dataset: Any, samples: int) -> tuple[np.ndarray, np.ndarray]:
        test = dataset.test
        n = min(samples, len(test))
        return take_rows(test.x, slice(0, n)), test.y[:n]

    def report_rows(self, config, base_dir) -> list[str]:
        from edgekd.pipeline.task import report_rows

        return report_rows(config, base_dir)

    def steps(self, config) -> dict[str, str]:
        return NO_STEPS

    def teacher_outputs(self, ctx, x, samples: int) -> np.ndarray:
        from edgekd.pipeline.run_models import teacher_ensemble_outputs

        return teacher_ensemble_outputs(ctx, x)

    def baselines(self, ctx, y: np.ndarray) -> dict[str, dict[str, float]]:
        return {}

    def teacher_members(self, ctx, x, samples: int) -> list[np.ndarray]:
        return []

    def output_spec(self, dataset: Any, outputs: np.ndarray) -> dict[str, Any]:
        return {"name": "output", "shape": ["batch", *outputs.shape[1:]], "dtype": outputs.dtype.name, "task_metric": self.metric}

    def load_dataset(self, config, base_dir, layout=None):
        from edgekd.tasks.fidelity_data import load_fidelity_dataset

        return load_fidelity_dataset(config, base_dir)
