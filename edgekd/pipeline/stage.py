"""What a stage is: a class that names the config sections its result depends on, checks what it will need
before anything runs (check), and runs (run) into its own folder, returning the record the manifest keeps."""
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


class Stage:
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

    def run(self) -> StageOutput:
        raise NotImplementedError
