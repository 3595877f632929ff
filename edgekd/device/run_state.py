"""Whether a run folder's report.json and bundles still describe its run: the pipeline marks the stages after one that
runs again as stale in manifest.json (pipeline/manifest.RunManifest.mark_stale), and a run interrupted before it redid
them leaves their old files behind. `edgekd gate` and `edgekd bench` read the marks here (json only: no pipeline
import, as on a device) and refuse such files instead of passing a model the run no longer ships."""
from __future__ import annotations

import json
from pathlib import Path

from edgekd.core.errors import ArtifactError


def refuse_stale(run_dir: Path, stage: str, what: str) -> None:
    """ArtifactError when `run_dir` is a pipeline run whose `stage` (bench for report.json, compile for bundle/) is not
    done as recorded (stale after an earlier stage ran again, or failed); nothing for folders that are not runs."""
    manifest = Path(run_dir) / "manifest.json"
    try:
        entry = json.loads(manifest.read_text(encoding="utf-8"))["stages"][stage]
    except (OSError, ValueError, KeyError, TypeError):
        return  # not a pipeline run (a bundle or report copied elsewhere), or one that never ran this stage
    status = entry.get("status") if isinstance(entry, dict) else None
    if status in (None, "done"):
        return
    detail = (f"has not run again since {entry['stale_because']}" if status == "stale" and entry.get("stale_because")
              else f"is {status}" + (f" ({entry['reason']})" if entry.get("reason") else ""))
    raise ArtifactError(f"{what}: stale: the run's '{stage}' stage {detail} ({manifest}); finish the run first: "
                        f"edgekd run CONFIG --out {run_dir} --resume")
