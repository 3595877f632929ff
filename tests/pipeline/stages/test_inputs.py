"""--resume notices edited files the config names (profiles, recipes, data, checkpoints), not only an edited config."""
import shutil
from pathlib import Path

import numpy as np
import pytest

from edgekd.core.errors import DataError, TargetError
from edgekd.core.resources import builtin_dir
from edgekd.data.calibration import load_recipe
from edgekd.data.sources import data_path
from edgekd.pipeline.config import load_config
from edgekd.pipeline.context import RunContext
from edgekd.pipeline.registry import STAGE_NAMES
from edgekd.pipeline.runner import preflight
from edgekd.runtimes import load_profile


def _keys(config_path):
    ctx = RunContext(load_config(config_path), config_path, config_path.parent / "run", manifest=None)
    return {stage: ctx.stage_key(stage) for stage in STAGE_NAMES}


def _changed(before, after):
    return [stage for stage in STAGE_NAMES if before[stage] != after[stage]]


def test_an_edited_target_profile_reruns_quantize_and_later_only(tiny_config, write_config, tmp_path):
    profile = tmp_path / "my-cpu.yaml"
    shutil.copyfile(builtin_dir("targets") / "x86-cpu.yaml", profile)
    tiny_config["targets"] = ["my-cpu.yaml"]
    config = write_config(tiny_config)
    before = _keys(config)
    profile.write_text(profile.read_text().replace("threads: 2", "threads: 1"))
    assert load_profile("my-cpu.yaml", tmp_path).threads == 1  # the edit is one the stages would see
    assert _changed(before, _keys(config)) == ["quantize", "compile", "bench", "gate"]


def test_an_edited_calibration_recipe_reruns_quantize(tiny_config, write_config, tmp_path):
    recipe = tmp_path / "my-calibration.yaml"
    shutil.copyfile(builtin_dir("calibration") / "train-64.yaml", recipe)
    tiny_config["quantize"]["calibration"] = "my-calibration.yaml"
    config = write_config(tiny_config)
    before = _keys(config)
    recipe.write_text(recipe.read_text().replace("seed: 0", "seed: 1"))
    assert load_recipe("my-calibration.yaml", tmp_path).seed == 1
    assert _changed(before, _keys(config))[0] == "quantize"


def test_rewritten_data_and_checkpoint_rerun_from_their_stage(tiny_config, write_config, tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "data.npz", x=rng.random((40, 1, 8, 8), dtype=np.float32), y=np.arange(40) % 4)
    tiny_config["data"] = {"source": "npz", "path": "data.npz"}
    (tmp_path / "student.pt").write_bytes(b"weights v1")
    tiny_config["student"]["checkpoint"] = "student.pt"
    config = write_config(tiny_config)
    before = _keys(config)
    (tmp_path / "student.pt").write_bytes(b"weights v2")
    assert _changed(before, _keys(config))[0] == "distill"
    before = _keys(config)
    np.savez(tmp_path / "data.npz", x=rng.random((40, 1, 8, 8), dtype=np.float32), y=np.arange(40) % 4)
    assert _changed(before, _keys(config)) == list(STAGE_NAMES)


def test_unchanged_files_keep_every_key(tiny_config, write_config):
    config = write_config(tiny_config)
    assert _keys(config) == _keys(config)


def test_data_path_is_found_beside_the_config_and_a_wrong_one_stops_preflight(tiny_config, write_config, tmp_path, monkeypatch):
    project = tmp_path / "project"
    project.mkdir()
    np.savez(project / "data.npz", x=np.zeros((4, 1, 8, 8), np.float32), y=np.arange(4))
    monkeypatch.chdir(tmp_path)  # the run starts elsewhere: `edgekd run project/config.yaml`
    assert data_path("npz", "data.npz", project) == project / "data.npz"
    tiny_config["data"] = {"source": "npz", "path": "missing.npz"}
    with pytest.raises(DataError, match=r"data.path 'missing.npz': not found \(looked in .*project and .*\)"):
        preflight(load_config(write_config(tiny_config)), project)


def test_a_missing_profile_file_says_file_not_found(tmp_path):
    with pytest.raises(TargetError, match=r"target profile 'missing.yaml': file not found"):
        load_profile("missing.yaml", tmp_path)


def test_an_evaluation_set_larger_than_the_test_split_is_said_before_training(tiny_config, write_config, tmp_path, monkeypatch):
    """A trial's bench.eval_samples 100000 was warned about only after the teachers and the student had trained."""
    from edgekd.pipeline import runner

    def no_stage(*_args, **_kwargs):
        raise AssertionError("a stage started")

    monkeypatch.setattr(runner, "_run_stage", no_stage)
    tiny_config["bench"]["eval_samples"] = 100_000  # digits with test_limit 120
    config = write_config(tiny_config)
    with pytest.warns(UserWarning, match=r"^bench.eval_samples 100000: the test split has only 120 samples, so bench "
                                         r"and gate will measure on those 120; set bench.eval_samples to 120 or less"), \
            pytest.raises(AssertionError, match="a stage started"):
        runner.run_pipeline(load_config(config), config, tmp_path / "run", log=lambda _line: None)


def test_data_beside_the_config_wins_over_a_same_named_folder_where_the_run_starts(tmp_path, monkeypatch):
    """A trial: `cd other && edgekd run ../proj/edgekd.yaml` trained on other/img (3 classes) instead of proj/img, with no
    word, though `edgekd keys data` says paths are relative to the config file."""
    from edgekd.core.fileio import resolve_path

    (tmp_path / "proj" / "img").mkdir(parents=True)
    (tmp_path / "other" / "img").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "other")
    assert resolve_path("img", tmp_path / "proj") == tmp_path / "proj" / "img"
    assert resolve_path("only-here", tmp_path / "proj") == tmp_path / "proj" / "only-here"  # not found: named beside the config
    (tmp_path / "other" / "only-here").mkdir()
    assert resolve_path("only-here", tmp_path / "proj") == Path("only-here")  # only where the run starts: still found


def test_init_writes_data_relative_to_the_file_it_writes(tmp_path, monkeypatch):
    """`edgekd init sub/c.yaml --data ../img` wrote ../img, which from sub/ is another folder."""
    import yaml

    from edgekd.core.fileio import resolve_path
    from tests.faults.helpers import invoke

    (tmp_path / "img" / "a").mkdir(parents=True)
    (tmp_path / "work" / "sub").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "work")
    assert invoke("init", "sub/c.yaml", "--data", "../img").exit_code == 0
    written = yaml.safe_load((tmp_path / "work" / "sub" / "c.yaml").read_text())["data"]["path"]
    assert written == "../../img" and resolve_path(written, tmp_path / "work" / "sub").resolve() == tmp_path / "img"
