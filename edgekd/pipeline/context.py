"""What every stage gets: the config, the run folder, the manifest and the (lazily loaded) dataset."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from edgekd.pipeline.config import PipelineConfig
from edgekd.pipeline.layout import RunLayout
from edgekd.pipeline.manifest import RunManifest
from edgekd.pipeline.registry import STAGE_NAMES, stage_class
from edgekd.pipeline.task import Task, task_for


@dataclass
class RunContext:
    cfg: PipelineConfig
    config_path: Path
    run_dir: Path
    manifest: RunManifest
    resume: bool = False  # --resume: training stages continue from their last per-epoch checkpoint
    # What each stage did in this invocation: "ran", or "up to date" (skipped by --resume, key and files unchanged).
    # Stages absent here did not run now: their files may be left over from an earlier run.
    outcomes: dict[str, str] = field(default_factory=dict)
    # Checks of the data and models made before the run folder was touched (pipeline.check_inputs): the
    # teachers stage does not repeat them. None: not made yet.
    checked_teachers: list | None = None

    @property
    def config(self) -> PipelineConfig:
        """The validated config, read-only: the name api.run's docstring and README give it (stages use `cfg`)."""
        return self.cfg

    @property
    def base_dir(self) -> Path:
        return self.config_path.parent

    @cached_property
    def dataset(self):
        """The run's data, read and split by its task (Task.load_dataset)."""
        return self.task.load_dataset(self.cfg, self.base_dir, self.layout)

    @cached_property
    def layout(self) -> RunLayout:
        return RunLayout(self.run_dir)

    @cached_property
    def task(self) -> Task:
        """What the models take and what counts as right: stages ask it rather than assume images and top-1."""
        return task_for(self.cfg)

    def stage_dir(self, stage: str) -> Path:
        return self.layout.stage_dir(stage)

    def stage_key(self, stage: str) -> str:
        picked, files, host = self._key_inputs(stage)
        # a key the config leaves out of its dump while unset (distill.out_of_fold) keys nothing: keys stay as before it
        canonical = json.dumps({"config": {s: v for s, v in picked.items() if v is not _ABSENT}, "files": files, **host},
                               sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def stage_parts(self, stage: str) -> dict[str, str]:
        """A short digest of each thing the stage key covers (each config section, each section's input files, the
        host's int8 kind), recorded beside the key so that a resumed run can say which of them changed."""
        picked, files, host = self._key_inputs(stage)
        parts = {**picked, **{f"{s} files": f for s, f in files.items()}, **({"host CPU": host} if host else {})}
        return {name: hashlib.sha256(json.dumps(None if value is _ABSENT else value, sort_keys=True, default=str).encode())
                .hexdigest()[:12] for name, value in parts.items()}

    def _key_inputs(self, stage: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, bool]]:
        """What a stage's key covers: the config sections of every stage up to it (as dumped), their input files, and
        the host's int8 kind where the quantize section is among them."""
        dump = self.cfg.model_dump(mode="json")
        sections = [s for name in STAGE_NAMES[:STAGE_NAMES.index(stage) + 1] for s in stage_class(self.cfg, name).sections_for(self.cfg)]
        files = {s: self.cfg.external_inputs(s, self.base_dir) for s in sections}
        # The int8 recipe depends on the host's CPU when quantize.adapt_to_host (quant/host.py): a run
        # resumed on another kind of CPU quantizes again.
        host = {"saturates_8bit": saturates_8bit_products()} if "quantize" in sections else {}
        return {s: _pick(dump, s) for s in sections}, files, host

    def gate_verdict(self) -> dict[str, Any] | None:
        """gate.json when the gate stage ran (or was up to date) in this invocation, else None:
        a gate.json left over from an earlier run is no verdict on this one."""
        if "gate" not in self.outcomes:
            return None
        from edgekd.core.fileio import read_json

        return read_json(self.layout.gate_json)


def saturates_8bit_products() -> bool:
    from edgekd.quant.host import saturates_8bit_products as host_saturates

    return host_saturates()


_ABSENT = object()


def _pick(dump: dict, dotted: str) -> Any:
    for part in dotted.split("."):
        if part not in dump:
            return _ABSENT
        dump = dump[part]
    return dump
