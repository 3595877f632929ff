"""The one list of stages, in run order: the runner, the run folder's numbering and the CLI's --only all read it.
Each stage module is imported only when its stage is asked for, so a torch-free run never imports a training stage.
A new stage: one module in stages/ with a Stage subclass, and one line here. A new kind of model adds no stage:
its task (pipeline/task.py) names the steps it does its own way (edgekd/tasks/)."""
from __future__ import annotations

import importlib

STAGES = {
    "teachers": "edgekd.pipeline.stages.teachers:TeachersStage",
    "distill": "edgekd.pipeline.stages.distill:DistillStage",
    "export": "edgekd.pipeline.stages.export:ExportStage",
    "quantize": "edgekd.pipeline.stages.quantize:QuantizeStage",
    "compile": "edgekd.pipeline.stages.compile:CompileStage",
    "bench": "edgekd.pipeline.stages.bench:BenchStage",
    "gate": "edgekd.pipeline.stages.gate:GateStage",
}
# With distill.mode none the user's model is shipped as given: this class takes the distill stage's place.
AS_GIVEN = "edgekd.pipeline.stages.as_given:AsGivenStage"
STAGE_NAMES = tuple(STAGES)


def stage_class(config, name: str):
    """The Stage subclass that runs `name` for this config: the same for every task (a task that does a stage's work
    its own way names a TaskStep in Task.steps, which the stage hands the run to); only distill.mode none swaps the
    distill stage for shipping the model as given."""
    mode = getattr(getattr(config, "distill", None), "mode", None)
    where = AS_GIVEN if name == "distill" and mode == "none" else STAGES[name]
    module, _, cls = where.partition(":")
    return getattr(importlib.import_module(module), cls)
