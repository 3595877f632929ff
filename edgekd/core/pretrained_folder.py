"""A `save_pretrained` folder read safely, shared by the text-classifier and language-model paths: its config.json
(of the one model_type a path supports) and safetensors weights only, since a pickled pytorch_model.bin could run
code when loaded. Errors are one line, starting with `label` (the config key and folder, or the folder)."""
from __future__ import annotations

import json
from pathlib import Path

from edgekd.core.errors import ModelError


def read_config(folder: Path, label: str, model_type: str, kind: str) -> dict:
    """config.json as a dict; refused when missing, unreadable, or not `model_type` (`kind` says what that is)."""
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise ModelError(f"{label}: no config.json; give a folder written by save_pretrained")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{label}: {path} is not readable JSON ({exc}); save the model again with save_pretrained") from None
    got = config.get("model_type") if isinstance(config, dict) else None
    if got != model_type:
        raise ModelError(f"{label}: {path} has model_type {got!r}; only {kind} (model_type '{model_type}') are supported")
    return config


def require_safetensors(folder: Path, label: str) -> None:
    if not any(Path(folder).glob("*.safetensors")):
        raise ModelError(f"{label}: no .safetensors weights (pickled .bin files are not loaded: they can run code); "
                         "save with save_pretrained(folder, safe_serialization=True), the default since transformers 4.35")
