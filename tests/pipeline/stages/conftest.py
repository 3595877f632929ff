"""Fixtures shared by the tests of stages run on ONNX files made elsewhere (test_third_party_onnx.py,
test_given_model_mistakes.py)."""
from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def digits_weights():
    """A logistic regression on scikit-learn's digits (pixels / 16): a real classifier, as two initializers."""
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    digits = load_digits()
    x = (digits.images / 16.0).reshape(len(digits.images), -1)
    fit = LogisticRegression(max_iter=300).fit(x, digits.target)
    return fit.coef_.T.astype(np.float32), fit.intercept_.astype(np.float32)
