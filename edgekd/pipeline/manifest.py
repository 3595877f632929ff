"""The run record: every stage's inputs and outputs (path, sha256, bytes), config key, timings, metrics.

Stages read it to decide whether they can be skipped on `--resume`.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Optional

from edgekd import __version__
from edgekd.core.environment import describe
from edgekd.core.fileio import file_record, read_json, sha256_of, write_json_atomic

RUN_SCHEMA = "edgekd.run/1"


class RunManifest:
    def __init__(self, run_dir: Path, data: dict[str, Any]):
        self.run_dir, self.data = Path(run_dir), data
        self.read_only = False  # set on the non-zero ranks of a torchrun job: they keep the record in memory only

    @property
    def path(self) -> Path:
        return self.run_dir / "manifest.json"

    @classmethod
    def open(cls, run_dir: Path, config_hash: str, config_path: str, task: str | None = None,
             name: str | None = None) -> RunManifest:
        path = Path(run_dir) / "manifest.json"
        if path.is_file():
            data = read_json(path)
        else:
            data = {"schema": RUN_SCHEMA, "stages": {}}
        data.update({"edgekd_version": __version__, "config_hash": config_hash, "config_path": config_path,
                     "environment": describe(), "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        if task is not None:  # what kind of model the folder holds: --resume with another task's file is refused
            data["task"] = task
        if name is not None:  # which run the folder holds: --resume with another run's file is refused
            data["name"] = name
        return cls(run_dir, data)

    def stage(self, name: str) -> Optional[dict[str, Any]]:
        return self.data["stages"].get(name)

    def metrics(self, name: str) -> dict[str, Any]:
        entry = self.stage(name)
        return entry["metrics"] if entry else {}

    def is_fresh(self, name: str, key: str) -> bool:
        """True when the stage finished with this key and its outputs are still as recorded."""
        entry = self.stage(name)
        if not entry or entry.get("status") != "done" or entry.get("key") != key:
            return False
        for output in entry["outputs"]:
            path = self.run_dir / output["path"]
            if not path.is_file() or sha256_of(path) != output["sha256"]:
                return False
        return True

    def record(self, name: str, key: str, inputs: list[Path], outputs: list[Path], metrics: dict[str, Any],
               seconds: float, memory: Optional[dict[str, Any]] = None, parts: Optional[dict[str, str]] = None) -> None:
        """`memory`: the stage's peak RSS (core.peak_memory.measure_peak), kept as the stage entry's `memory`; `parts`:
        what the key covers, digest by digest (RunContext.stage_parts), for why_not_fresh."""
        self.data["stages"][name] = {
            "status": "done", "key": key, "seconds": round(seconds, 3), **({"memory": memory} if memory else {}),
            **({"key_parts": parts} if parts else {}),
            "inputs": [file_record(p, self.run_dir) for p in inputs],
            "outputs": [file_record(p, self.run_dir) for p in outputs],
            "metrics": metrics,
        }
        self.save()

    def why_not_fresh(self, name: str, key: str, parts: dict[str, str]) -> str:
        """Why --resume runs a stage that ran before: what changed since, in a few words for its progress line."""
        entry = self.stage(name)
        if not entry:
            return "it has not run in this folder"
        if entry.get("status") == "stale":
            return entry.get("stale_because", "an earlier stage ran again")
        if entry.get("status") != "done":
            return f"it {entry.get('status')} last time" + (f" ({entry['reason']})" if entry.get("reason") else "")
        if entry.get("key") != key:
            before = entry.get("key_parts") or {}
            changed = [part for part, digest in parts.items() if before.get(part) != digest] if before else []
            return f"changed since it ran: {', '.join(changed)}" if changed else "its config or inputs changed since it ran"
        return "its output files were modified or removed since it ran"

    def mark_stale(self, names: list[str], because: str) -> None:
        """The finished stages `names` no longer describe the run (an earlier stage is running again): their entries stay
        for the record but count as not done, so --resume redoes them and `edgekd gate` / `bench` refuse the report and
        bundles they wrote (device/run_state.py) until they have."""
        changed = False
        for name in names:
            entry = self.data["stages"].get(name)
            if entry and entry.get("status") == "done":
                entry.update(status="stale", stale_because=because)
                changed = True
        if changed:
            self.save()

    def mark_failed(self, name: str, reason: str) -> None:
        previous = self.data["stages"].get(name, {})
        if previous.get("status") == "done":
            return  # the earlier good result stays on record; its files were never replaced
        self.data["stages"][name] = {"status": "failed", "reason": reason}
        self.save()

    def save(self) -> None:
        if self.read_only:
            return
        write_json_atomic(self.path, self.data)
