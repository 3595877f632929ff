from click.testing import CliRunner

from edgekd.cli import main
from edgekd.config import PipelineConfig


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
    assert result.exit_code == 2 and "edgekd keys distil: no such section; top-level sections:" in result.output


def test_the_api_returns_the_same_lines():
    from edgekd import api

    assert "\n".join(api.keys("gate")) == CliRunner().invoke(main, ["keys", "gate"]).output.rstrip("\n")
