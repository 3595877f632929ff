"""The text run's models as stages need them: saved with safetensors (nothing unpickled when read back) beside
their configs as JSON, rebuilt from them, and the teacher's logits for the bench stage's reference. Shared by the
text stages and the bench stage, so that no stage imports another; torch is imported inside the functions."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edgekd.core.errors import StageError
from edgekd.core.fileio import atomic_path, write_text_atomic
from edgekd.pipeline.context import RunContext


def save_model(model, folder: Path, stem: str) -> list[Path]:
    from safetensors.torch import save_file

    weights, config = folder / f"{stem}.safetensors", folder / f"{stem}.config.json"
    with atomic_path(weights) as tmp:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp))
    write_text_atomic(config, model.config.to_json_string())
    return [weights, config]


def load_model(folder: Path, stem: str):
    """A classifier saved by save_model: its config from JSON, its weights from safetensors (never a pickle)."""
    from safetensors.torch import load_file
    from transformers import BertConfig

    from edgekd.text import models

    weights, config = folder / f"{stem}.safetensors", folder / f"{stem}.config.json"
    if not weights.is_file() or not config.is_file():
        raise StageError(f"{weights}: missing; run the stage that makes it first")
    # Eager attention, as edgekd.text.models.config builds it: the saved JSON does not carry the choice, and a model
    # rebuilt with transformers' default (sdpa) exports a graph onnxruntime's BERT optimizer cannot fuse.
    model = models.classifier(BertConfig.from_dict(json.loads(config.read_text(encoding="utf-8")), attn_implementation="eager"))
    model.load_state_dict(load_file(str(weights)))
    return model.eval()


def teacher_logits(ctx: RunContext, x: dict[str, np.ndarray]) -> np.ndarray:
    """The trained teacher's logits on tokenized inputs `x` (the bench stage's teacher reference)."""
    from edgekd.text.training import Encoded, outputs

    teacher = load_model(ctx.stage_dir("teachers"), "teacher-0")
    data = Encoded(x["input_ids"], x["attention_mask"], np.zeros(len(x["input_ids"]), np.int64))
    return outputs(teacher, data)["logits"]
