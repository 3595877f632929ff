"""`edgekd ship`'s options checked before anything is written: a pickle MODEL, an empty --targets, the data options."""
from __future__ import annotations

import pytest

from edgekd.core.errors import ConfigError
from edgekd.pipeline.ship import ship_config
from edgekd.pipeline.ship_options import data_options
from tests.faults.helpers import invoke


@pytest.fixture
def files(tmp_path):
    import numpy as np

    (tmp_path / "m.onnx").write_bytes(b"not read before the checks")
    (tmp_path / "model.pkl").write_bytes(b"\x80\x04N.")
    np.savez(tmp_path / "d.npz", x=np.zeros((9, 1, 4, 4), np.float32), y=np.arange(9) % 3)
    (tmp_path / "images" / "a").mkdir(parents=True)
    return tmp_path


@pytest.mark.parametrize("args, message", [
    (["model.pkl", "--data", "d.npz"], "MODEL 'model.pkl': a pickle, which edgekd never loads"),
    (["m.onnx", "--data", "d.npz", "--targets", ""], "--targets: no target named"),
    (["m.onnx", "--data", "d.npz", "--targets", " , "], "--targets: no target named"),
    (["m.onnx", "--data", "d.npz", "--color", "gray"], "--color: applies to an image folder --data, not to 'd.npz'"),
    (["m.onnx", "--data", "images", "--scale", "none"], "--scale: applies to an .npz file --data, not to 'images'"),
])
def test_bad_ship_options_are_one_line_before_the_run_folder(files, monkeypatch, args, message):
    monkeypatch.chdir(files)
    result = invoke("ship", *args, "--out", "run")
    assert result.exit_code == 2 and message in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and not (files / "run").exists()


def test_data_options_become_data_keys(files):
    folder = data_options(ship_config(str(files / "m.onnx"), str(files / "images")), "images", color="gray", normalize=None)
    assert folder["data"]["color"] == "gray" and "normalize" not in folder["data"]
    npz = data_options(ship_config(str(files / "m.onnx"), str(files / "d.npz")), "d.npz", scale="none", normalize="none")
    assert npz["data"]["scale"] == "none" and npz["data"]["normalize"] == "none"


def test_the_api_takes_the_same_options(files):
    from edgekd import api

    with pytest.raises(ConfigError, match="--color: applies to an image folder"):
        api.ship(files / "m.onnx", files / "d.npz", color="gray", out=files / "run")
    with pytest.raises(ConfigError, match="--targets: no target named"):
        api.ship(files / "m.onnx", files / "d.npz", targets=[], out=files / "run")
