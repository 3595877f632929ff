"""distill.transfer_set: MUNGE's synthetic rows (Bucila et al. 2006), labelled by every teacher through its own
logits() and cached, and the student's loss on them (the soft term alone: they have no labels)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

from edgekd.core.errors import ConfigError
from edgekd.data.config import DataConfig
from edgekd.data.tabular import load_tabular_dataset
from edgekd.tabular.transfer import munge, nearest_neighbours
from tests.tabular.conftest import table_config, table_rows


@pytest.fixture
def table(table_csv):
    return load_tabular_dataset(DataConfig(source="csv", path=str(table_csv), target="grade"), 0, table_csv.parent)


def test_munge_makes_size_times_the_rows_in_the_tables_own_form(table):
    x = table.train.x
    made = munge(table.schema, x, size=3, p=0.5, s=1.0, seed=0)
    assert set(made) == set(x) and all(made[k].shape == (3 * len(table.train), 1) for k in made)
    assert all(made[k].dtype == x[k].dtype for k in made)  # float32 numbers, strings for categories
    for column in table.schema.categorical:  # categories are swapped, never invented
        assert set(made[column].ravel()) <= set(x[column].ravel())
    # the rows differ from the training rows (about half the values swapped), and each pass draws anew
    n = len(table.train)
    assert not np.array_equal(made["price"][:n], x["price"]) and not np.array_equal(made["price"][:n], made["price"][n:2 * n])
    assert np.array_equal(munge(table.schema, x, 3, 0.5, 1.0, seed=0)["price"], made["price"])  # seeded


def test_every_swapped_value_comes_from_the_nearest_neighbour(table):
    x = table.train.x
    neighbour = nearest_neighbours(table.schema, x)
    assert (neighbour != np.arange(len(neighbour))).all()
    made = munge(table.schema, x, size=1, p=1.0, s=1e6, seed=0)  # p 1: every value swapped; s huge: no noise
    for column in table.schema.categorical:
        assert np.array_equal(made[column], x[column][neighbour])
    expected = x["price"][neighbour]
    assert np.allclose(made["price"], expected, rtol=1e-4, equal_nan=True)
    # with s 1 the noise is of the size of the gap between the two rows
    noisy = munge(table.schema, x, size=1, p=1.0, s=1.0, seed=0)["price"]
    gap = np.abs(x["price"] - expected)
    both = ~np.isnan(gap)
    assert 0.3 < np.median(np.abs(noisy - expected)[both] / np.maximum(gap[both], 1e-6)) < 1.5


def test_a_missing_number_stays_missing_or_is_swapped_as_it_is(table):
    x = table.train.x
    made = munge(table.schema, x, size=2, p=0.5, s=1.0, seed=1)
    gaps = np.isnan(x["size"]).sum()
    assert gaps > 0 and 0 < np.isnan(made["size"]).sum() <= 2 * 2 * gaps  # no NaN made from two present values
    assert np.isfinite(made["price"]).all()


def test_transfer_rows_get_the_soft_term_alone():
    from edgekd.tabular.distill import kd_objective
    from edgekd.train.config import DistillConfig
    from edgekd.train.distill.losses import kd_loss

    cfg = DistillConfig(temperature=2, alpha=0.5)
    torch.manual_seed(0)
    logits, soft = torch.randn(6, 3), torch.softmax(torch.randn(6, 3), 1)
    labels = torch.tensor([0, 1, 2, -1, -1, -1])
    loss = kd_objective(soft, cfg)(logits, torch.arange(6), labels)
    real = kd_loss(logits[:3], soft[:3], labels[:3], 2, 0.5)
    synthetic = kd_loss(logits[3:], soft[3:], None, 2, 0.5)  # alpha 1: no label term
    assert torch.allclose(loss, (real * 3 + synthetic * 3) / 6)
    assert torch.allclose(kd_objective(soft, cfg)(logits[:3], torch.arange(3), labels[:3]), real)


@pytest.mark.parametrize("transfer, message", [
    ({"method": "smote"}, r"distill.transfer_set.method"),
    ({"size": 0}, r"distill.transfer_set.size"),
    ({"p": 1.5}, r"distill.transfer_set.p"),
    ({"s": 0}, r"distill.transfer_set.s"),
    ({"rows": 4}, r"distill.transfer_set.rows"),
])
def test_bad_transfer_set_values_name_the_key(transfer, message):
    from edgekd.pipeline.config import validate_config

    config = table_config()
    config["distill"]["transfer_set"] = transfer
    with pytest.raises(ConfigError, match=message):
        validate_config(config)


def test_a_transfer_set_needs_a_table():
    from edgekd.pipeline.config import validate_config

    config = {"name": "x", "data": {"source": "digits"}, "teachers": [{"arch": "mlp"}], "student": {"arch": "mlp"},
              "distill": {"transfer_set": {"size": 2}}, "targets": ["x86-cpu"]}
    with pytest.raises(ConfigError, match=r"distill.transfer_set: synthetic rows are made for tables"):
        validate_config(config)


@pytest.mark.slow
def test_the_pipeline_labels_the_transfer_set_with_every_teacher(tmp_path):
    """The teachers stage makes the rows, labels them through each teacher (cached), and the student trains on them;
    its int8 network is held to quantize.max_drop by the fallback."""
    from edgekd.core.fileio import read_json
    from edgekd.pipeline.runner import run_from_file
    from edgekd.tasks.tabular_teachers import TRANSFER_FILE
    from edgekd.train.distill.cache import TeacherLogitCache, resolve_cache_dir

    table_rows().to_csv(tmp_path / "table.csv", index=False)
    config = table_config()
    config["distill"]["transfer_set"] = {"method": "munge", "size": 2, "p": 0.5, "s": 1.0}
    config["quantize"]["max_drop"] = 0.0  # the int8 network goes through the accuracy-aware fallback
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    run = tmp_path / "run"
    run_from_file(tmp_path / "config.yaml", out=str(run), only=["teachers", "distill", "export", "quantize"], log=lambda _m: None)
    stages = read_json(run / "manifest.json")["stages"]
    teachers, distilled = stages["teachers"]["metrics"], stages["distill"]["metrics"]
    train_rows = distilled["rows"]["train"]
    assert teachers["transfer_set"]["rows"] == 2 * train_rows == distilled["rows"]["transfer"]
    with np.load(run / "01-teachers" / TRANSFER_FILE, allow_pickle=False) as saved:
        assert len(saved["price"]) == 2 * train_rows and saved["color"].dtype.kind == "U"
    cache = TeacherLogitCache(resolve_cache_dir(None, None, run))
    for entry in teachers["teachers"]:
        logits = np.asarray(cache.load(entry["cache_keys"]["transfer"]).logits)
        assert logits.shape == (2 * train_rows, 3) and np.isfinite(logits).all()
    assert distilled["val_top1"] > 0.5
    # the int8 network met the budget on validation, keeping in float what the fallback had to
    (recipe,) = stages["quantize"]["metrics"]["recipes"].values()
    assert recipe["fallback"]["max_drop"] == 0.0 and recipe["fallback"]["val_drop"] <= 0.0
    assert isinstance(recipe["nodes_in_float"], list)
