"""`edgekd ship`'s options checked before anything is written: a pickle MODEL, an empty --targets, the data options."""
from __future__ import annotations

import pytest

from edgekd.core.errors import ConfigError, EdgeKDError
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
    (["m.onnx", "--data", "d.npz", "--targets", "x86cpu"], "--targets: unknown target 'x86cpu'; did you mean 'x86-cpu'"),
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

    with pytest.raises(ConfigError, match="^color: applies to an image folder data"):  # named as api.ship names them
        api.ship(files / "m.onnx", files / "d.npz", color="gray", out=files / "run")
    with pytest.raises(ConfigError, match="^targets: no target named"):
        api.ship(files / "m.onnx", files / "d.npz", targets=[], out=files / "run")


@pytest.mark.parametrize("given, expected", [("0.5/0.5", {"mean": [0.5], "std": [0.5]}),
                                             ("0.485,0.456,0.406/0.229,0.224,0.225",
                                              {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}),
                                             ("imagenet", "imagenet"), (None, None)])
def test_normalize_takes_a_name_or_the_models_own_mean_and_std(given, expected):
    from edgekd.pipeline.ship_options import normalize_option

    assert normalize_option(given) == expected


@pytest.mark.parametrize("given", ["0.5", "0.5/a", "imagenett", "/"])
def test_a_normalize_that_is_neither_is_one_line_naming_the_forms(given):
    from edgekd.pipeline.ship_options import normalize_option, typed_on_the_command_line

    with pytest.raises(ConfigError, match=r"^normalize='.*': give dataset, none, imagenet, or MEAN/STD .*0\.5/0\.5"):
        normalize_option(given)  # from Python: api.ship's argument
    with pytest.raises(ConfigError, match=r"^--normalize '.*': give dataset"), typed_on_the_command_line():
        normalize_option(given)


def test_a_users_own_edgekd_yaml_in_out_is_never_replaced(files, monkeypatch):
    """Trial defect (session 12): `edgekd init` then `edgekd ship ... --out .` replaced the user's edgekd.yaml, --force or
    not. Only a file edgekd ship wrote is rewritten."""
    monkeypatch.chdir(files)
    (files / "proj").mkdir()
    mine = "name: mine\ndata: {source: digits}\n"
    (files / "proj" / "edgekd.yaml").write_text(mine)
    for extra in ([], ["--force"]):
        result = invoke("ship", "m.onnx", "--data", "d.npz", "--out", "proj", *extra)
        assert result.exit_code == 2 and "holds edgekd.yaml, a pipeline file edgekd ship did not write" in result.output
        assert (files / "proj" / "edgekd.yaml").read_text() == mine


def test_a_failed_ship_into_a_run_keeps_its_pipeline_file(files, monkeypatch):
    """Trial defect (session 12): `ship ... --targets x86cpu --force` into a finished run rewrote its edgekd.yaml with
    the mistyped target before refusing it, so the run's own rerun command failed."""
    from edgekd.pipeline.ship import write_ship_config

    monkeypatch.chdir(files)
    written = write_ship_config(ship_config(str(files / "m.onnx"), str(files / "d.npz")), files / "run")
    before = written.read_text()
    result = invoke("ship", "m.onnx", "--data", "d.npz", "--out", "run", "--targets", "x86cpu", "--force")
    assert result.exit_code == 2 and "unknown target 'x86cpu'" in result.output
    assert written.read_text() == before


def test_the_api_takes_targets_as_the_command_line_writes_them(files):
    """Trial defect (session 12): api.ship(targets="x86-cpu") was read one character per target ('x')."""
    from edgekd import api

    with pytest.raises(EdgeKDError, match="^targets: unknown target 'x86cpu'"):
        api.ship(files / "m.onnx", files / "d.npz", targets="x86-cpu,x86cpu", out=files / "run")
    assert not (files / "run").exists()


def test_an_edited_ship_file_is_not_undone_by_shipping_again(files, monkeypatch):
    """Trial defect (session 12): `ship ... --resume` rewrote RUN/edgekd.yaml the user had edited (its header invites
    it), undoing the edit without a word. Ship's own file, unedited, is rewritten as before."""
    from edgekd.pipeline.ship import refuse_users_config, write_ship_config

    monkeypatch.chdir(files)
    written = write_ship_config(ship_config(str(files / "m.onnx"), str(files / "d.npz")), files / "run")
    refuse_users_config(files / "run")  # as ship wrote it: may be replaced
    written.write_text(written.read_text() + "gate: {max_drop: 3.0}   # my edit\n")
    for flag in ("--resume", "--force"):
        result = invoke("ship", "m.onnx", "--data", "d.npz", "--out", "run", flag)
        assert result.exit_code == 2 and "was edited since edgekd ship wrote it" in result.output, result.output
        assert "edgekd run run/edgekd.yaml --out run --resume" in result.output
        assert written.read_text().endswith("# my edit\n")


def test_a_profile_file_given_to_targets_is_written_by_its_absolute_path(files, monkeypatch):
    """Trial defect (session 13): `--targets mycpu.yaml` was written as given into RUN/edgekd.yaml, so the advised rerun
    from another folder failed, or read another folder's mycpu.yaml."""
    monkeypatch.chdir(files)
    (files / "mycpu.yaml").write_text("name: mycpu\n", encoding="utf-8")
    config = ship_config("m.onnx", "d.npz", targets=["mycpu.yaml", "x86-cpu"])
    assert config["targets"] == [str(files / "mycpu.yaml"), "x86-cpu"]


