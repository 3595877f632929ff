from __future__ import annotations

import pytest

from edgekd.core.errors import ConfigError
from edgekd.pipeline.config import PipelineConfig, load_config, validate_config


def test_quickstart_config_loads():
    from tests.conftest import REPO

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


def test_a_hint_from_a_teacher_that_does_not_exist_is_refused_at_load(tiny_config):
    tiny_config["distill"]["hints"] = [{"student": "features.4", "teacher": "features.4", "teacher_index": 3}]
    with pytest.raises(ConfigError, match=r"distill.hints\[0\].teacher_index 3: there are 2 teachers \(indices 0..1\)"):
        validate_config(tiny_config)


@pytest.mark.parametrize("mode, extra", [("data_free", {"hints": [{"student": "a", "teacher": "b"}]}),
                                         ("online", {"augment": {"shift": 2}, "finetune_epochs": 3}),
                                         ("online", {"logit_standardize": True}),
                                         ("data_free", {"dkd": {"nontarget_weight": 8.0}})])
def test_offline_only_options_are_refused_in_other_modes(tiny_config, mode, extra):
    tiny_config["distill"] = {"mode": mode, **extra}
    names = ", ".join(f"distill.{key}" for key in sorted(extra))
    with pytest.raises(ConfigError, match=rf"{names}: used only with distill.mode offline, and this config uses {mode}"):
        validate_config(tiny_config)


def test_data_free_calibrates_on_synthetic_images_unless_told_otherwise(tiny_config):
    tiny_config["distill"] = {"mode": "data_free"}
    del tiny_config["quantize"]
    assert validate_config(tiny_config).quantize.calibration == "synthetic-512"
    tiny_config["quantize"] = {"calibration": "train-64"}
    assert validate_config(tiny_config).quantize.calibration == "train-64"


def test_a_cross_field_error_reads_as_one_sentence(tiny_config):
    tiny_config["distill"].update(alpha=0, use_labels=False)
    with pytest.raises(ConfigError) as caught:
        validate_config(tiny_config)
    assert "distill.use_labels: with alpha 0 and use_labels false the student has nothing to learn from" in str(caught.value)
    assert "Value error" not in str(caught.value)


def test_a_synthetic_calibration_set_outside_data_free_stops_preflight(tiny_config, tmp_path):
    from edgekd.pipeline.runner import preflight

    tiny_config["quantize"] = {"calibration": "synthetic-512"}
    with pytest.raises(ConfigError, match=r"quantize.calibration 'synthetic-512': a synthetic set exists only with distill.mode: data_free"):
        preflight(validate_config(tiny_config), tmp_path)


def test_ptq_options_under_qat_are_refused(tiny_config):
    tiny_config["quantize"] = {"method": "qat", "fallback": False, "max_fallback_nodes": 2}
    with pytest.raises(ConfigError, match="quantize.fallback, quantize.max_fallback_nodes: used only with quantize.method ptq"):
        validate_config(tiny_config)


def test_a_plain_qat_config_keeps_the_ptq_defaults_without_complaint(tiny_config):
    tiny_config["quantize"] = {"method": "qat", "calibration": "train-64"}
    assert validate_config(tiny_config).quantize.fallback.enabled is True
    tiny_config["quantize"] = {"method": "ptq", "qat": {"alpha": 0.5}}  # switching methods keeps the qat section valid
    assert validate_config(tiny_config).quantize.qat.alpha == 0.5
