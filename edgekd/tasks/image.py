"""Image classification, the task every generic stage was written for: arrays (or an npz's named inputs) in, one label
per sample, top-1; its data comes from edgekd.data's sources, and it does no stage its own way."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from edgekd.core.metrics import take_rows
from edgekd.pipeline.task import Classification


@dataclass(frozen=True)
class ImageClassification(Classification):
    name: str = "image-classification"

    def input_spec(self, dataset: Any, name: str, batch: int | str = "batch") -> dict[str, Any]:
        return {"name": name, "shape": [batch, *dataset.input_shape], "dtype": "float32"}

    def evaluation_set(self, dataset: Any, samples: int) -> tuple[np.ndarray, np.ndarray]:
        test = dataset.test
        n = min(samples, len(test))
        return take_rows(test.x, slice(0, n)), test.y[:n]  # one array, or a model with several inputs' {name: array}

    def load_dataset(self, config, base_dir, layout=None):
        from edgekd.data import load_dataset

        # Shipping a trained model only evaluates and calibrates: an image folder can then stay on disk.
        lazy = config.distill.mode == "none" and config.quantize.method != "qat"
        dataset = load_dataset(config.data, config.seed, base_dir, lazy=lazy)
        if dataset.layout == "NHWC" and not lazy:  # fed as they are to a given model; training takes (N, C, H, W)
            from edgekd.core.errors import DataError

            raise DataError(f"data.path '{config.data.path}': channels-last images {tuple(dataset.input_shape)}, and the "
                            "models this run trains take (N, C, H, W); save x as numpy.transpose(x, (0, 3, 1, 2))")
        if dataset.labeled:
            return dataset
        from edgekd.pipeline.given_model import with_reference_labels

        return with_reference_labels(config, base_dir, dataset)

    def teacher_outputs(self, ctx, x, samples: int) -> np.ndarray:
        from edgekd.pipeline.run_models import teacher_ensemble_outputs

        return teacher_ensemble_outputs(ctx, x)

    def teacher_members(self, ctx, x, samples: int) -> list[np.ndarray]:
        from edgekd.pipeline.run_models import teacher_member_logits

        return teacher_member_logits(ctx, x) if len(ctx.cfg.teachers) > 1 else []
