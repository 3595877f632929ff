"""Device profiles: the built-in ones are complete, `edgekd targets` lists them, users add their own."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgekd.cli import main as cli
from edgekd.core.errors import ConfigError, TargetError
from edgekd.pipeline.config import PipelineConfig
from edgekd.runtimes import list_profiles, load_profile

REQUIRED = {"intel-cpu": "openvino", "arm64-cpu": "ort-arm64", "jetson-orin": "tensorrt", "nvidia-gpu": "tensorrt",
            "x86-cpu": "ort"}


@pytest.mark.parametrize(("name", "backend"), sorted(REQUIRED.items()))
def test_builtin_profile_is_complete(name, backend):
    profile = load_profile(name)
    assert profile.backend == backend
    assert "fp32" in profile.precisions and "int8" in profile.precisions
    assert profile.quantization is not None and profile.quantization.name
    assert profile.batch_sizes
    assert "max_drop" not in profile.gate.given()  # unset: the pipeline's gate.max_drop decides (pipeline.selection.accuracy_limit)
    if profile.device == "cpu":
        assert profile.threads


def test_tensorrt_profiles_quantize_symmetrically_as_explicit_quantization_needs():
    for name in ("jetson-orin", "nvidia-gpu"):
        recipe = load_profile(name).quantization
        assert recipe.activation_type == "int8" and recipe.symmetric_activations and recipe.symmetric_weights


def test_edgekd_targets_lists_every_builtin_profile():
    result = CliRunner().invoke(cli, ["targets"])
    assert result.exit_code == 0
    header, *lines = result.output.splitlines()
    assert header.split()[:2] == ["profile", "backend"]
    listed = {line.split()[0]: line.split() for line in lines}
    assert {p.name for p in list_profiles()} == set(listed) and set(REQUIRED) <= set(listed)
    assert listed["intel-cpu"][1:3] == ["openvino", "fp32,bf16,int8"] and listed["intel-cpu"][6] == "yes"


USER_PROFILE = """
name: my-board
description: a user's own board
backend: ort-arm64
arch: aarch64
precisions: [fp32, int8]
quantization: {name: my-s8s8, activation_type: int8, weight_type: int8}
batch_sizes: [1]
threads: 2
latency_measurable_off_device: false
gate: {max_drop: 0.5}
"""


def test_user_profile_path_in_config_targets_resolves(tmp_path):
    (tmp_path / "boards").mkdir()
    (tmp_path / "boards" / "my-board.yaml").write_text(USER_PROFILE)
    cfg = PipelineConfig.model_validate({"teachers": [{"arch": "convnet"}], "student": {"arch": "convnet"},
                                         "targets": ["x86-cpu", "boards/my-board.yaml"]})
    profiles = [load_profile(name, base_dir=tmp_path) for name in cfg.targets]
    assert [p.name for p in profiles] == ["x86-cpu", "my-board"]
    assert profiles[1].quantization.name == "my-s8s8" and profiles[1].gate.given() == {"max_drop": 0.5}
    assert profiles[1].source.endswith("my-board.yaml")


def test_user_profile_with_a_typo_names_the_file_and_field(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(USER_PROFILE.replace("batch_sizes", "batch_size"))
    with pytest.raises(ConfigError, match="bad.yaml") as info:
        load_profile(str(path))
    assert "batch_size" in str(info.value)


def test_int8_without_a_recipe_is_refused(tmp_path):
    path = tmp_path / "norecipe.yaml"
    path.write_text("name: x\nbackend: ort\nprecisions: [int8]\n")
    with pytest.raises(ConfigError, match="no 'quantization' recipe"):
        load_profile(str(path))


def test_unknown_target_suggests_the_closest():
    with pytest.raises(TargetError, match="did you mean 'intel-cpu'"):
        load_profile("intel-cpux")


def test_arm64_recipe_is_onnxruntimes_arm_format_and_says_why():
    """S8S8 QDQ, per-channel, full-range weights: onnxruntime's default for CPUs; 7-bit weights are an x86
    no-VNNI remedy (applied on such a build machine by quant/host.py, not by the profile). The reason is
    part of the profile's dump, which the bundle manifest and the quantize stage's metrics record."""
    recipe = load_profile("arm64-cpu").quantization
    assert (recipe.activation_type, recipe.weight_type, recipe.per_channel, recipe.reduce_range) == ("int8", "int8", True, False)
    recorded = load_profile("arm64-cpu").model_dump(mode="json")["quantization"]
    assert "S8S8" in recorded["why"] and "onnxruntime" in recorded["why"]


def test_a_profile_path_is_read_beside_the_config_before_the_working_directory(tmp_path, monkeypatch):
    """Trial defect (session 11): `targets: [./board.yaml]` in proj/cfg.yaml read ./board.yaml of the folder the run was
    started from, while calibration recipes and data are read beside the config."""
    import yaml as _yaml

    from edgekd.runtimes.profiles import load_profile

    builtin = _yaml.safe_load((Path(__file__).resolve().parents[2] / "targets" / "x86-cpu.yaml").read_text())
    (tmp_path / "proj").mkdir()
    (tmp_path / "board.yaml").write_text(_yaml.safe_dump({**builtin, "name": "from-the-working-directory"}))
    (tmp_path / "proj" / "board.yaml").write_text(_yaml.safe_dump({**builtin, "name": "beside-the-config"}))
    monkeypatch.chdir(tmp_path)
    assert load_profile("./board.yaml", tmp_path / "proj").name == "beside-the-config"
    assert load_profile("./board.yaml", tmp_path / "elsewhere").name == "from-the-working-directory"


@pytest.mark.parametrize("changes, message", [
    ({"precisions": ["fp32", "int8", "int8"]}, "precisions: int8 is listed twice"),
    ({"batch_sizes": [0, 8]}, "batch_sizes: 0 is no batch size"),
])
def test_a_profiles_lists_are_checked(tmp_path, changes, message):
    """Trial defects (session 11): duplicate precisions gave duplicate rows (fp32 'within noise of fp32', itself), and
    batch size 0 was accepted."""
    import yaml as _yaml

    from edgekd.core.errors import EdgeKDError
    from edgekd.runtimes.profiles import load_profile

    builtin = _yaml.safe_load((Path(__file__).resolve().parents[2] / "targets" / "x86-cpu.yaml").read_text())
    (tmp_path / "board.yaml").write_text(_yaml.safe_dump({**builtin, **changes}))
    with pytest.raises(EdgeKDError, match=message):
        load_profile("board.yaml", tmp_path)


def test_a_mistyped_runtime_option_is_refused_naming_it(tmp_path):
    """Trial defect (session 11): performance_hnt and workspace_megabytes were ignored (LATENCY and 1024 MB applied),
    and the manifest stored the typo as if it had been."""
    import yaml as _yaml

    from edgekd.core.errors import EdgeKDError
    from edgekd.runtimes.profiles import load_profile

    builtin = _yaml.safe_load((Path(__file__).resolve().parents[2] / "targets" / "intel-cpu.yaml").read_text())
    (tmp_path / "ov.yaml").write_text(_yaml.safe_dump({**builtin, "runtime_options": {"performance_hnt": "THROUGHPUT"}}))
    with pytest.raises(EdgeKDError, match=r"ov.yaml: runtime_options.performance_hnt: not an option of backend openvino; "
                                          r"did you mean 'performance_hint'\?"):
        load_profile("ov.yaml", tmp_path)


def test_a_tensorrt_profile_with_an_asymmetric_uint8_recipe_is_refused(tmp_path):
    """Trial defect (session 11): a Jetson profile with activation_type uint8 and asymmetric activations shipped a
    QuantizeLinear UINT8 model that TensorRT's explicit quantization cannot build."""
    import yaml as _yaml

    from edgekd.core.errors import EdgeKDError
    from edgekd.runtimes.profiles import load_profile

    builtin = _yaml.safe_load((Path(__file__).resolve().parents[2] / "targets" / "jetson-orin.yaml").read_text())
    recipe = {**builtin["quantization"], "activation_type": "uint8", "symmetric_activations": False}
    (tmp_path / "jetson-u8.yaml").write_text(_yaml.safe_dump({**builtin, "quantization": recipe}))
    with pytest.raises(EdgeKDError, match=r"backend tensorrt builds int8 as signed and symmetric only"):
        load_profile("jetson-u8.yaml", tmp_path)


