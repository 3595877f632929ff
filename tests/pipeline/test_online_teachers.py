"""distill.mode online with teachers: they do not teach, and the config check says so."""
from __future__ import annotations

import copy

import pytest

from edgekd.pipeline.config import validate_config
from edgekd.pipeline.runner import preflight
from tests.conftest import run_cli

SAID = (r"^distill\.mode online: teachers are not used for training, only as the report's reference \(the student and "
        r"distill\.online\.peers learn from each other and the labels\); use distill\.mode offline to distill from them$")


def _online(tiny_config, **quantize):
    tiny_config = copy.deepcopy(tiny_config)
    tiny_config["teachers"] = tiny_config["teachers"][:1]
    tiny_config["teachers"][0]["train"]["epochs"] = 1
    tiny_config["distill"] = {"mode": "online", "online": {"peers": [{"arch": "convnet", "width": 4}]},
                              "train": {"epochs": 1, "lr": 0.05}}
    tiny_config["quantize"].update(quantize)
    return validate_config(tiny_config)


def test_online_teachers_are_said_not_to_teach(tiny_config, write_config, tmp_path):
    """Trial defect (session 14): distill.mode online trained the student and its peers on each other only, while the
    report's teacher row showed the configured teachers as if they had taught; nothing said they were unused."""
    with pytest.warns(UserWarning, match=SAID):
        preflight(_online(tiny_config), tmp_path)
    with pytest.warns(UserWarning, match="only as the report's reference, and as quantize.method qat's soft targets"):
        preflight(_online(tiny_config, method="qat", calibration="train-64"), tmp_path)
    config = _online(tiny_config).model_dump(mode="json", exclude_unset=True)
    result = run_cli("run", str(write_config(config)), "--out", str(tmp_path / "run"), "--only", "teachers")
    assert result.returncode == 0, result.stderr[-2000:]
    said = "edgekd: warning: distill.mode online: teachers are not used for training"
    assert result.stderr.count(said) == 1  # in a run, the run log keeps it too (checks' warnings wait for the log)
    assert said in (tmp_path / "run" / "edgekd.log").read_text()
