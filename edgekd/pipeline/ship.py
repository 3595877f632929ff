"""`edgekd ship MODEL --data D`: a trained model to gated device bundles in one command, no distillation.

The command writes the pipeline file it stands for (edgekd.yaml in the run folder) and runs it, so the
run can be repeated or edited later with `edgekd run RUN/edgekd.yaml`. Paths in that file are absolute:
it lives in the run folder, not beside the model.
"""
from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

import yaml

from edgekd.core.errors import ConfigError
from edgekd.core.fileio import write_text_atomic
from edgekd.pipeline.config import validate_config
from edgekd.pipeline.ship_options import given

BUILTIN_SOURCES = ("digits", "fashion-mnist")
CONFIG_NAME = "edgekd.yaml"


def ship_config(model: str, data: str, checkpoint: Optional[str] = None, targets: Optional[Sequence[str]] = None,
                max_drop: Optional[float] = None, name: Optional[str] = None,
                calibration: Optional[str] = None, labels: bool = True, metric: Optional[str] = None,
                output: Optional[str] = None, min_speedup: Optional[float] = None,
                max_size_kb: Optional[float] = None) -> dict[str, Any]:
    """The pipeline (as plain data) that ships `model` as given: no teachers, no distill section. `labels` False: the
    data's class folders (or y) are ignored and the model is judged by fidelity to its fp32 outputs. `metric`: a task
    metric (core/task_metrics.py): the model is a fidelity task's (`task: {kind: fidelity, metric: ...}`), an .onnx
    file fed an .npz of its inputs; `output`: the output it scores, by name (task.output; default the first).
    `max_drop`, `min_speedup`, `max_size_kb`: the gate's limits (the gate section), as a profile's gate takes them."""
    config: dict[str, Any] = {"name": name or _name_of(model), "data": _data_section(data), "student": _student(model, checkpoint)}
    if not labels:
        if config["data"]["source"] not in ("imagefolder", "npz"):
            raise ConfigError(f"{given('--no-labels')}: applies to an image folder or an .npz file, not to '{data}'")
        config["data"]["labels"] = "none"
    if metric:
        if not model.endswith(".onnx") or config["data"]["source"] != "npz":
            raise ConfigError(f"{given('--metric', metric, quoted=False)}: judges an .onnx MODEL on an .npz of its inputs "
                              f"(x, and y in the metric's label format); got {given('MODEL', model)} and {given('--data', data)}")
        config["task"] = {"kind": "fidelity", "metric": metric, **({"output": output} if output else {})}
    elif output:
        raise ConfigError(f"{given('--output', output, quoted=False)}: names the output a task metric scores; give "
                          f"{given('--metric')} too")
    if calibration:
        config["quantize"] = {"calibration_images": _folder(calibration, "--calibration")}
    if targets:  # a profile file by its absolute path: the pipeline file lives in the run folder, rerun from anywhere
        config["targets"] = [str(Path(t).resolve()) if Path(t).suffix.lower() in (".yaml", ".yml") and Path(t).is_file()
                             else t for t in targets]
    limits = {"max_drop": max_drop, "min_speedup": min_speedup, "max_size_kb": max_size_kb}
    if any(value is not None for value in limits.values()):
        config["gate"] = {key: value for key, value in limits.items() if value is not None}
    return config


SHIP_HEADER = "# Written by `edgekd ship`"