def test_an_op_type_that_is_no_onnx_operator_is_refused(tmp_path):
    """Trial defect (session 11): extra_op_types [ReduceMean, Convolution, Relu6x] passed silently (nothing has them)."""
    import yaml as _yaml

    from edgekd.core.errors import EdgeKDError
    from edgekd.runtimes.profiles import load_profile

    builtin = _yaml.safe_load((Path(__file__).resolve().parents[2] / "targets" / "x86-cpu.yaml").read_text())
    recipe = {**builtin["quantization"], "extra_op_types": ["ReduceMean", "Convolution"]}
    (tmp_path / "ops.yaml").write_text(_yaml.safe_dump({**builtin, "quantization": recipe}))
    with pytest.raises(EdgeKDError, match=r"'Convolution' is not an ONNX operator; did you mean '\w+'\?"):
        load_profile("ops.yaml", tmp_path)


@pytest.mark.parametrize("options, message", [
    ({"ActivationSymmetric": True}, r"ActivationSymmetric: edgekd sets it from the recipe; remove it and "
                                    r"set symmetric_activations"),
    ({"WeightSymmetric": False}, r"WeightSymmetric: .*set symmetric_weights"),
    ({"CalibMovingAverage": True}, r"CalibMovingAverage: .*set calibrate_method: moving-average"),
    ({"WeightSymetric": False}, r"WeightSymetric: not an onnxruntime quantize_static extra option; did you mean "
                                r"'WeightSymmetric'\? edgekd sets it from the recipe: set symmetric_weights"),
    ({"OpTypesToExcludeOutputQuant": ["Gemm"]}, r"did you mean 'OpTypesToExcludeOutputQuantization'\?"),
])
def test_a_recipes_extra_options_are_checked(tmp_path, options, message):
    """Trial defect (session 13): `extra_options: {ActivationSymmetric: true, WeightSymetric: false}` was accepted:
    ActivationSymmetric was overwritten by the recipe's symmetric_activations, the typo was ignored, and the manifest
    recorded both as if used. A key the recipe sets itself names the recipe key to use; an unknown one the closest of
    onnxruntime's documented keys."""
    import yaml as _yaml

    from edgekd.core.errors import EdgeKDError
    from edgekd.runtimes.profiles import ORT_EXTRA_OPTIONS, load_profile

    builtin = _yaml.safe_load((Path(__file__).resolve().parents[2] / "targets" / "x86-cpu.yaml").read_text())
    recipe = {**builtin["quantization"], "extra_options": {**builtin["quantization"]["extra_options"], **options}}
    (tmp_path / "xo.yaml").write_text(_yaml.safe_dump({**builtin, "quantization": recipe}))
    with pytest.raises(EdgeKDError, match=r"xo.yaml: quantization.extra_options: .*" + message):
        load_profile("xo.yaml", tmp_path)
    # every key onnxruntime's quantize_static documents in the installed version is known here
    import inspect

    from onnxruntime.quantization import quantize_static

    documented = set(re.findall(r"^\s+([A-Z]\w+) = ", inspect.getdoc(quantize_static) or "", flags=re.M))
    assert documented and documented <= set(ORT_EXTRA_OPTIONS)


