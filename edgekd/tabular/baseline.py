"""The baseline a user would deploy instead of the student: each teacher as ONNX, and the ensemble as one ONNX graph
(skl2onnx / onnxmltools TreeEnsemble operators), with its size, accuracy and latency on onnxruntime."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

ENSEMBLE_FILE = "ensemble.onnx"


def teacher_file(teacher, schema, path: Path) -> tuple[Path | None, str | None]:
    """The teacher's ONNX file: its own for an ONNX teacher, else converted (None with the converter's reason)."""
    import onnx

    from edgekd.tabular.onnx_convert import teacher_onnx

    if teacher.onnx_path is not None:
        return teacher.onnx_path, None
    model, reason = teacher_onnx(teacher.fitted_model(), schema)
    if model is None:
        return None, reason
    onnx.save(model, str(path))
    return path, None


def describe_file(path: Path | None, reason: str | None) -> dict[str, Any]:
    if path is None:
        return {"onnx_bytes": None, "onnx_reason": reason}
    return {"onnx_bytes": Path(path).stat().st_size, "onnx_file": Path(path).name}


def _fed_by_column_name(model, columns: list[str], where: str):
    """A member graph whose inputs skl2onnx renamed ('mean radius' -> 'mean_radius': a user's ONNX teacher converted
    from a DataFrame) with them named as the columns again: the ensemble graph is fed by column name."""
    from edgekd.tabular.onnx_convert import inputs_renamed
    from edgekd.train.teacher_kinds import columns_of_inputs

    return inputs_renamed(model, columns_of_inputs([i.name for i in model.graph.input], columns, where))


def ensemble_file(members: list[Path | None], weights: list[float], path: Path, data, bench_cfg) -> dict[str, Any]:
    """The ensemble graph, its test top-1 (through onnxruntime: what would ship) and batch-1 latency at its best thread
    count; or the reason no converter fits one of its members."""
    import onnx

    from edgekd.tabular.onnx_convert import PROBABILITIES, ensemble_onnx
    from edgekd.tabular.runtime import best_latency, run_onnx

    if any(m is None for m in members):
        return {"onnx_bytes": None, "onnx_reason": f"teachers[{members.index(None)}] has no ONNX converter (see its onnx_reason)"}
    loaded = [_fed_by_column_name(onnx.load(str(m)), list(data.test.x), f"teachers[{number}]")
              for number, m in enumerate(members)]
    for number, model in enumerate(loaded):
        if PROBABILITIES not in [o.name for o in model.graph.output]:
            return {"onnx_bytes": None, "onnx_reason": f"teachers[{number}]'s ONNX file has no '{PROBABILITIES}' output to average"}
    ensemble_onnx(loaded, weights, path)
    probabilities = run_onnx(str(path), data.test.x)
    timing = best_latency(str(path), data.test.x, bench_cfg.latency_spec(), desc="ensemble latency")
    return {"onnx_bytes": path.stat().st_size, "onnx_top1": float((np.argmax(probabilities, 1) == data.test.y).mean()), **timing}