def refuse_users_config(run_dir: Path) -> None:
    """An edgekd.yaml in --out that edgekd ship did not write (`edgekd init`'s, the user's own pipeline), or that the
    user edited since (its header invites it), is never replaced, --force or not: a run folder's pipeline file is the
    one name a run writes that a user writes too."""
    path = Path(run_dir) / CONFIG_NAME
    if not path.is_file():
        return
    text = path.read_text(encoding="utf-8", errors="replace")
    if not text.startswith(SHIP_HEADER):
        raise ConfigError(f"{given('--out', run_dir)}: holds {CONFIG_NAME}, a pipeline file edgekd ship did not write, which it "
                          f"would replace; give another --out, or run that file: edgekd run {path}")
    header, _, body = text.partition("\n")
    written = re.search(r"content sha256 ([0-9a-f]{16})", header)  # files from before the header carried it: no check
    if written and _digest(body) != written.group(1):
        raise ConfigError(f"{given('--out', run_dir)}: its {CONFIG_NAME} was edited since edgekd ship wrote it, and shipping again "
                          f"would undo the edits; run it as edited: edgekd run {shlex.quote(str(path))} --out "
                          f"{shlex.quote(str(run_dir))} --resume (or move "
                          "it away to ship anew)")


def write_ship_config(config: dict[str, Any], run_dir: Path) -> Path:
    """Validate, then write the pipeline file into the run folder (nothing is written for a bad config); its header
    carries the content's digest, so an edit made since is told apart from ship's own file (refuse_users_config)."""
    path = Path(run_dir) / CONFIG_NAME
    validate_config(config, source="edgekd ship")
    body = yaml.safe_dump(config, sort_keys=False)
    header = (f"{SHIP_HEADER} (content sha256 {_digest(body)}); rerun or edit it: edgekd run {path} --out {run_dir} "
              "--force\n")
    write_text_atomic(path, header + body)
    return path


def _digest(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _student(model: str, checkpoint: Optional[str]) -> dict[str, Any]:
    if model.endswith(".onnx"):
        if checkpoint:
            raise ConfigError(f"{given('--checkpoint')}: {model} is an ONNX file and holds its weights already; remove "
                              f"{given('--checkpoint')}")
        return {"onnx": _absolute(model, "MODEL")}
    if not checkpoint:
        raise ConfigError(f"{given('--checkpoint')}: needed to ship the PyTorch model '{model}' as trained: give its "
                          f"state_dict file (or give {given('MODEL')} as an .onnx file)")
    return {"arch": _absolute_reference(model), "checkpoint": _absolute(checkpoint, "--checkpoint")}


def _data_section(data: str) -> dict[str, Any]:
    if data in BUILTIN_SOURCES:
        return {"source": data}
    path = Path(data)
    if path.is_dir():
        return {"source": "imagefolder", "path": str(path.resolve())}
    if path.suffix == ".npz":
        return {"source": "npz", "path": _absolute(data, "--data")}
    if path.suffix.lower() in (".csv", ".parquet"):
        raise ConfigError(f"{given('--data', data)}: a table, which edgekd ship does not take (it ships a model exported "
                          f"elsewhere, checked on images or arrays); for a table, write a pipeline that distils an "
                          f"ensemble into a small network: edgekd init --data {data}, then edgekd run edgekd.yaml")
    missing = "" if path.exists() else f"no such file or folder ({path.resolve()}); "
    raise ConfigError(f"{given('--data', data)}: {missing}give a folder of images (one sub-folder per class, or unlabeled images), "
                      f"an .npz file with x and y (or x alone), or one of {', '.join(BUILTIN_SOURCES)}")


def _folder(path: str, option: str) -> str:
    found = Path(path)
    if not found.is_dir():
        raise ConfigError(f"{given(option, path)}: not a folder; give a folder of images (any depth, no labels needed)")
    return str(found.resolve())


def _absolute(path: str, option: str) -> str:
    found = Path(path)
    if not found.is_file():
        raise ConfigError(f"{given(option, path)}: file not found")
    return str(found.resolve())


def _absolute_reference(model: str) -> str:
    """file.py:function becomes absolute (the config moves into the run folder); other names stay as given."""
    module, sep, function = model.rpartition(":")
    if sep and module.endswith(".py"):
        return f"{_absolute(module, 'MODEL')}:{function}"
    return model


def _name_of(model: str) -> str:
    stem = Path(model).stem if model.endswith(".onnx") else (model.rpartition(":")[2] or model)
    return re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-") or "model"