@pytest.mark.parametrize("precisions", [["fp16", "int8"], ["fp16"], ["fp32", "bf16"]])
def test_a_float_precision_its_backend_does_not_build_is_refused(tmp_path, precisions):
    """Trial defect (session 13): `precisions: [fp16, int8]` on a copy of x86-cpu (onnxruntime, float kernels fp32
    only) dropped fp16 without a word, and `precisions: [fp16]` failed at the compile stage with 'no candidate to build
    ... run the quantize stage' though it had run. Refused when the profile loads, naming the profile file, the precision
    and the backend's float precisions; the built-in profiles' fp16 (TensorRT) and bf16 (OpenVINO) still load."""
    import yaml as _yaml

    from edgekd.core.errors import EdgeKDError
    from edgekd.runtimes.profiles import load_profile

    builtin = _yaml.safe_load((Path(__file__).resolve().parents[2] / "targets" / "x86-cpu.yaml").read_text())
    (tmp_path / "x16.yaml").write_text(_yaml.safe_dump({**builtin, "precisions": precisions}))
    wrong = next(p for p in precisions if p in ("fp16", "bf16"))
    with pytest.raises(EdgeKDError, match=rf"x16.yaml: precisions: {wrong} is not built by backend ort \(its float "
                                          rf"precisions: fp32\); remove it, or use a backend that builds {wrong} \(.*openvino"):
        load_profile("x16.yaml", tmp_path)
    assert "bf16" in load_profile("intel-cpu").precisions and "fp16" in load_profile("jetson-orin").precisions
