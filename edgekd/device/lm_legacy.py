"""What edgekd wrote for language models before they shared the pipeline's formats, read (never written) so that old
bundles still bench and old reports still gate:
- edgekd.lm-bundle/1 bundles (`files` a {name: sha256} mapping, `model` the decoder's name): upgraded to an
  edgekd.bundle/1 manifest for device/bundle.verify_bundle;
- the lm-report.json `edgekd bench` wrote for LM bundles (edgekd.lm-device-report/1) or the pipeline's bench stage
  wrote (edgekd.lm-report/1): upgraded to an edgekd.report/1 dict judged by the one gate (device/gate.py, on
  perplexity). A device report from before rows recorded their limit keeps the verdict bench gave it while no limit
  is given.
Delete this module one release after nothing writes these formats. Lean: no torch.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Optional

from edgekd.core.errors import ArtifactError
from edgekd.core.thresholds import threshold_problem
from edgekd.device.gate import Check, GateResult, Thresholds, evaluate_report
from edgekd.device.report.build import REPORT_SCHEMA

LM_DEVICE_REPORT = "edgekd.lm-device-report/1"  # `edgekd bench` on LM bundles, before edgekd.report/1
LM_PIPELINE_REPORT = "edgekd.lm-report/1"       # the pipeline's LM bench stage, before edgekd.report/1
LM_REPORTS = (LM_DEVICE_REPORT, LM_PIPELINE_REPORT)


def upgrade_lm_manifest(manifest: dict[str, Any], manifest_path: Path) -> dict[str, Any]:
    """An edgekd.lm-bundle/1 manifest as edgekd.bundle/1: `files` as a list, `artifact` from `model` and `runtime`
    (the decoder backend that opens it), judged on perplexity and gated by bench as before."""
    from edgekd.runtimes import get_backend
    from edgekd.runtimes.registry import decoder_backend_for

    files = manifest.get("files")
    if not isinstance(files, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
        raise ArtifactError(f"{manifest_path}: 'files' must map each file name to its sha256; rebuild the bundle")
    model = manifest.get("model") if isinstance(manifest.get("model"), str) else "model.onnx"
    backend = decoder_backend_for(Path(model), manifest.get("runtime"))
    artifact = {"backend": backend, "precision": manifest.get("precision") or "fp32", "main": model,
                "files": [str(p) for p in get_backend(backend).decoder_files(Path(model))]}
    return {**manifest, "schema": "edgekd.bundle/1", "task_metric": "perplexity", "gate_on_bench": True, "artifact": artifact,
            "files": [{"path": name, "sha256": digest} for name, digest in files.items()]}


def lm_report_schema(data: Any) -> Optional[str]:
    """The old LM report's schema; reports written before they carried `schema` are known by their `format`."""
    if not isinstance(data, dict):
        return None
    for key in ("schema", "format"):
        if data.get(key) in LM_REPORTS:
            return data[key]
    return None


def upgrade_lm_report(data: dict[str, Any], path: Path | str) -> dict[str, Any]:
    """The report as edgekd.report/1 (task_metric perplexity): its references, its rows (each with its own reference and
    the limit it was benched under where bench recorded them). ArtifactError naming the file and field for a malformed
    one."""
    rows = data.get("rows")
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise ArtifactError(f"{path}: malformed report: rows must be a list of objects; regenerate it with edgekd bench")
    gate = data.get("gate") if isinstance(data.get("gate"), dict) else {}
    reference = str(gate.get("reference", "student_fp32"))
    references = {name: {"perplexity": _positive(known.get("perplexity"), f"references.{name}.perplexity", path)}
                  for name, known in (data.get("references") or {}).items() if isinstance(known, dict)}
    recorded = _limit(gate.get("max_increase"), "gate.max_increase", path)  # the pipeline's report: one for all rows
    rows = [_row(row, index, path, recorded) for index, row in enumerate(rows)]
    return {"schema": REPORT_SCHEMA, "task_metric": "perplexity", "references": references, "rows": rows,
            "gate": {"reference": reference, "max_drop": None,
                     "max_increase": min((r["max_increase"] for r in rows if r["max_increase"] is not None), default=None)}}


def gate_old_lm_report(report: dict[str, Any], limits: Thresholds, given: bool) -> GateResult:
    """The one gate, each row by the limit it was benched under unless one is `given` (--max-increase, thresholds); a
    row benched before rows recorded their limit keeps the verdict bench gave it."""
    checks = []
    for row in report["rows"]:
        limit = limits.max_increase if given else row["max_increase"]
        if limit is None and "as_benched" in row:
            checks.append(Check(row["artifact"], "max_increase", row["as_benched"]["passed"], row["as_benched"]["reason"]))
        elif limit is None and row["perplexity"] is not None:
            raise ArtifactError(f"{row['artifact']} records no gate limit; pass --max-increase")  # api.gate names the file
        else:
            checks += evaluate_report({**report, "rows": [row]}, limits.model_copy(update={"max_increase": limit}))
    return GateResult(checks, limits.allow_empty)


def _row(row: dict[str, Any], index: int, path, recorded: Optional[float]) -> dict[str, Any]:
    name = str(row.get("artifact") or f"rows[{index}]")
    own = _limit(row.get("max_increase"), f"rows[{index}].max_increase", path)
    out = {"artifact": name, "target": row.get("target"), "precision": row.get("precision"), "shipped": True,
           "perplexity": _positive(row.get("perplexity"), f"rows[{index}].perplexity", path), "bytes": row.get("bytes"),
           "max_increase": own if own is not None else recorded}
    own = row.get("reference")
    if isinstance(own, dict):
        out["reference"] = {"name": own.get("name"),
                            "perplexity": _positive(own.get("perplexity"), f"rows[{index}].reference.perplexity", path)}
    agreement = (row.get("greedy_agreement_with_fp32") or {}).get("token_agreement")
    if agreement is not None:
        out["token_agreement"] = agreement
    if row.get("max_increase") is None and row.get("gate") in ("PASS", "FAIL"):  # before rows recorded their limit
        out["as_benched"] = {"passed": row["gate"] == "PASS", "reason": f"{row.get('why', '')} (as benched)".strip()}
    return out


def _limit(value: Any, key: str, path) -> Optional[float]:
    if value is not None and (problem := threshold_problem("max_increase", value)):
        raise ArtifactError(f"{path}: {key} {problem}; regenerate the report or pass --max-increase")
    return None if value is None else float(value)


def _positive(value: Any, key: str, path) -> Optional[float]:
    """A perplexity: None when not measured, else a finite number > 0 (a hand-edited one is refused, naming it)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ArtifactError(f"{path}: malformed report: {key} is {value!r}, expected a perplexity > 0; "
                            "regenerate it with edgekd bench")
    return float(value)
