import json
import re
from pathlib import Path

import yaml
from click.testing import CliRunner

from edgekd.cli import main
from edgekd.pipeline.config import PipelineConfig, config_model, load_config, validate_config
from edgekd.pipeline.config_help import json_schema, key_defaults, starter_config

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_top_level_section_and_nested_key_is_listed_with_its_description():
    result = CliRunner().invoke(main, ["keys"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert all(any(line.startswith(name) for line in lines) for name in PipelineConfig.model_fields)
    assert 'distill.temperature = 4.0' in result.output
    assert any(line.startswith("distill.hints[].teacher_index = 0  # which entry of `teachers`") for line in lines)
    assert "student.arch = null  # built-in name" in result.output and "student.onnx = null  # an ONNX file" in result.output


def test_a_section_narrows_the_list_and_an_unknown_one_is_one_line():
    result = CliRunner().invoke(main, ["keys", "quantize.qat"])
    assert result.exit_code == 0 and result.output.splitlines()[0].startswith("quantize.qat")
    assert all(line.startswith("quantize.qat") for line in result.output.splitlines())
    result = CliRunner().invoke(main, ["keys", "distil"])
    assert result.exit_code == 2 and "edgekd keys distil: no such section or key; did you mean 'distill" in result.output
    assert "top-level sections:" in result.output
    # a trial: a misspelled key got no suggestion here, though config files get one
    result = CliRunner().invoke(main, ["keys", "distill.temprature"])
    assert result.exit_code == 2 and "did you mean 'distill.temperature'?" in result.output


def test_a_language_models_keys_are_listed_with_task_language_model():
    from edgekd.lm.config import LMSequenceConfig

    result = CliRunner().invoke(main, ["keys", "distill.sequence", "--task", "language-model"])
    lines = result.output.splitlines()
    assert result.exit_code == 0 and lines[0].startswith("distill.sequence:  # mode sequence or both")
    shown = {line.split(" = ")[0]: line.split(" = ")[1].split("  # ")[0] for line in lines[1:]}
    assert shown == {f"distill.sequence.{name}": json.dumps(value) for name, value in LMSequenceConfig().model_dump().items()}
    assert "prompt_tokens + new_tokens <= data.context" in result.output
    assert CliRunner().invoke(main, ["keys", "teachers"]).exit_code == 0  # the image pipeline's, as before
    assert CliRunner().invoke(main, ["keys", "teachers", "--task", "language-model"]).exit_code == 2  # an LM has one teacher


def test_the_api_returns_the_same_lines():
    from edgekd import api

    assert "\n".join(api.keys("gate")) == CliRunner().invoke(main, ["keys", "gate"]).output.rstrip("\n")


def _config_with_one_of_everything() -> PipelineConfig:
    """A validated config with the defaults everywhere, one default item in every list and the optional
    sections switched on with their defaults: what a user gets for each key they leave out."""
    from edgekd.train.config import TransferSetConfig

    config = PipelineConfig.model_validate({
        "student": {"arch": "convnet"}, "teachers": [{"arch": "resnet"}],
        "data": {"source": "imagefolder", "path": "images", "resize": {"height": 48, "max_width": 192}},
        "distill": {"hints": [{"student": "a", "teacher": "b"}], "augment": {}, "dkd": {}, "online": {"peers": [{"arch": "mlp"}]}}})
    config.distill.transfer_set = TransferSetConfig()  # tables only: switched on here for its defaults alone
    return config


def _lookup(config, dotted: str):
    value = config
    for part in dotted.split("."):
        value = getattr(value, part.removesuffix("[]"))
        if part.endswith("[]"):
            value = value[0]
    return value.model_dump(mode="json") if hasattr(value, "model_dump") else value


def test_every_printed_default_is_the_default_a_config_gets():
    config = _config_with_one_of_everything()
    defaults = key_defaults()
    assert len(defaults) > 80
    checked = 0
    given = {"student.arch", "teachers[].arch", "distill.hints[].student", "distill.hints[].teacher",
             "distill.online.peers[].arch", "data.source", "data.path"}  # set above to make the items; not defaults
    # task: only with an ONNX student on an npz (no teachers), so it is switched on in a config of its own
    fidelity = PipelineConfig.model_validate({"student": {"onnx": "m.onnx"}, "data": {"source": "npz", "path": "d.npz"},
                                              "task": {}})
    for key, printed in defaults.items():
        if printed == "(required)" or key in given:
            continue
        assert json.loads(printed) == _lookup(fidelity if key.startswith("task.") else config, key), key
        checked += 1
    assert checked > 75


def test_nested_sections_show_the_parents_default_factory_not_the_models_own():
    defaults = key_defaults()
    assert defaults["distill.train.epochs"] == "10"  # TrainConfig's own default is 5
    assert (defaults["quantize.qat.train.epochs"], defaults["quantize.qat.train.lr"],
            defaults["quantize.qat.train.amp"]) == ("2", "0.002", '"off"')
    assert defaults["teachers[].train.epochs"] == "5"  # a list item has nothing else to go by


def test_schema_covers_every_section_and_refuses_unknown_keys(tmp_path):
    schema = json_schema()
    assert set(schema["properties"]) == set(PipelineConfig.model_fields)
    distill = schema["$defs"]["DistillConfig"]
    assert distill["additionalProperties"] is False and "temperature" in distill["properties"]
    # defaults made by a parent's default_factory are stated, not left to the nested model's own
    assert distill["properties"]["train"]["default"]["epochs"] == 10
    assert schema["$defs"]["QatConfig"]["properties"]["train"]["default"] == {**schema["$defs"]["QatConfig"]["properties"][
        "train"]["default"], "epochs": 2, "lr": 0.002, "amp": "off"}
    result = CliRunner().invoke(main, ["schema", "--out", str(tmp_path / "s.json")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "s.json").read_text()) == schema


def test_schema_takes_a_boolean_fallback_as_the_config_does():
    """Trial defect (session 13): `edgekd schema` gave quantize.fallback as a FallbackConfig object only, while
    `quantize: {fallback: false}` is accepted and documented, so an editor flagged a valid file."""
    from edgekd.quant.config import QuantizeConfig

    schema = json_schema()
    fallback = schema["$defs"]["QuantizeConfig"]["properties"]["fallback"]
    assert fallback["anyOf"] == [{"type": "boolean"}, {"$ref": "#/$defs/FallbackConfig"}] and "$ref" not in fallback
    assert "FallbackConfig" in schema["$defs"] and fallback["default"] == {"enabled": True, "max_seconds": 600.0}
    assert QuantizeConfig(fallback=False).fallback.enabled is False  # what the schema now allows, the config takes


def test_init_writes_a_commented_config_that_loads_and_keeps_an_existing_file(tmp_path):
    path = tmp_path / "fm.yaml"
    result = CliRunner().invoke(main, ["init", str(path), "--data", "fashion-mnist"])
    assert result.exit_code == 0, result.output
    text = path.read_text()
    assert text.count("#") > 10 and "edgekd run fm.yaml" in text
    config = load_config(path)
    assert config.data.source == "fashion-mnist" and config.name == "fm"
    default = PipelineConfig.model_fields["distill"].default_factory().train
    assert f"defaults: epochs {default.epochs}, lr {default.lr}" in text  # the values it departs from, said
    path.write_text("mine")
    result = CliRunner().invoke(main, ["init", str(path)])
    assert result.exit_code == 2 and "already exists; pass --force" in result.output and path.read_text() == "mine"


def test_init_data_takes_an_npz_file_and_refuses_what_it_cannot_read(tmp_path):
    (tmp_path / "d.npz").write_bytes(b"")
    cfg = yaml.safe_load(starter_config(data=str(tmp_path / "d.npz")))
    assert cfg["data"] == {"source": "npz", "path": str(tmp_path / "d.npz")}
    for missing in ("nowhere", "nope.npz"):  # trial defect (session 12): a missing .npz was written into the file
        result = CliRunner().invoke(main, ["init", str(tmp_path / "x.yaml"), "--data", str(tmp_path / missing)])
        assert result.exit_code == 2 and "--data" in result.output and not (tmp_path / "x.yaml").exists()


def _readme_yaml_documents():
    for block in re.findall(r"```yaml\n(.*?)```", README.read_text(), re.S):
        yield from block.split("\n---\n")


def test_readme_yaml_examples_are_valid_configs_and_their_stated_defaults_hold():
    documents = list(_readme_yaml_documents())
    assert len(documents) >= 4
    for document in documents:
        raw = yaml.safe_load(document)
        if "student" not in raw:  # a partial example (one section): complete it the way the quickstart does
            raw.update(student={"arch": "convnet"}, teachers=raw.get("teachers", [{"arch": "resnet"}]))
        config_model(raw).model_validate(raw)  # an unknown key or a bad value in the README fails here
    defaults = key_defaults()
    claims = [line for document in documents for line in document.splitlines() if "# the defaults" in line]
    assert len(claims) >= 2
    for line in claims:
        key, _, body = line.split("#")[0].strip().partition(":")
        flat = _flatten(yaml.safe_load(body), key)  # relative to the section the line is indented under
        first = next(iter(flat))
        section = next(k[: -len(first)] for k in defaults if k.endswith("." + first))
        for dotted, value in flat.items():
            assert json.loads(defaults[section + dotted]) == value, (line, dotted)


def _flatten(mapping: dict, prefix: str) -> dict:
    out = {}
    for key, value in mapping.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}.{key}"))
        else:
            out[f"{prefix}.{key}"] = value
    return out


def test_language_model_schema_describes_that_tasks_file_and_the_cli_writes_it(tmp_path):
    from edgekd.tasks.lm import LanguageModelConfig

    schema = json_schema("language-model")
    assert set(schema["properties"]) == set(LanguageModelConfig.model_fields)
    assert "sequence" in schema["$defs"]["LMDistillConfig"]["properties"]  # an LM-only key, absent from the image schema
    assert schema["$defs"]["LMDistillConfig"]["additionalProperties"] is False
    result = CliRunner().invoke(main, ["schema", "--task", "language-model", "--out", str(tmp_path / "lm.json")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "lm.json").read_text()) == schema
    from edgekd import api

    assert api.schema("language-model") == schema and api.schema() == json_schema()


def test_schema_out_never_replaces_a_file_that_is_not_a_schema(tmp_path):
    """A trial: `edgekd schema --out v/pipeline.yaml` replaced the user's pipeline file with the JSON Schema."""
    from tests.faults.helpers import invoke

    (tmp_path / "pipeline.yaml").write_text("name: mine\n")
    refused = invoke("schema", "--out", tmp_path / "pipeline.yaml")
    assert refused.exit_code == 2 and "is not a JSON Schema" in refused.output
    assert (tmp_path / "pipeline.yaml").read_text() == "name: mine\n"
    for _ in range(2):  # a rerun replaces its own schema
        assert invoke("schema", "--out", tmp_path / "edgekd.schema.json").exit_code == 0


def test_the_starter_distils_as_long_as_the_demo_so_its_own_gate_can_pass():
    """Trial defect (session 12): `edgekd init` then `edgekd run` failed its own gate (a student 7.8 points under the
    teacher it is gated against): it distilled for the defaults' 10 epochs at lr 0.01. It now trains as the demo's
    student does (configs/quickstart.yaml), which reaches its teachers; run by hand: student 99.44%, gate PASS."""
    starter = yaml.safe_load(starter_config())
    demo = yaml.safe_load((Path(__file__).parents[2] / "configs" / "quickstart.yaml").read_text())
    assert {k: starter["distill"]["train"][k] for k in ("epochs", "lr")} == {k: demo["distill"]["train"][k] for k in ("epochs", "lr")}
    assert starter["student"] == demo["student"] and starter["gate"]["reference"] == "teacher"


def test_language_model_schema_offers_only_the_gate_keys_its_config_takes():
    """Trial defect (session 14): `edgekd schema --task language-model` listed gate keys (max_drop, min_speedup,
    max_size_kb, ...) that a language-model config refuses ("not a language model's gate key"), while `edgekd keys gate
    --task language-model` listed the three valid ones: an editor completed keys the run then refused."""
    from edgekd.pipeline.config_help import key_lines
    from edgekd.tasks.lm import LMThresholds

    gate = json_schema("language-model")["$defs"]["LMThresholds"]
    assert set(gate["properties"]) == set(LMThresholds.config_keys)
    assert gate["additionalProperties"] is False
    listed = {line.split(" = ")[0][len("gate."):] for line in key_lines("gate", task="language-model") if " = " in line}
    assert listed == set(gate["properties"])
    assert "min_speedup" in json_schema()["$defs"]["Thresholds"]["properties"]  # the image gate keeps every key


def test_the_starter_for_an_image_folder_leaves_eval_samples_unset(tmp_path):
    """Trial defect (session 14): `edgekd init --data imgs` wrote bench.eval_samples: 500 whatever the folder held, so
    every first run on a small folder warned "evaluation set: 36 samples, fewer than bench.eval_samples 500" about a
    number the user never chose. Only a starter sized from its data (digits: its whole test split) sets it."""
    for name in ("0-cat", "1-dog"):
        (tmp_path / "imgs" / name).mkdir(parents=True)
    starter = starter_config(data=str(tmp_path / "imgs"))
    assert "eval_samples" not in (yaml.safe_load(starter).get("bench") or {})
    assert "#   eval_samples: 500" in starter  # still shown, as a comment, with the default
    assert "eval_samples" not in validate_config(yaml.safe_load(starter), "edgekd init").bench.model_fields_set
    assert yaml.safe_load(starter_config(data="digits"))["bench"]["eval_samples"] == 359


def test_init_refuses_an_image_folder_without_class_sub_folders(tmp_path):
    """Trial defect (session 14): `edgekd init --data imgs/0-d0 y.yaml` on one class's folder (images, no class
    sub-folders) said "wrote y.yaml; run it with: edgekd run y.yaml", and the run then refused it ("the images have no
    labels, and distill.mode offline trains on labels"). init refuses it, naming the folder, what it needs, and the
    command that ships a trained model on unlabeled images; nothing is written."""
    from tests.faults.helpers import assert_one_line_error, invoke

    folder = tmp_path / "imgs" / "0-d0"
    folder.mkdir(parents=True)
    (folder / "0.png").write_bytes(b"")
    for data in (folder, folder.parent / "empty"):
        data.mkdir(exist_ok=True)
        assert_one_line_error(invoke("init", "--data", data, tmp_path / "y.yaml"), f"--data {data}: ",
                              "class sub-folders", f"{data}/<class>/<image>.png",
                              f"edgekd ship MODEL --data {data} --no-labels")
    assert not (tmp_path / "y.yaml").exists()
    assert invoke("init", "--data", folder.parent, tmp_path / "y.yaml").exit_code == 0  # 0-d0 is a class sub-folder
