"""The one Thresholds model: its validator serves every place thresholds come from (config file, target profile,
report, API argument), and each names where a bad value came from."""
from __future__ import annotations

from pathlib import Path

import pytest

from edgekd.core.errors import ConfigError
from edgekd.core.thresholds import THRESHOLD_NAMES, Thresholds
from edgekd.pipeline.config import PipelineConfig
from edgekd.runtimes.profiles import TargetProfile, load_profile


def test_the_config_gate_section_profiles_and_device_gate_share_the_model():
    assert PipelineConfig.model_fields["gate"].annotation is Thresholds
    assert TargetProfile.model_fields["gate"].annotation is Thresholds
    from edgekd.device import gate
    assert gate.Thresholds is Thresholds
    assert THRESHOLD_NAMES == ("reference", "max_drop", "drop_type", "min_speedup", "max_size_kb", "max_metric_drop",
                               "min_cosine", "min_sqnr_db", "max_increase", "min_greedy_agreement", "allow_empty")


def test_the_language_models_gate_is_a_thresholds_dumped_as_before():
    """LMGateConfig was a second gate model; LMThresholds is the one Thresholds, with the same dump (stage keys)."""
    from edgekd.tasks.lm import LanguageModelConfig

    gate = LanguageModelConfig().gate
    assert isinstance(gate, Thresholds) and gate.max_drop is None and gate.max_increase == 0.03
    assert gate.model_dump(mode="json") == {"max_increase": 0.03, "reference": "student_fp32", "min_greedy_agreement": None}
    with pytest.raises(ValueError, match="max_drop: not a language model's gate key; use max_increase"):
        LanguageModelConfig.model_validate({"gate": {"max_drop": 1}})
    assert "max_increase" not in Thresholds().model_dump() and Thresholds(max_increase=0.1).model_dump()["max_increase"] == 0.1


@pytest.mark.parametrize(("values", "message"), [
    ({"max_drop": -1}, "max_drop\n.*must be >= 0, got -1"),
    ({"min_speedup": 0}, "min_speedup\n.*must be > 0, got 0"),
    ({"max_size_kb": float("inf")}, "max_size_kb\n.*must be a finite number"),
    ({"max_drop": True}, "max_drop\n.*must be a number, not bool"),
    ({"allow_empty": "yes"}, "allow_empty\n.*must be true or false"),
    ({"reference": ""}, "reference\n.*must be a reference name"),
    ({"min_cosine": 1.5}, "min_cosine\n.*must be between -1 and 1, got 1.5"),
    ({"min_sqnr_db": float("nan")}, "min_sqnr_db\n.*must be a finite number"),
    ({"max_metric_drop": -0.5}, "max_metric_drop\n.*must be >= 0, got -0.5"),
    ({"min_sqnr_db": "20"}, "min_sqnr_db\n.*must be a number, not str"),
])
def test_bad_values_are_refused_naming_the_field(values, message):
    with pytest.raises(ValueError, match=message):
        Thresholds(**values)


def test_a_bad_gate_in_a_config_file_names_the_file_and_the_key(tmp_path):
    from edgekd.core.sections import load_yaml_model
    path = tmp_path / "run.yaml"
    quickstart = (Path(__file__).resolve().parents[2] / "configs" / "quickstart.yaml").read_text()
    path.write_text(quickstart.split("\ngate:")[0] + "\ngate: {drop_type: relatve}\n")
    with pytest.raises(ConfigError, match=r"run.yaml: gate.drop_type: must be one of absolute, relative, got 'relatve'"):
        load_yaml_model(path, PipelineConfig, "run config")


def test_a_profile_gate_counts_only_the_keys_it_sets(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("name: mine\nbackend: ort\nprecisions: [fp32]\ngate: {min_speedup: 1.5}\n")
    profile = load_profile(str(path))
    assert profile.gate.given() == {"min_speedup": 1.5}
    # the bundle records the target's own limits only, in the form earlier versions dumped (stage keys unchanged)
    assert profile.model_dump()["gate"] == {"max_drop": None, "min_speedup": 1.5, "max_size_kb": None}
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nbackend: ort\nprecisions: [fp32]\ngate: {max_drop: -2}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: gate.max_drop: must be >= 0"):
        load_profile(str(bad))


def test_fidelity_limits_are_left_out_of_dumps_until_set():
    """Configs and bundles that do not use them dump as before: their stage keys (--resume) do not change."""
    assert set(Thresholds().model_dump()) == {"reference", "max_drop", "drop_type", "min_speedup", "max_size_kb", "allow_empty"}
    limits = Thresholds(min_sqnr_db=-3, min_cosine=0, max_metric_drop=0)
    assert limits.model_dump()["min_sqnr_db"] == -3 and limits.model_dump()["min_cosine"] == 0
    assert Thresholds.model_validate(limits.model_dump()) == limits


def test_metric_drop_limit():
    assert Thresholds(max_drop=2).metric_drop_limit("mask_iou") == 2
    assert Thresholds(max_drop=2, max_metric_drop=0.5).metric_drop_limit("mask_iou") == 0.5
    assert Thresholds(max_drop=2, max_metric_drop=0.5).metric_drop_limit("top1") == 2


@pytest.mark.parametrize("values", [{"max_increase": float("nan")}, {"max_increase": float("inf")},
                                    {"min_greedy_agreement": float("nan")}])
def test_a_language_models_gate_refuses_non_finite_limits_naming_the_key(tmp_path, values):
    from edgekd.core.sections import load_yaml_model
    from edgekd.tasks.lm import LanguageModelConfig

    path = tmp_path / "lm.yaml"
    key, value = next(iter(values.items()))
    path.write_text(f"task: language-model\ngate: {{{key}: {'.nan' if value != value else '.inf'}}}\n")
    with pytest.raises(ConfigError, match=rf"lm.yaml: gate.{key}: must be a finite number"):
        load_yaml_model(path, LanguageModelConfig, "run config")
