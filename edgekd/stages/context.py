"""What every stage gets: the config, the run folder, the manifest and the (lazily loaded) dataset."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from ..config import PipelineConfig
from ..manifest import RunManifest
from .inputs import external_inputs

STAGES = ["teachers", "distill", "export", "quantize", "compile", "bench", "gate"]

# Which config sections each stage depends on; a stage also depends on everything before it.
_SECTIONS = {
    "teachers": ["seed", "data", "teachers"],
    "distill": ["student", "distill"],
    "export": ["export"],
    "quantize": ["quantize", "targets"],
    "compile": ["targets", "gate.max_drop", "gate.drop_type"],
    "bench": ["bench"],
    "gate": ["gate"],
}


@dataclass
class StageOutput:
    outputs: list[Path]
    metrics: dict[str, Any] = field(default_factory=dict)
    inputs: list[Path] = field(default_factory=list)


@dataclass
class RunContext:
    cfg: PipelineConfig
    config_path: Path
    run_dir: Path
    manifest: RunManifest
    resume: bool = False  # --resume: training stages continue from their last per-epoch checkpoint

    @property
    def base_dir(self) -> Path:
        return self.config_path.parent

    @cached_property
    def dataset(self):
        from ..data import load_dataset

        return load_dataset(self.cfg.data, self.cfg.seed, self.base_dir)

    def stage_dir(self, stage: str) -> Path:
        path = self.run_dir / f"{STAGES.index(stage) + 1:02d}-{stage}"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def stage_key(self, stage: str) -> str:
        dump = self.cfg.model_dump(mode="json")
        sections = [s for name in STAGES[:STAGES.index(stage) + 1] for s in _SECTIONS[name]]
        files = {s: external_inputs(self.cfg, s, self.base_dir) for s in sections}
        canonical = json.dumps({"config": {s: _pick(dump, s) for s in sections}, "files": files}, sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def bundle_dir(self, target: str) -> Path:
        return self.run_dir / "bundle" / target


def _pick(dump: dict, dotted: str) -> Any:
    for part in dotted.split("."):
        dump = dump[part]
    return dump
