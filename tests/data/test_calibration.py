"""Calibration sets: a recipe larger than its split warns and says what it really got."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from edgekd.core.errors import ConfigError
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


def test_a_count_that_does_not_divide_by_the_classes_is_still_balanced(small_digits):
    """Trial defect (session 14): the built-in class-balanced train-256 drew per_class [27, 25, 26, 25, 25, 26, 25, 25,
    27, 25] on digits (class_balanced false): the remainder of 256 / 10 was filled from all classes at random instead
    of one more sample from six of them."""
    recipe = load_recipe("train-256")
    assert recipe.class_balance and recipe.count == 256
    samples, _ = draw(small_digits, recipe)
    info = describe(recipe, samples, 10)
    assert info["samples"] == 256 and info["class_balanced"]
    assert sorted(info["per_class"]) == [25] * 4 + [26] * 6


def test_a_class_too_small_for_its_share_is_recorded_as_unbalanced(small_digits):
    labels = small_digits.train.y
    few_nines = small_digits.train.take(np.sort(np.concatenate([np.flatnonzero(labels != 9)[:300], np.flatnonzero(labels == 9)[:3]])))
    recipe = CalibrationRecipe(name="balanced-100", count=100, class_balance=True)
    samples, _ = draw(small_digits, recipe.model_copy(update={"source": "synthetic"}), synthetic=few_nines)
    info = describe(recipe, samples)
    assert info["samples"] == 100 and not info["class_balanced"]


def test_an_unlabeled_folder_at_any_depth_calibrates_with_the_data_preprocessing(tmp_path):
    from PIL import Image

    from edgekd.core.errors import DataError
    from edgekd.data.calibration import draw_folder
    from edgekd.data.datasets import preprocess_of

    for label in ("a", "b"):
        (tmp_path / "data" / label).mkdir(parents=True)
        for i in range(6):
            Image.new("L", (9, 9), 20 * i).save(tmp_path / "data" / label / f"{i}.png")
    for i in range(30):
        folder = tmp_path / "calibration" / f"day{i % 3}" / "cam"
        folder.mkdir(parents=True, exist_ok=True)
        Image.new("L", (12, 10), 7 * i).save(folder / f"{i}.png")
    cfg = DataConfig(source="imagefolder", path=str(tmp_path / "data"), color="gray", resize=9, center_crop=9)
    data = load_dataset(cfg, seed=0, lazy=True)
    recipe = CalibrationRecipe(name="t", count=16, seed=3)
    chosen, digest = draw_folder(tmp_path / "calibration", recipe, data, preprocess_of(cfg))
    assert chosen.x.shape == (16, 1, 9, 9) and isinstance(chosen.x, np.ndarray) and (chosen.y == -1).all()
    pixels = chosen.x * data.std[0] + data.mean[0]  # normalised with the data's own statistics
    assert pixels.min() >= -1e-6 and pixels.max() <= 1 + 1e-6 and len(np.unique(pixels.round(4))) == 16
    assert draw_folder(tmp_path / "calibration", recipe, data, preprocess_of(cfg))[1] == digest  # seeded
    assert describe(recipe, chosen)["per_class"] is None
    with pytest.raises(DataError, match=r"calibration_images .*\(1, 12, 12\) after data's preprocessing but the model takes \(1, 9, 9\)"):
        draw_folder(tmp_path / "calibration", recipe, data, preprocess_of(cfg.model_copy(update={"resize": 12, "center_crop": 12})))


def test_a_recipe_name_typo_names_the_nearest_builtin_recipe():
    with pytest.raises(ConfigError, match=r"quantize.calibration 'trian-64': no such recipe; did you mean 'train-64'\? "):
        load_recipe("trian-64")


def test_a_balanced_recipe_smaller_than_the_classes_warns_and_draws_which_classes(small_digits):
    """Trial defect (session 12): count 1 with class_balance drew class 0 and was recorded as balanced, unsaid."""
    recipe = CalibrationRecipe(name="one", count=3, class_balance=True, seed=5)
    with pytest.warns(UserWarning, match=r"'one': count 3 cannot balance 10 classes.*give count at least 10"):
        samples, _ = draw(small_digits, recipe)
    assert len(samples) == 3 and len(set(samples.y.tolist())) == 3
    seeds = [draw(small_digits, recipe.model_copy(update={"seed": s}))[0].y.tolist() for s in range(6)]
    assert len({tuple(labels) for labels in seeds}) > 1 and any(labels != [0, 1, 2] for labels in seeds)


def test_a_pinned_recipe_is_checked_on_a_calibration_folder_too(tmp_path):
    """A recipe's expected_sha256 held for a split only: quantize.calibration_images ignored the pin."""
    from PIL import Image

    from edgekd.core.errors import DataError
    from edgekd.data.calibration import draw_folder
    from edgekd.data.datasets import preprocess_of

    for folder in ("data/a", "data/b", "calib"):
        (tmp_path / folder).mkdir(parents=True)
        for i in range(5):
            Image.new("L", (8, 8), 40 * i).save(tmp_path / folder / f"{i}.png")
    cfg = DataConfig(source="imagefolder", path=str(tmp_path / "data"), color="gray", resize=8, center_crop=8)
    data = load_dataset(cfg, seed=0, lazy=True)
    recipe = CalibrationRecipe(name="pinned", count=5)

    def drawn(pin):
        return draw_folder(tmp_path / "calib", recipe.model_copy(update={"expected_sha256": pin}), data, preprocess_of(cfg))[1]

    digest = drawn(None)
    assert drawn(digest) == digest
    with pytest.raises(DataError, match="'pinned': set sha256 .* != expected_sha256 0+; the data changed"):
        drawn("0" * 64)


