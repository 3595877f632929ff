"""The one list of stages, in run order: the runner, the run folder's numbering and the CLI's --only all read it.
Each stage module is imported only when its stage is asked for, so a torch-free run never imports a training stage.
A new stage: one module in stages/ with a Stage subclass, and one line here."""
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
# data.source text: text classifiers train, export and quantize their own way; compile, bench and gate are shared.
TEXT_STAGES = {name: f"edgekd.pipeline.stages.text:Text{name.capitalize()}Stage"
               for name in ("teachers", "distill", "export", "quantize")}
# data.source text with distill.mode none: the user's save_pretrained classifier, shipped as given (its tokenizer
# kept by stage 1, which then trains nothing).
TEXT_AS_GIVEN = {"teachers": "edgekd.pipeline.stages.text:TextGivenTokenizerStage",
                 "distill": "edgekd.pipeline.stages.text:TextAsGivenStage"}
# data.source csv or parquet: tables, with teachers of any kind (pipeline/stages/tabular.py); compile, bench, gate shared.
TABULAR_STAGES = {name: f"edgekd.pipeline.stages.tabular:Tabular{name.capitalize()}Stage"
                  for name in ("teachers", "distill", "export", "quantize")}
STAGE_NAMES = tuple(STAGES)
# task: language-model runs the same stages with its own classes (pipeline/lm/).
LANGUAGE_MODEL_STAGES = {
    "teachers": "edgekd.pipeline.lm.stages_train:LMTeachersStage",
    "distill": "edgekd.pipeline.lm.stages_train:LMDistillStage",
    "export": "edgekd.pipeline.lm.stages_ship:LMExportStage",
    "quantize": "edgekd.pipeline.lm.stages_ship:LMQuantizeStage",
    "compile": "edgekd.pipeline.lm.stages_ship:LMCompileStage",
    "bench": "edgekd.pipeline.lm.stages_ship:LMBenchStage",
    "gate": "edgekd.pipeline.lm.stages_ship:LMGateStage",
}


def stage_class(config, name: str):
    """The Stage subclass that runs `name` for this config."""
    if getattr(config, "task", None) == "language-model":
        where = LANGUAGE_MODEL_STAGES[name]
    elif config.data.source in ("csv", "parquet") and name in TABULAR_STAGES:
        where = TABULAR_STAGES[name]
    elif config.data.source == "text" and name in TEXT_STAGES:
        shipped_as_given = config.distill.mode == "none" and name in TEXT_AS_GIVEN
        where = TEXT_AS_GIVEN[name] if shipped_as_given else TEXT_STAGES[name]
    else:
        where = AS_GIVEN if name == "distill" and config.distill.mode == "none" else STAGES[name]
    module, _, cls = where.partition(":")
    return getattr(importlib.import_module(module), cls)
