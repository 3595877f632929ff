from __future__ import annotations

import pytest

from edgekd.config import PipelineConfig, load_config, validate_config
from edgekd.errors import ConfigError


def test_quickstart_config_loads():
    from .conftest import REPO

    config = load_config(REPO / "configs" / "quickstart.yaml")
    assert config.name == "quickstart"
    assert len(config.teachers) == 3
    assert config.targets == ["x86-cpu", "arm64-cpu", "intel-cpu"]


def test_unknown_key_is_named_with_file_and_suggestion(tiny_config, write_config):
    tiny_config["distill"]["temprature"] = 3.0
    path = write_config(tiny_config)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message
    assert "unknown key 'distill.temprature'" in message
    assert "did you mean 'temperature'?" in message


def test_out_of_range_value_names_the_field(tiny_config):
    tiny_config["distill"]["alpha"] = 1.5
    with pytest.raises(ConfigError, match=r"invalid value for 'distill.alpha'.*less than or equal to 1"):
        validate_config(tiny_config, "cfg.yaml")


def test_missing_required_section(tiny_config):
    del tiny_config["student"]
    with pytest.raises(ConfigError, match="missing required key 'student'"):
        validate_config(tiny_config)


def test_digest_changes_with_config(tiny_config):
    first = validate_config(tiny_config).digest()
    tiny_config["seed"] = 1
    assert validate_config(tiny_config).digest() != first


def test_yaml_that_is_not_a_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(path)


def test_every_section_is_present():
    assert set(PipelineConfig.model_fields) >= {"data", "teachers", "student", "distill", "quantize", "export",
                                                 "targets", "bench", "gate"}