def test_a_recipe_name_is_looked_for_beside_the_pipeline_file_first(tmp_path):
    """Trial defect (session 13): `calibration: c0` with calibration/c0.yaml beside the config got "no such recipe;
    built-in recipes: ..." with no word that a path works, and a local calibration/train-64.yaml was silently
    shadowed by the built-in of that name."""
    (tmp_path / "calibration").mkdir()
    (tmp_path / "calibration" / "c0.yaml").write_text("name: c0\ncount: 32\n", encoding="utf-8")
    (tmp_path / "calibration" / "train-64.yaml").write_text("name: mine-64\ncount: 48\n", encoding="utf-8")
    assert load_recipe("c0", tmp_path).count == 32
    assert load_recipe("calibration/c0.yaml", tmp_path).count == 32  # a path, as before
    with pytest.warns(UserWarning, match=r"quantize.calibration 'train-64': using .*calibration/train-64.yaml, beside the "
                                         r"pipeline file, not the built-in recipe of that name"):
        assert load_recipe("train-64", tmp_path).count == 48
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_recipe("train-256", tmp_path).count == 256  # only a built-in: nothing to say
    with pytest.raises(ConfigError, match=r"quantize.calibration 'c0x': no such recipe; did you mean 'c0'\? recipes in "
                                          r".*calibration: c0, train-64; built-in recipes: .*train-64 \(a name is looked for "
                                          r"as .*calibration/c0x.yaml beside the pipeline file, then among the built-ins\); "
                                          r"or give a recipe file's path, relative to the pipeline file"):
        load_recipe("c0x", tmp_path)


def test_per_class_counts_every_class_of_the_pool(small_digits):
    """Trial defect (session 13): describe()'s per_class came from np.bincount of the drawn labels alone, so a set
    without the largest labels listed 8 entries for 10 classes."""
    recipe = CalibrationRecipe(name="low", count=16, class_balance=False)
    low = small_digits.train.take(np.flatnonzero(small_digits.train.y < 8)[:16])
    info = describe(recipe, low, small_digits.num_classes)
    assert len(info["per_class"]) == 10 and info["per_class"][8:] == [0, 0] and sum(info["per_class"]) == 16
    assert info["class_balanced"] is False


def test_unknown_recipe_keys_get_a_did_you_mean_and_the_valid_keys_once(tmp_path):
    """Trial defect (session 14): calibration/mycal.yaml with `samples: 5000` and `split: train` was refused with "unknown
    keys 'samples' (valid keys here: class_balance, count, ...), 'split' (valid keys here: class_balance, count, ...)":
    no did-you-mean, and the seven valid keys printed once per unknown key. Each key now gets its did-you-mean (a near
    spelling, or the recipe's word for it: samples is count), and the valid keys are listed once for those without."""
    recipe = tmp_path / "calibration" / "mycal.yaml"
    recipe.parent.mkdir()
    recipe.write_text("name: mycal\nsamples: 5000\nsplit: train\n")
    with pytest.raises(ConfigError, match=r"mycal.yaml: unknown keys 'samples' \(did you mean 'count'\?\), 'split' \(did "
                                          r"you mean 'source'\?\)$"):
        load_recipe("mycal", tmp_path)
    recipe.write_text("name: mycal\nseeed: 1\nfoo: 1\nbar: 2\n")
    with pytest.raises(ConfigError) as refused:
        load_recipe("mycal", tmp_path)
    message = str(refused.value)
    assert message.endswith("unknown keys 'seeed' (did you mean 'seed'?), 'foo', 'bar'; valid keys here: class_balance, "
                            "count, description, expected_sha256, name, seed, source")
    assert message.count("valid keys") == 1
