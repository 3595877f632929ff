"""Language models (`task: language-model`): next-token prediction, perplexity (lower is better: core.metrics.PERPLEXITY).
Six stages are the task's own steps (lm_train.py: tokenizer, teacher, student; lm_ship.py: decoder export, quantization,
bundles, bench); the gate is the generic one, on the bench step's report.json."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

LANGUAGE_MODEL_STEPS = {**{name: f"edgekd.tasks.lm_train:LM{name.capitalize()}Step" for name in ("teachers", "distill")},
                        **{name: f"edgekd.tasks.lm_ship:LM{name.capitalize()}Step"
                           for name in ("export", "quantize", "compile", "bench")}}  # the gate is the generic one


@dataclass(frozen=True)
class LanguageModel:
    """Next-token prediction (`task: language-model`): token blocks in, logits over the vocabulary out; perplexity
    (lower is better) is the metric, so score() gives 1 / perplexity to keep 'higher is better'."""

    name: str = "language-model"
    metric: str = "perplexity"
    fp32_from_onnx: ClassVar[bool] = False  # its own bench step measures every model (tasks/lm_ship.py)
    has_classes: ClassVar[bool] = False  # a distribution over the vocabulary per position, scored by perplexity

    def score(self, logits: np.ndarray, labels: np.ndarray) -> float:
        """1 / perplexity of (n, length, vocab) logits against the (n, length) token blocks they were computed from."""
        from edgekd.lang.perplexity import next_token_nll

        return float(np.exp(-next_token_nll(logits, labels).mean()))

    def input_spec(self, dataset: Any, name: str = "input_ids", batch: int | str = "batch_size") -> dict[str, Any]:
        return {"name": "input_ids", "shape": [batch, "sequence_length"], "dtype": "int64"}

    def evaluation_set(self, dataset: Any, samples: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The first `samples` test blocks (all with 0) in the run's tokenizer: the model's input_ids, and the tokens
        its next-token predictions are scored against (a bundle's eval.npz)."""
        blocks = dataset.blocks(dataset.tokenizer_path, "test")[: samples or None]
        return {"input_ids": blocks}, blocks

    def steps(self, config) -> dict[str, str]:
        return LANGUAGE_MODEL_STEPS

    def report_rows(self, config, base_dir) -> list[str]:
        return ["student_fp32", "teacher"]  # the bench step's references; gate.reference takes one of them

    def load_dataset(self, config, base_dir, layout=None):
        from edgekd.lm.dataset import load_lm_dataset
        from edgekd.pipeline.lm.layout import tokenizer_path

        return load_lm_dataset(config.data, base_dir, tokenizer_path(layout) if layout is not None else None)
