"""A pipeline config file is read and parsed once, and its digest (what the run manifest compares on --resume) is
one definition for both kinds of config, unchanged from the earlier runs' value."""
from __future__ import annotations

import hashlib
import json

import edgekd.core.yamlio as yamlio
from edgekd.core.sections import model_digest
from edgekd.pipeline.config import load_config


def _counting_parses(monkeypatch) -> list[int]:
    parses = []
    real = yamlio.safe_load

    def counted(text):
        parses.append(1)
        return real(text)

    monkeypatch.setattr(yamlio, "safe_load", counted)
    return parses


def test_a_pipeline_config_is_parsed_once(monkeypatch, tiny_config, write_config):
    path = write_config(tiny_config)
    parses = _counting_parses(monkeypatch)
    load_config(path)
    assert len(parses) == 1


def test_a_language_model_config_is_parsed_once(monkeypatch):
    from tests.conftest import REPO

    parses = _counting_parses(monkeypatch)
    config = load_config(REPO / "configs" / "language_model.yaml")
    assert config.task == "language-model" and len(parses) == 1


def test_both_configs_digest_as_before(tiny_config, write_config):
    from tests.conftest import REPO

    for config in (load_config(write_config(tiny_config)), load_config(REPO / "configs" / "language_model.yaml")):
        earlier = hashlib.sha256(json.dumps(config.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()[:16]
        assert config.digest() == model_digest(config) == earlier


def test_keys_added_with_their_default_leave_the_dump_as_before(tiny_config, write_config):
    """data.scale (auto) and distill.out_of_fold (null) are left out of the dump while at their default: a config
    without them keys its stages as before they existed, so an old run folder resumes with every stage up to date."""
    config = load_config(write_config(tiny_config))
    dump = config.model_dump(mode="json")
    assert "scale" not in dump["data"] and "out_of_fold" not in dump["distill"]
    scaled = load_config(write_config({**tiny_config, "data": {**tiny_config["data"], "source": "npz", "path": "x.npz",
                                                                 "scale": "none"}}))
    assert scaled.model_dump(mode="json")["data"]["scale"] == "none"
