"""The one stage list: every entry is a Stage class that names itself as the registry does and declares the
config sections its key depends on; the run folder, the CLI and the task follow it."""
from __future__ import annotations

import numpy as np
import pytest

from edgekd.pipeline.config import PipelineConfig, validate_config
from edgekd.pipeline.layout import RunLayout
from edgekd.pipeline.registry import STAGE_NAMES, stage_class
from edgekd.pipeline.stage import Stage
from edgekd.pipeline.task import task_for
from edgekd.tasks.image import ImageClassification

pytest.importorskip("torch")  # the distill stage module trains: importing it needs torch


def _config(**changes) -> PipelineConfig:
    raw = {"student": {"arch": "convnet", "width": 4}, "teachers": [{"arch": "mlp"}], **changes}
    return validate_config(raw)


def test_every_registered_stage_is_a_stage_class_named_as_registered():
    config = _config()
    for name in STAGE_NAMES:
        cls = stage_class(config, name)
        assert issubclass(cls, Stage) and cls.name == name and cls.sections, name
    assert [n for n in STAGE_NAMES if stage_class(config, n).trains] == ["teachers", "distill"]


def test_a_model_shipped_as_given_takes_the_distill_stages_place_with_its_sections():
    given = validate_config({"student": {"arch": "convnet", "checkpoint": "s.pt"}})
    cls = stage_class(given, "distill")
    assert cls.__name__ == "AsGivenStage" and cls.name == "distill"
    # and the task section too: what a model given as is gets judged by (top-1, or a fidelity task's metric)
    assert cls.sections == (*stage_class(_config(), "distill").sections, "task")


TASK_CONFIGS = {  # one pipeline file of each task (validated only: nothing here is read or trained)
    "image-classification": {"student": {"arch": "convnet", "width": 4}, "teachers": [{"arch": "mlp"}]},
    "text-classification": {"data": {"source": "text", "path": "c.jsonl"}, "teachers": [{"arch": "bert"}],
                            "student": {"arch": "bert-half"}},
    "tabular-classification": {"data": {"source": "csv", "path": "t.csv", "target": "y"},
                               "teachers": [{"sklearn": "RandomForestClassifier"}], "student": {"arch": "mlp"}},
    "language-model": {"task": "language-model"},
}
# What each task does its own way (edgekd/tasks/); every other stage is the generic one.
OWN_STEPS = {"image-classification": {},
             "text-classification": {s: f"Text{s.capitalize()}Step" for s in ("teachers", "distill", "export", "quantize")},
             "tabular-classification": {s: f"Tabular{s.capitalize()}Step" for s in ("teachers", "distill", "export", "quantize")},
             "language-model": {s: f"LM{s.capitalize()}Step" for s in STAGE_NAMES if s != "gate"}}


def test_every_task_runs_the_same_stage_classes_and_hands_its_own_steps_over():
    """Issue 33: the registry no longer swaps stage classes per task; the stage asks the task (Task.steps)."""
    generic = [stage_class(_config(), name) for name in STAGE_NAMES]
    for task, raw in TASK_CONFIGS.items():
        config = validate_config(raw)
        assert task_for(config).name == task
        assert [stage_class(config, name) for name in STAGE_NAMES] == generic, task
        doers = {name: stage_class(config, name).doer(config) for name in STAGE_NAMES}
        assert {name: cls.__name__ for name, cls in doers.items() if cls not in generic} == OWN_STEPS[task], task
        assert all(cls.name == name for name, cls in doers.items()), task


def test_the_run_folder_is_numbered_in_registry_order(tmp_path):
    layout = RunLayout(tmp_path)
    assert layout.stage_dir(STAGE_NAMES[0]).name == f"01-{STAGE_NAMES[0]}"
    assert layout.int8_onnx("x86").parent.name == f"{STAGE_NAMES.index('quantize') + 1:02d}-quantize"
    assert layout.fp32_onnx.name == "student-fp32.onnx" and layout.bundle_dir("x86-cpu") == tmp_path / "bundle" / "x86-cpu"


def test_the_cli_offers_exactly_the_registered_stages():
    from edgekd.cli import run_cmd

    only = next(p for p in run_cmd.params if p.name == "only")
    assert tuple(only.type.choices) == STAGE_NAMES


def test_the_image_classification_task_scores_top1_and_states_the_input():
    task = task_for(_config())
    assert isinstance(task, ImageClassification) and task.metric == "top1"
    logits, labels = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]]), np.array([1, 1, 1])
    assert task.score(logits, labels) == pytest.approx(2 / 3)

    class _Data:
        input_shape = (1, 8, 8)

    assert task.input_spec(_Data(), "input") == {"name": "input", "shape": ["batch", 1, 8, 8], "dtype": "float32"}
