"""Text-run settings refused with the wrong words or too late (text classifier trials, session 14): each is one line
naming the key, before anything trains."""
from __future__ import annotations

import pytest

from edgekd.core.errors import ConfigError
from edgekd.pipeline.config import validate_config
from edgekd.pipeline.runner import preflight


def _text(tmp_path, **sections) -> dict:
    corpus = tmp_path / "texts.jsonl"
    corpus.write_text('{"text": "a text", "label": "a"}\n')
    return {"data": {"source": "text", "path": str(corpus)},
            "teachers": [{"arch": "bert", "kwargs": {"hidden": 32, "layers": 1, "heads": 2, "intermediate": 64}}],
            "student": {"arch": "bert-half"}, "targets": ["x86-cpu"], **sections}


def test_a_recipe_name_that_does_not_exist_is_refused_at_config_check_for_text(tmp_path):
    """Trial defect (session 14): quantize.calibration "64" on a text run was found missing only at stage 4, after the
    teacher, the student and the export had trained; and it said nothing of the recipe with that count."""
    config = validate_config(_text(tmp_path, quantize={"method": "ptq", "calibration": "64"}))
    with pytest.raises(ConfigError, match=r"quantize.calibration '64': no such recipe; 64 is a count, and recipes are "
                                          r"named by split and count: did you mean 'train-64'\?"):
        preflight(config, tmp_path)
    preflight(validate_config(_text(tmp_path, quantize={"method": "ptq", "calibration": "train-64"})), tmp_path)
    with pytest.raises(ConfigError, match=r"quantize.calibration 'synthetic-512': a text model calibrates on train or val"):
        preflight(validate_config(_text(tmp_path, quantize={"method": "ptq", "calibration": "synthetic-512"})), tmp_path)


def test_a_number_as_calibration_suggests_the_recipe_with_that_count_not_quoting(tmp_path):
    """Trial defect (session 14): `calibration: 64` (a YAML number) was told to quote it, which gives the name '64',
    and no recipe has that name."""
    with pytest.raises(ConfigError, match=r"quantize.calibration: 64 is a count, and this key names a calibration "
                                          r"recipe: use train-64") as caught:
        validate_config(_text(tmp_path, quantize={"calibration": 64}))
    assert "quote" not in str(caught.value)


@pytest.mark.parametrize("teachers", [[{"onnx": "teacher.onnx"}],
                                      [{"arch": "bert"}, {"onnx": "teacher.onnx"}]])
def test_an_onnx_teacher_on_text_names_texts_real_options(tmp_path, teachers):
    """Trial defect (session 14): an ONNX teacher on data.source text was told "give arch (a PyTorch network)", which
    was then refused too: text takes a BERT teacher first and scikit-learn pipelines of the raw texts beside it."""
    with pytest.raises(ConfigError, match=r"teachers\[\d\].onnx: data.source text distills from a BERT teacher, "
                                          r"teachers\[0\] \{arch: bert\} .* scikit-learn pipelines") as caught:
        validate_config(_text(tmp_path, teachers=teachers))
    assert "PyTorch network" not in str(caught.value)
