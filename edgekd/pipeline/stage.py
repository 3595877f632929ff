"""What a stage is: a class that names the config sections its result depends on, checks what it will need
before anything runs (check), and runs (run) into its own folder, returning the record the manifest keeps. A task
that does a stage's work its own way plugs in a TaskStep (edgekd/tasks/) instead of a stage class of its own."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from edgekd.pipeline.config import PipelineConfig
    from edgekd.pipeline.context import RunContext
    from edgekd.pipeline.records import StageRecord


@dataclass
class StageOutput:
    """What a stage did: the files it wrote (hashed into the manifest), its metrics, the files it read, and the
    typed record later stages read (pipeline.records; None when no later stage reads this one)."""

    outputs: list[Path]
    metrics: dict[str, Any] = field(default_factory=dict)
    inputs: list[Path] = field(default_factory=list)
    record: StageRecord | None = None

    def manifest_metrics(self) -> dict[str, Any]:
        """The metrics the manifest keeps: the record's keys (pipeline.records, the keys manifests always had)
        with the rest."""
        return {**self.metrics, **(self.record.to_metrics() if self.record is not None else {})}


def fresh_progress(ctx: RunContext, path: Path) -> Path:
    """A training progress checkpoint (train/trainer.train's `checkpoint`), removed first without --resume (the stage
    starts over) and kept with it (training killed mid-stage continues from its last epoch). Every stage that trains
    and every task's training step use it."""
    if not ctx.resume:
        from edgekd.train import distributed

        with distributed.main_first():
            if distributed.is_main():
                path.unlink(missing_ok=True)
    return path


class StageWork:
    """What runs a stage: it names the config sections its result depends on, may refuse the config before anything
    runs (check), and runs (run) into its stage's folder. Stage (below) is the one class per stage name; a task that
    does a stage's work its own way gives a TaskStep (edgekd/tasks/), which the stage hands the run to."""

    name: ClassVar[str]
    # The config sections (dotted for a single key) this stage's result depends on; a stage also depends on
    # everything before it. They make the stage key that --resume compares.
    sections: ClassVar[tuple[str, ...]]
    # Stages that train run on every rank under torchrun (DDP); the others on rank 0 alone.
    trains: ClassVar[bool] = False

    def __init__(self, ctx: RunContext):
        self.ctx = ctx

    @classmethod
    def check(cls, config: PipelineConfig, base_dir: Path) -> None:
        """Before the first stage trains for an hour: refuse what this stage would fail on (a ConfigError or
        TargetError naming the key). Cheap: no data loaded, no model built."""

    @classmethod
    def check_data(cls, ctx: RunContext) -> None:
        """Once the data is loaded, before the first stage trains: refuse what this stage would fail on that only the
        data shows (a pinned calibration set that changed)."""

    def run(self) -> StageOutput:
        raise NotImplementedError


class TaskStep(StageWork):
    """A stage's work as one task does it (a tabular teacher is fitted with scikit-learn, a language model's teacher
    is a GPT-2): it lives in the task's module under edgekd/tasks/, and the task names it (Task.steps). Its sections
    make the stage key in its place, so a run folder keeps its keys whichever module holds the code."""


class Stage(StageWork):
    """One of the seven stages (registry.STAGES): the same class for every task. Where the run's task does this
    stage's work itself (Task.steps), the stage hands it over: the step's sections, check, training flag and run;
    the runner and the run context ask the stage, never which kind of model this is."""

    @classmethod
    def task_step(cls, config) -> type[TaskStep] | None:
        """The run's task's own work for this stage, None when the task leaves it to this class."""
        import importlib

        from edgekd.pipeline.task import task_for

        where = task_for(config).steps(config).get(cls.name)
        if where is None:
            return None
        module, _, name = where.partition(":")
        return getattr(importlib.import_module(module), name)

    @classmethod
    def doer(cls, config) -> type[StageWork]:
        return cls.task_step(config) or cls

    @classmethod
    def sections_for(cls, config) -> tuple[str, ...]:
        return cls.doer(config).sections

    @classmethod
    def trains_for(cls, config) -> bool:
        return cls.doer(config).trains

    @classmethod
    def check_for(cls, config, base_dir: Path) -> None:
        cls.doer(config).check(config, base_dir)

    def work(self) -> StageWork:
        """What runs this stage for this run: the task's step, or this stage itself."""
        step = self.task_step(self.ctx.cfg)
        return step(self.ctx) if step is not None else self
