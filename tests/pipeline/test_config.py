from __future__ import annotations

import json
from typing import Annotated, get_args

import pytest
import yaml
from pydantic import BaseModel, TypeAdapter, ValidationError

from edgekd.core.errors import ConfigError
from edgekd.core.sections import model_inside
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
                                         ("data_free", {"dkd": {"nontarget_weight": 8.0}}),
                                         # trial defect (session 12): online hints were told "there are 0 teachers"
                                         ("online", {"hints": [{"student": "a", "teacher": "b"}]})])
def test_offline_only_options_are_refused_in_other_modes(tiny_config, mode, extra):
    tiny_config["distill"] = {"mode": mode, **extra}
    names = ", ".join(f"distill.{key}" for key in sorted(extra))
    with pytest.raises(ConfigError, match=rf"{names}: used only with distill.mode offline, and this config uses {mode}"):
        validate_config(tiny_config)


@pytest.mark.parametrize("distill, message", [
    ({"mode": "online", "alpha": 0.2, "temperature": 9.0}, "distill.alpha, distill.temperature: not used with distill.mode online"),
    ({"alpha": 0.5, "use_labels": False}, "distill.alpha 0.5: with use_labels false the loss is the teachers' soft targets alone"),
])
def test_settings_a_mode_would_ignore_are_refused(tiny_config, distill, message):
    """Trial defect (session 12): alpha and temperature in online mode, and alpha with use_labels false (taken as 1),
    ran without a word and were recorded as if they applied."""
    if distill.get("mode") == "online":
        tiny_config.pop("teachers")
    tiny_config["distill"] = distill
    with pytest.raises(ConfigError, match=message):
        validate_config(tiny_config)


def test_distill_train_is_refused_in_data_free_mode(tiny_config):
    """Trial defect (session 13): distill.mode data_free took distill.train ({epochs: 50}) without a word and ran as if
    it had not been given (its student trains in distill.data_free), while hints and augment were refused."""
    from edgekd.pipeline.distill_modes import run_data_free  # noqa: F401  (the mode's code reads no train key)

    tiny_config["distill"] = {"mode": "data_free", "train": {"epochs": 50}}
    with pytest.raises(ConfigError, match=r"distill.train: not used with distill.mode data_free, whose student learns in "
                                          r"the generator's loop: set distill.data_free.steps, student_steps, student_lr "
                                          r"and batch_size instead; remove it"):
        validate_config(tiny_config)
    tiny_config["distill"] = {"mode": "online", "train": {"epochs": 3}}  # online trains its peers with distill.train
    tiny_config.pop("teachers")
    assert validate_config(tiny_config).distill.train.epochs == 3


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


def test_yes_for_a_seed_is_refused_not_read_as_seed_1(tiny_config, tmp_path):
    """YAML 1.1 reads `seed: yes` as true, and pydantic took true for 1: the run went on with seed 1, silently."""
    path = tmp_path / "seed.yaml"
    tiny_config.pop("seed", None)
    path.write_text("seed: yes\n" + yaml.safe_dump(tiny_config), encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"{path}: seed: must be a whole number, not true .*; write a number"):
        load_config(path)
    tiny_config["distill"]["train"]["epochs"] = False
    with pytest.raises(ConfigError, match=r"distill.train.epochs: must be a whole number, not false"):
        validate_config(tiny_config, "cfg.yaml")


def _config_models() -> list[type[BaseModel]]:
    """Every section model a config file, target profile or calibration recipe is read into."""
    from edgekd.data.calibration import CalibrationRecipe
    from edgekd.runtimes.profiles import TargetProfile
    from edgekd.tasks.lm import LanguageModelConfig

    found: list[type[BaseModel]] = []
    todo = [PipelineConfig, LanguageModelConfig, TargetProfile, CalibrationRecipe]
    while todo:
        model = todo.pop()
        if model not in found:
            found.append(model)
            todo += [inner for field in model.model_fields.values() if (inner := model_inside(field.annotation))]
    return found


def _takes_whole_numbers(annotation) -> bool:
    return annotation is int or any(_takes_whole_numbers(arg) for arg in get_args(annotation))