def test_only_a_ship_that_stopped_at_intake_is_started_again_without_force(tmp_path):
    """Review (session 13): any folder with only its teachers stage done was taken as a ship stopped at intake, so
    `edgekd ship --out` over an `edgekd run` whose teachers trained for an hour would have replaced it."""
    import json

    from edgekd.api import _stopped_before_shipping
    from edgekd.pipeline.ship import SHIP_HEADER

    run = tmp_path / "run"
    run.mkdir()
    stages = {"teachers": {"status": "done"}, "distill": {"status": "failed"}}
    (run / "manifest.json").write_text(json.dumps({"stages": stages, "config_path": str(tmp_path / "mine.yaml")}))
    assert not _stopped_before_shipping(run)  # an edgekd run of the user's own file
    (run / "edgekd.yaml").write_text(f"{SHIP_HEADER} (content sha256 0)\nname: x\n")
    (run / "manifest.json").write_text(json.dumps({"stages": stages, "config_path": str(run / "edgekd.yaml")}))
    assert _stopped_before_shipping(run)
    (run / "bundle").mkdir()
    assert not _stopped_before_shipping(run)


def test_force_removes_the_earlier_runs_outputs_this_run_does_not_make(tmp_path, monkeypatch):
    """Trial defect (session 14): `ship other.onnx --out runs/det --force --targets arm64-cpu` into a folder that held
    another model's run left 04-quantize/student-int8-x86-vnni-u8s8.onnx, the old model's int8, in no record of the new
    run. A stage that runs again now removes the files its earlier record listed and it did not make this time."""
    import numpy as np

    from benchmarks.helpers.tiny_graphs import tiny_det

    monkeypatch.chdir(tmp_path)
    tiny_det(tmp_path / "a.onnx", seed=0)
    tiny_det(tmp_path / "b.onnx", seed=1)
    np.savez(tmp_path / "pages.npz", x=np.random.default_rng(0).random((40, 3, 32, 32)).astype(np.float32))
    common = ["--data", "pages.npz", "--metric", "mask_iou", "--no-labels", "--max-drop", "100", "--out", "run"]
    assert invoke("ship", "a.onnx", *common, "--targets", "x86-cpu").exit_code == 0
    assert (tmp_path / "run" / "04-quantize" / "student-int8-x86-vnni-u8s8.onnx").is_file()
    result = invoke("ship", "b.onnx", *common, "--targets", "arm64-cpu", "--force")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "run" / "04-quantize").iterdir()) == ["student-int8-arm-s8s8.onnx"]
    assert "04-quantize/student-int8-x86-vnni-u8s8.onnx: removed" in result.output


def test_pruning_touches_only_the_stage_folders_recorded_files(tmp_path):
    """Trial defect (session 14): what is pruned is only what the stage's earlier record names, in its own folder."""
    from edgekd.pipeline.runner import prune_unmade_outputs

    stage = tmp_path / "05-compile"
    for name in ("old/int8/model.onnx", "new/model.onnx", "users-notes.txt"):
        (stage / name).parent.mkdir(parents=True, exist_ok=True)
        (stage / name).write_text("x")
    (tmp_path / "report.md").write_text("x")
    said = []
    prune_unmade_outputs(tmp_path, stage, ["05-compile/old/int8/model.onnx", "05-compile/new/model.onnx", "report.md"],
                         [stage / "new" / "model.onnx"], said.append)
    assert not (stage / "old").exists() and (stage / "new" / "model.onnx").is_file() and (stage / "users-notes.txt").is_file()
    assert (tmp_path / "report.md").is_file() and said == [
        "05-compile/old/int8/model.onnx: removed, made by an earlier run of this folder and not by this one"]


def test_api_ship_names_its_arguments_and_the_command_its_options(files, monkeypatch):
    """Trial defect (session 14): api.ship's errors named the command line's options ("MODEL 'nope.onnx': file not
    found", "--data 'nope.npz'", "--normalize 'nonee'") to a Python caller, who wrote model=, data=, normalize=. The one
    set of checks now names what the caller wrote: api.ship's arguments from Python, edgekd ship's options from the CLI."""
    from edgekd import api

    monkeypatch.chdir(files)
    for kwargs, python, typed in [({"model": "nope.onnx", "data": "d.npz"}, "model='nope.onnx': file not found",
                                   ["nope.onnx", "--data", "d.npz"]),
                                  ({"model": "m.onnx", "data": "nope.npz"}, "data='nope.npz': file not found",
                                   ["m.onnx", "--data", "nope.npz"]),
                                  ({"model": "m.onnx", "data": "d.npz", "normalize": "nonee"}, "normalize='nonee': give",
                                   ["m.onnx", "--data", "d.npz", "--normalize", "nonee"])]:
        with pytest.raises(ConfigError) as refused:
            api.ship(out="run", log=lambda _m: None, **kwargs)
        assert str(refused.value).startswith(python)
        result = invoke("ship", *typed, "--out", "run")
        cli = python.replace("model=", "MODEL ").replace("data=", "--data ").replace("normalize=", "--normalize ")
        assert result.exit_code == 2 and f"edgekd: error: {cli}" in result.output, result.output
    assert not (files / "run").exists()
