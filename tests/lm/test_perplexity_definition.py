"""Perplexity has one definition (lm/evaluate.next_token_nll): the device's onnx_perplexity and the pipeline's
language-model task score (1 / perplexity) agree on the same logits."""
from __future__ import annotations

import math

import numpy as np
import pytest

from edgekd.lang.perplexity import next_token_nll, onnx_perplexity
from edgekd.tasks.lm import LanguageModel


def _log_softmax(row: np.ndarray) -> np.ndarray:
    return row - math.log(sum(math.exp(v) for v in row))


def test_next_token_nll_scores_each_next_token():
    rng = np.random.default_rng(0)
    logits, tokens = rng.normal(size=(5, 7)), rng.integers(0, 7, size=5)
    expected = [-_log_softmax(logits[i])[tokens[i + 1]] for i in range(4)]
    assert next_token_nll(logits, tokens) == pytest.approx(expected, rel=1e-12)


class _FixedDecoder:
    """A decoder that returns the logits given for each block, in order."""

    def __init__(self, logits: np.ndarray):
        self._logits = iter(logits)

    def empty_cache(self) -> list:
        return []

    def step(self, new_ids, cache):
        return next(self._logits), cache


def test_the_task_score_is_one_over_the_device_perplexity():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(3, 6, 11)).astype(np.float32)
    blocks = rng.integers(0, 11, size=(3, 6))
    device = onnx_perplexity(_FixedDecoder(logits), blocks)
    assert LanguageModel().score(logits, blocks) == pytest.approx(1 / device, rel=1e-12)
