"""Calibration sets: a recipe larger than its split warns and says what it really got."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from edgekd.data import load_dataset
from edgekd.data.calibration import CalibrationRecipe, describe, draw, load_recipe
from edgekd.data.config import DataConfig


@pytest.fixture(scope="module")
def small_digits():
    return load_dataset(DataConfig(source="digits", train_limit=400, test_limit=120), seed=0)


def test_a_recipe_larger_than_its_split_warns_and_records_what_it_got(small_digits):
    recipe = CalibrationRecipe(name="balanced-1024", count=1024, class_balance=True)
    pool_size = len(small_digits.train)
    with pytest.warns(UserWarning, match=rf"'balanced-1024' asks for 1024 samples but the train split holds {pool_size}: "
                                         rf"using all {pool_size} .*not balanced.*e\.g\. train-256"):
        samples, _ = draw(small_digits, recipe)
    info = describe(recipe, samples)
    assert info["requested"] == 1024 and info["samples"] == len(samples) == pool_size
    counts = np.bincount(small_digits.train.y)
    assert info["per_class"] == counts.tolist() and info["class_balanced"] == bool(counts.max() - counts.min() <= 1)


def test_a_recipe_that_fits_draws_quietly_and_balanced(small_digits):
    recipe = load_recipe("train-64").model_copy(update={"class_balance": True, "count": 60})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        samples, _ = draw(small_digits, recipe)
    assert describe(recipe, samples) == {"requested": 60, "samples": 60, "class_balanced": True, "per_class": [6] * 10}


def test_a_class_too_small_for_its_share_is_recorded_as_unbalanced(small_digits):
    labels = small_digits.train.y
    few_nines = small_digits.train.take(np.sort(np.concatenate([np.flatnonzero(labels != 9)[:300], np.flatnonzero(labels == 9)[:3]])))
    recipe = CalibrationRecipe(name="balanced-100", count=100, class_balance=True)
    samples, _ = draw(small_digits, recipe.model_copy(update={"source": "synthetic"}), synthetic=few_nines)
    info = describe(recipe, samples)
    assert info["samples"] == 100 and not info["class_balanced"]
