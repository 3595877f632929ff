"""A small table with every kind of column (numbers with gaps, categories with gaps, a column named y) and a run of
the table pipeline on it, shared by the tests of this folder."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

ROWS = 600


def table_rows(rows: int = ROWS, seed: int = 0):
    """carat-like numbers, two category columns and a 3-class target that depends on all of them."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    size = rng.normal(1.0, 0.5, rows)
    price = (size * 1000 + rng.normal(0, 50, rows)).round()
    color = rng.choice(["red", "green", "blue"], rows)
    shape = rng.choice(["round", "square"], rows)
    score = size + (color == "red") * 0.8 - (shape == "square") * 0.5 + rng.normal(0, 0.2, rows)
    label = np.where(score > 1.4, "high", np.where(score > 0.7, "mid", "low"))
    frame = pd.DataFrame({"size": size, "price": price, "color": color, "shape": shape, "y": rng.normal(0, 1, rows), "tier": rng.integers(1, 4, rows),
                          "grade": label})
    frame.loc[rng.choice(rows, 20, replace=False), "size"] = np.nan
    frame.loc[rng.choice(rows, 20, replace=False), "color"] = None
    return frame


@pytest.fixture
def table_csv(tmp_path) -> Path:
    path = tmp_path / "table.csv"
    table_rows().to_csv(path, index=False)
    return path


TABLE_CONFIG = {
    "name": "table",
    "data": {"source": "csv", "path": "table.csv", "target": "grade"},
    "teachers": [
        {"sklearn": "RandomForestClassifier", "params": {"n_estimators": 10, "max_depth": 6}},
        {"lightgbm": "LGBMClassifier", "params": {"n_estimators": 10, "verbose": -1}},
        {"sklearn": "MLPClassifier", "params": {"hidden_layer_sizes": [16], "max_iter": 50}},
    ],
    "student": {"arch": "resmlp", "width": 8, "kwargs": {"depth": 1}},
    "distill": {"temperature": 2, "train": {"epochs": 3, "batch_size": 64, "lr": 0.01, "optimizer": "adamw"}},
    "quantize": {"calibration": "train-64"},
    "targets": ["x86-cpu"],
    "bench": {"eval_samples": 100, "warmup_runs": 1, "warmup_seconds": 0.0, "runs": 5, "min_seconds": 0.0, "rounds": 1,
              "memory": False},
    "gate": {"max_drop": 100.0},
}


def table_config() -> dict:
    return yaml.safe_load(yaml.safe_dump(TABLE_CONFIG))


@pytest.fixture(scope="module")
def table_run(tmp_path_factory):
    """The table pipeline run once on the small table: (run folder, config folder)."""
    from edgekd.pipeline.runner import run_from_file

    folder = tmp_path_factory.mktemp("table-run")
    table_rows().to_csv(folder / "table.csv", index=False)
    config = folder / "config.yaml"
    config.write_text(yaml.safe_dump(table_config()), encoding="utf-8")
    run_from_file(config, out=str(folder / "run"), log=lambda _m: None)
    return folder / "run", folder