def test_every_whole_number_key_refuses_booleans():
    """Every int field of every config section is Integer (core/sections.py), so that no count, size or seed takes
    true as 1; a field added later as a plain int fails here."""
    checked = []
    for model in _config_models():
        for name, field in model.model_fields.items():
            if not _takes_whole_numbers(field.annotation):
                continue
            annotated = Annotated[(field.annotation, *field.metadata)] if field.metadata else field.annotation
            adapter = TypeAdapter(annotated)
            given = [True] if "list[" in str(field.annotation) else True
            with pytest.raises(ValidationError, match="must be (a whole number|the shorter side|.*pixels)"):
                adapter.validate_python(given)
            checked.append(f"{model.__name__}.{name}")
    assert {"PipelineConfig.seed", "TrainConfig.epochs", "TrainConfig.batch_size", "BenchConfig.eval_samples",
            "DataConfig.vocab_size", "TargetProfile.batch_sizes", "CalibrationRecipe.count"} <= set(checked)


def test_refusing_booleans_leaves_the_json_schema_standard():
    """Optional[Integer] with ge/le would put pydantic's own "ge"/"le" into the editor schema, not minimum/maximum."""
    from edgekd.pipeline.config_help import json_schema

    text = json.dumps([json_schema(), json_schema("language-model")])
    assert '"ge"' not in text and '"le"' not in text
    assert json_schema()["$defs"]["DataConfig"]["properties"]["vocab_size"]["anyOf"][0] == {
        "type": "integer", "minimum": 100, "maximum": 100_000}


@pytest.mark.parametrize("key", ["min_seconds", "warmup_seconds"])
def test_bench_seconds_have_an_upper_bound(tiny_config, key):
    """A trial's bench.min_seconds 1e9 (31 years per artifact) was accepted; the bench stage would never end."""
    tiny_config["bench"][key] = 1e9
    with pytest.raises(ConfigError, match=rf"cfg.yaml: invalid value for 'bench.{key}': .*less than or equal to 600"):
        validate_config(tiny_config, "cfg.yaml")
    tiny_config["bench"][key] = 600
    assert getattr(validate_config(tiny_config).bench, key) == 600


def test_a_cache_dir_that_is_a_file_is_refused_before_training(tiny_config, write_config, tmp_path):
    """Trial defect (session 12): the teachers trained, then "afile.txt/<key>.json: cannot write (File exists)"."""
    from tests.faults.helpers import assert_one_line_error, invoke

    (tmp_path / "afile.txt").write_text("hi")
    tiny_config["distill"]["cache_dir"] = "afile.txt"
    result = invoke("run", write_config(tiny_config), "--out", tmp_path / "run")
    assert_one_line_error(result, "distill.cache_dir 'afile.txt'", "is a file, not a folder")
    assert not (tmp_path / "run").exists()


def test_a_report_given_as_the_pipeline_file_is_named_as_such(tmp_path):
    """Trial defect (session 12): `edgekd run RUN/report.json` printed one 2,000-character line of 13 unknown keys."""
    (tmp_path / "report.json").write_text(json.dumps({"schema": "edgekd.report/1", "run": "r", "rows": []}))
    with pytest.raises(ConfigError, match=r"report.json: an edgekd output \(edgekd.report/1\), not a pipeline file"):
        load_config(tmp_path / "report.json")


def test_max_fallback_nodes_zero_is_documented_as_no_fallback(tiny_config):
    """Trial note (sessions 11, 12): 0 was accepted though the keys said the fallback bisects between 1 and it; it
    keeps no node in float, as `fallback: false` does, and the keys say so (refusing it would break existing files)."""
    tiny_config["quantize"]["max_fallback_nodes"] = 0
    assert validate_config(tiny_config).quantize.max_fallback_nodes == 0
    assert "0 keeps none, as `fallback: false`" in PipelineConfig.model_json_schema()["$defs"]["QuantizeConfig"][
        "properties"]["max_fallback_nodes"]["description"]


def test_a_yaml_boolean_for_a_text_key_is_told_to_be_quoted(tmp_path):
    """Trial defect (session 14): `name: on` (YAML 1.1 reads it as True) said only "invalid value for 'name': Input
    should be a valid string (got True)", with no word that quoting the value keeps it as text."""
    path = tmp_path / "on.yaml"
    path.write_text("name: on\ndata: {source: digits}\nteachers: [{arch: convnet}]\nstudent: {arch: convnet}\n")
    with pytest.raises(ConfigError, match=r"invalid value for 'name': Input should be a valid string \(got True\); YAML "
                                          r"reads an unquoted on, off, yes, no, true or false as True: quote the value "
                                          r"\(name: \"on\"\)$"):
        load_config(path)
    path.write_text(path.read_text().replace("name: on", "name: 1.10"))
    with pytest.raises(ConfigError, match=r"\(got 1\.1\); YAML read it as a number: quote the value as written"):
        load_config(path)
    path.write_text(path.read_text().replace("name: 1.10", 'name: "on"'))
    assert load_config(path).name == "on"
