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
    "quantize": ["quantize", "targets", "gate.max_drop", "gate.drop_type"],  # the int8 budget defaults to the gate's
    "compile": ["targets", "gate"],  # the bundles carry the whole gate section
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
    # What each stage did in this invocation: "ran", or "up to date" (skipped by --resume, key and files unchanged).
    # Stages absent here did not run now: their files may be left over from an earlier run.
    outcomes: dict[str, str] = field(default_factory=dict)
    # Checks of the data and models made before the run folder was touched (pipeline.check_inputs): the
    # teachers stage does not repeat them. None: not made yet.
    checked_teachers: list | None = None

    @property
    def base_dir(self) -> Path:
        return self.config_path.parent

    @cached_property
    def dataset(self):
        from ..data import load_dataset

        # Shipping a trained model only evaluates and calibrates: an image folder can then stay on disk.
        lazy = self.cfg.distill.mode == "none" and self.cfg.quantize.method != "qat"
        dataset = load_dataset(self.cfg.data, self.cfg.seed, self.base_dir, lazy=lazy)
        if dataset.labeled:
            return dataset
        from .as_given import with_reference_labels

        return with_reference_labels(self, dataset)

    def stage_dir(self, stage: str) -> Path:
        path = self.run_dir / f"{STAGES.index(stage) + 1:02d}-{stage}"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def stage_key(self, stage: str) -> str:
        dump = self.cfg.model_dump(mode="json")
        sections = [s for name in STAGES[:STAGES.index(stage) + 1] for s in _SECTIONS[name]]
        files = {s: external_inputs(self.cfg, s, self.base_dir) for s in sections}
        # The int8 recipe depends on the host's CPU when quantize.adapt_to_host (quant/host.py): a run
        # resumed on another kind of CPU quantizes again.
        host = {"saturates_8bit": saturates_8bit_products()} if "quantize" in sections else {}
        canonical = json.dumps({"config": {s: _pick(dump, s) for s in sections}, "files": files, **host}, sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def gate_verdict(self) -> dict[str, Any] | None:
        """gate.json when the gate stage ran (or was up to date) in this invocation, else None:
        a gate.json left over from an earlier run is no verdict on this one."""
        if "gate" not in self.outcomes:
            return None
        from ..fileio import read_json

        return read_json(self.run_dir / "gate.json")

    def bundle_dir(self, target: str) -> Path:
        return self.run_dir / "bundle" / target


def saturates_8bit_products() -> bool:
    from ..quant.host import saturates_8bit_products as host_saturates

    return host_saturates()


def _pick(dump: dict, dotted: str) -> Any:
    for part in dotted.split("."):
        dump = dump[part]
    return dump
