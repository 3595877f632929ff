"""What a new user meets first: the README says how to get Fashion-MNIST, and the quickstart and `edgekd init`'s
digits file ask for no more evaluation samples than digits' test split holds (else their first run warns about
the config edgekd gave them)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from edgekd.data import load_dataset
from edgekd.pipeline.config import load_config, validate_config
from edgekd.pipeline.config_help import starter_config

ROOT = Path(__file__).resolve().parents[1]


def test_the_readme_says_how_to_install_fashion_mnist_where_it_names_it():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^fashion-mnist:", makefile, re.MULTILINE)
    sections = re.split(r"^## ", readme, flags=re.MULTILINE)
    for section in sections:
        if re.search(r"fashion-mnist|Fashion-MNIST", section) and section.startswith(("A pipeline file", "Benchmarks")):
            assert "make fashion-mnist" in section, section.splitlines()[0]
    assert "make fashion-mnist" in readme


@pytest.mark.parametrize("source", ["quickstart", "init"])
def test_the_digits_files_edgekd_gives_ask_for_at_most_the_test_split(source):
    if source == "quickstart":
        config = load_config(ROOT / "configs" / "quickstart.yaml")
    else:
        config = validate_config(yaml.safe_load(starter_config(data="digits")), "edgekd init")
    assert config.data.source == "digits"
    dataset = load_dataset(config.data, config.seed)
    assert config.bench.eval_samples <= len(dataset.test.y), (config.bench.eval_samples, len(dataset.test.y))
    assert config.bench.eval_samples == len(dataset.test.y)  # and all of it: the smaller the set, the noisier the drop
