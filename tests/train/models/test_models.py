from __future__ import annotations

import pytest
import torch

from edgekd.core.errors import ConfigError, ModelError
from edgekd.train.config import ModelConfig
from edgekd.train.models import BUILTIN_MODELS, build_model, load_checkpoint, save_checkpoint


@pytest.mark.parametrize("arch", sorted(BUILTIN_MODELS))
@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32)])
def test_builtin_models_produce_logits(arch, shape):
    model = build_model(ModelConfig(arch=arch, width=8), shape, 10).eval()
    assert model(torch.zeros(2, *shape)).shape == (2, 10)


def test_torchvision_models_build_without_downloading():
    model = build_model(ModelConfig(arch="torchvision:resnet18"), (3, 32, 32), 7).eval()
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 7)


def test_checkpoint_round_trip(tmp_path):
    spec = ModelConfig(arch="convnet", width=4)
    model = build_model(spec, (1, 8, 8), 10)
    save_checkpoint(model, tmp_path / "m.pt")
    again = build_model(spec.model_copy(update={"checkpoint": str(tmp_path / "m.pt")}), (1, 8, 8), 10)
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)


def test_checkpoint_shape_mismatch_is_explained(tmp_path):
    save_checkpoint(build_model(ModelConfig(arch="convnet", width=4), (1, 8, 8), 10), tmp_path / "m.pt")
    with pytest.raises(ModelError, match="has shape .* the model expects"):
        load_checkpoint(build_model(ModelConfig(arch="convnet", width=8), (1, 8, 8), 10), tmp_path / "m.pt")


def test_unknown_arch():
    with pytest.raises(ConfigError, match="unknown; built-in: convnet"):
        build_model(ModelConfig(arch="transformer"), (1, 8, 8), 10)


@pytest.mark.parametrize("arch, kwargs", [("convnet", {"dropout": 0.1}), ("convnet", {"num_classes": 5}),
                                          ("torchvision:resnet18", {"num_classes": 5})])
def test_kwargs_the_model_does_not_take_are_a_config_error(arch, kwargs):
    with pytest.raises(ConfigError, match=rf"student.kwargs .*: {arch} does not accept them .*num_classes and the input size are set"):
        build_model(ModelConfig(arch=arch, kwargs=kwargs), (1, 8, 8), 10, where="student")


def test_an_incomplete_state_dict_is_named_as_such(tmp_path):
    """Trial defect (session 11): half of a split state_dict was "keys do not match the model (missing [3 names])" with
    "check the arch and width", pointing the wrong way and hiding how many were missing."""
    import pytest
    import torch
    from torch import nn

    from edgekd.core.errors import ModelError
    from edgekd.train.models.loading import load_checkpoint

    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3))
    half = dict(list(model.state_dict().items())[:2])
    torch.save(half, tmp_path / "half.pt")
    with pytest.raises(ModelError, match=r"holds 2 of the model's 6 weights, and lacks 2.weight, 2.bias, 4.weight and 1 more: "
                                         r"an incomplete state_dict"):
        load_checkpoint(model, tmp_path / "half.pt")


@pytest.mark.parametrize("wrap", [lambda sd: {"module." + k: v for k, v in sd.items()},
                                  lambda sd: {"model": sd, "optimizer": {}},
                                  lambda sd: {"model": {"module." + k: v for k, v in sd.items()}, "epoch": 3}],
                         ids=["data_parallel", "model_key", "both"])
def test_data_parallel_and_model_wrapped_checkpoints_load(tmp_path, wrap):
    """Trial defect (session 13): a DataParallel checkpoint ('module.' before every key) and {'model': sd,
    'optimizer': {}} were refused as "keys do not match the model ...; check the arch and width", the wrong advice,
    though {'state_dict': sd} loaded."""
    spec = ModelConfig(arch="resnet", width=4)
    model = build_model(spec, (1, 8, 8), 10)
    torch.save(wrap(model.state_dict()), tmp_path / "m.pt")
    again = build_model(spec.model_copy(update={"checkpoint": str(tmp_path / "m.pt")}), (1, 8, 8), 10)
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)


def test_a_module_prefix_the_model_has_itself_is_kept(tmp_path):
    """A model whose own submodule is named 'module' keeps its keys as saved."""
    model = torch.nn.Sequential()
    model.add_module("module", torch.nn.Linear(2, 2))
    save_checkpoint(model, tmp_path / "m.pt")
    load_checkpoint(model, tmp_path / "m.pt")


@pytest.mark.parametrize("trained, fed, says", [
    (16, 8, r"a resnet of 3 stages, which the arch builds for images of 16x16 and larger, while the data's 8x8 images "
            r"give it 2; set data.image_size"),
    (4, 16, r"a resnet of 1 stage, which the arch builds for images smaller than 8x8, while the data's 16x16 images "
            r"give it 3; set data.image_size")])
def test_a_checkpoint_from_another_input_size_says_so(tmp_path, trained, fed, says):
    """Trial defect (session 13): a resnet teacher trained at 16x16 fed 8x8 data was refused with "unexpected
    features.3.body.0.weight ...; check the arch and width" (and one trained at 4x4 fed 16x16 as "an incomplete
    state_dict"): neither said that the input size was what differed."""
    spec = ModelConfig(arch="resnet", width=4)
    save_checkpoint(build_model(spec, (1, trained, trained), 10), tmp_path / "m.pt")
    with pytest.raises(ModelError, match=r"teachers\[0\].checkpoint '.*m.pt': made for another input size: it holds " + says):
        build_model(spec.model_copy(update={"checkpoint": str(tmp_path / "m.pt")}), (1, fed, fed), 10, where="teachers[0]")


def test_a_channel_mismatch_says_how_to_change_the_channels():
    """Trial defect (session 14): torchvision:resnet18 on the gray digits ended "make its first layer match, or set
    data.image_size", and data.image_size does not change channels."""
    with pytest.raises(ModelError, match=r"to have 3 channels.*\); it takes 3-channel images: set data\.color: gray3 "
                                         r"\(imagefolder\), or save the arrays with 3 channels \(npz\), or make its first "
                                         r"layer take 1 channel$") as refused:
        build_model(ModelConfig(arch="torchvision:resnet18"), (1, 8, 8), 10, where="teachers[0]")
    assert "image_size" not in str(refused.value)
    rgb_only = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.Flatten(), torch.nn.LazyLinear(10))
    from edgekd.train.models.loading import check_io

    with pytest.raises(ModelError, match=r"it takes 1-channel images: set data\.color: gray \(imagefolder\)"):
        check_io(rgb_only, (3, 8, 8), 10, "student.arch 'gray.py:net'")


@pytest.mark.parametrize("arch, says", [
    ("torchvision:mobilenet_v3_smal", r"torchvision has no model 'mobilenet_v3_smal'; did you mean "
                                      r"torchvision:mobilenet_v3_small( or .*)?\?$"),
    ("resnet18", r"^student\.arch 'resnet18': unknown; did you mean torchvision:resnet18\? built-in: convnet"),
    ("convnett", r"unknown; did you mean convnet\? built-in")])
def test_an_arch_typo_gets_a_suggestion(arch, says):
    """Trial defect (session 14): "torchvision:mobilenet_v3_smal" was told only that torchvision has no such model, and
    "resnet18" (a torchvision model, not built in) was not pointed to torchvision:resnet18."""
    with pytest.raises(ConfigError, match=says):
        build_model(ModelConfig(arch=arch), (3, 32, 32), 10, where="student")
