"""Target profiles given as files (found by trying edgekd's targets as a new user, session 11): a profile with a name of
its own stopped the run at the bench stage ("unknown target 'my-board'"), one copied from a built-in with the name
kept was read from the user's file by compile and from the built-in by bench, and every run that compiled removed the
bundles of targets given by path (their folder is the profile's name, not the path)."""
from __future__ import annotations

import json

import pytest
import yaml

from tests.faults.helpers import REPO, assert_one_line_error, invoke, write_config


def _profile(path, **changes):
    profile = yaml.safe_load((REPO / "targets" / "x86-cpu.yaml").read_text())
    path.write_text(yaml.safe_dump({**profile, **changes}, sort_keys=False))
    return path


def test_profiles_given_by_path_run_end_to_end_each_read_from_the_users_file(tmp_path):
    _profile(tmp_path / "my-board.yaml", name="my-board")
    _profile(tmp_path / "copied.yaml", threads=1)  # the built-in's name kept, one thread
    config = write_config(tmp_path, targets=["./my-board.yaml", "./copied.yaml"])
    result = invoke("run", config, "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output[-3000:]
    rows = {row["artifact"]: row for row in json.loads((tmp_path / "run" / "report.json").read_text())["rows"]}
    assert {"my-board/fp32", "x86-cpu/fp32"} <= set(rows)
    assert rows["x86-cpu/fp32"]["threads"]["requested"] == 1  # the user's file's, not the built-in's 2
    assert rows["my-board/fp32"]["threads"]["requested"] == 2

    again = invoke("run", config, "--out", tmp_path / "run", "--only", "compile", "--only", "bench", "--only", "gate",
                   "--force")
    assert again.exit_code == 0, again.output[-3000:]
    assert "removed" not in again.output
    assert (tmp_path / "run" / "bundle" / "my-board" / "manifest.json").is_file()
    assert (tmp_path / "run" / "bundle" / "x86-cpu" / "manifest.json").is_file()


def test_a_profiles_own_size_and_speed_limits_are_gated(tmp_path):
    """Trial defect (session 11): a profile's gate {max_size_kb: 10, min_speedup: 3} was recorded in the bundle and never
    checked: a 37 KB fp32 model shipped PASS."""
    _profile(tmp_path / "small-board.yaml", name="small-board", gate={"max_size_kb": 1})
    config = write_config(tmp_path, targets=["./small-board.yaml", "x86-cpu"])
    result = invoke("run", config, "--out", tmp_path / "run")
    assert result.exit_code == 1, result.output[-3000:]
    checks = json.loads((tmp_path / "run" / "gate.json").read_text())["checks"]
    size = {c["artifact"].split("/")[0]: c["passed"] for c in checks if c["threshold"] == "max_size_kb"}
    assert size == {"small-board": False}  # the built-in x86-cpu sets no size limit
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    from edgekd.device.gate import Thresholds, gate_report

    assert not gate_report(report, Thresholds()).passed  # `edgekd gate` of the report judges the same way


def test_a_reference_that_cannot_be_measured_here_is_refused_before_anything_trains(tmp_path):
    """Trial defect (session 11): gate.reference jetson-orin/fp32 (TensorRT, not installed here) was accepted, every
    stage ran, and the gate then refused it while listing it as available."""
    import pytest

    from edgekd.runtimes import get_backend
    from tests.faults.helpers import assert_one_line_error

    if get_backend("tensorrt").available():
        pytest.skip("TensorRT is installed here: jetson-orin's rows are measured")
    config = write_config(tmp_path, targets=["x86-cpu", "jetson-orin"], gate={"reference": "jetson-orin/fp32", "max_drop": 1.0})
    result = invoke("run", config, "--out", tmp_path / "run")
    message = assert_one_line_error(result, "gate.reference 'jetson-orin/fp32': target jetson-orin's models are not "
                                            "measured on this machine", "use one of: student_fp32")
    assert "jetson-orin/fp32" not in message.split("use one of:")[1]
    assert not (tmp_path / "run" / "01-teachers").exists()


def test_an_int8_only_profile_with_quantize_method_none_is_refused_before_training(tmp_path):
    """Trial defect (session 11): it failed at the compile stage, after the teachers and the student had trained."""
    from tests.faults.helpers import assert_one_line_error

    _profile(tmp_path / "int8-only.yaml", name="int8-only", precisions=["int8"])
    config = write_config(tmp_path, targets=["./int8-only.yaml"], quantize={"method": "none"})
    assert_one_line_error(invoke("run", config, "--out", tmp_path / "run"), "builds int8 only", "quantize.method is none")
    assert not (tmp_path / "run" / "01-teachers").exists()


def test_two_profiles_giving_different_recipes_under_one_name_are_refused(tmp_path):
    """Trial defect (session 13): a copy of x86-cpu.yaml that kept the recipe name x86-vnni-u8s8 but set
    activation_type int8 and per_channel false shipped the built-in recipe's model, its manifest claiming its own."""
    from edgekd.core.resources import builtin_dir

    text = (builtin_dir("targets") / "x86-cpu.yaml").read_text(encoding="utf-8")
    mine = tmp_path / "mine.yaml"
    mine.write_text(text.replace("name: x86-cpu", "name: mine").replace("per_channel: true", "per_channel: false"),
                    encoding="utf-8")
    assert "per_channel: false" in mine.read_text()
    config = write_config(tmp_path, targets=["x86-cpu", str(mine)])
    assert_one_line_error(invoke("run", config, "--out", tmp_path / "run"), "'x86-cpu' and 'mine' give two different int8 "
                          "recipes named 'x86-vnni-u8s8' (per_channel differ)", "another quantization.name")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("gate", ["{min_cosine: 0.99999}", "{drop_type: relative, max_drop: 0.1}", "{reference: teacher}"])
def test_a_profile_gate_key_no_check_applies_is_refused(tmp_path, gate):
    """Trial defect (session 13): a profile's gate took min_cosine, drop_type and reference, recorded them in every
    bundle, and applied none (0.1 read as points under drop_type relative)."""
    from edgekd.core.resources import builtin_dir

    mine = tmp_path / "mine.yaml"
    text = (builtin_dir("targets") / "x86-cpu.yaml").read_text(encoding="utf-8").replace("name: x86-cpu", "name: mine")
    mine.write_text(text + f"gate: {gate}\n", encoding="utf-8")
    config = write_config(tmp_path, targets=[str(mine)])
    assert_one_line_error(invoke("run", config, "--out", tmp_path / "run"), "a target profile's gate sets max_drop, "
                          "min_speedup, max_size_kb only")
