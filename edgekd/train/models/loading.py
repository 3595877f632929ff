"""Build models from config and load checkpoints safely (weights_only=True, always)."""
from __future__ import annotations

import difflib
import pickle
import re
from collections import OrderedDict
from pathlib import Path
from typing import Optional

import torch
from torch import nn
from torch.nn.modules.utils import consume_prefix_in_state_dict_if_present

from edgekd.core.errors import ConfigError, ModelError
from edgekd.core.fileio import atomic_path, resolve_path
from edgekd.core.user_code import call, is_reference
from edgekd.train.config import ModelConfig
from edgekd.train.models.zoo import BUILTIN_MODELS, _stage_count


def build_model(spec: ModelConfig, input_shape: tuple[int, ...], num_classes: int,
                base_dir: Optional[Path] = None, where: str = "model") -> nn.Module:
    in_channels, size = input_shape[0], (input_shape[-2], input_shape[-1])  # (height, width): not always square
    if spec.arch in BUILTIN_MODELS:
        factory, default_width, _ = BUILTIN_MODELS[spec.arch]
        try:
            model = factory(in_channels, num_classes, size, width=spec.width or default_width, **spec.kwargs)
        except TypeError as exc:  # an unknown or duplicated keyword in the user's kwargs
            raise ConfigError(_kwargs_message(spec, where, exc)) from None
    elif spec.arch.startswith("torchvision:"):
        model = _torchvision(spec, num_classes, where)
    elif is_reference(spec.arch):
        model = call(spec.arch, base_dir, what=f"{where}.arch", **_factory_kwargs(spec, input_shape, num_classes))
        if not isinstance(model, nn.Module):
            raise ConfigError(f"{where}.arch '{spec.arch}': the factory returned {type(model).__name__}, not a torch.nn.Module")
    else:
        raise ConfigError(f"{where}.arch '{spec.arch}': unknown; {_suggest_arch(spec.arch)}built-in: "
                          f"{', '.join(BUILTIN_MODELS)}, or torchvision:NAME, module:function, file.py:function")
    if spec.checkpoint:
        path, where_checkpoint = resolve_path(spec.checkpoint, base_dir), f"{where}.checkpoint"
        if spec.arch in BUILTIN_MODELS:
            _load_into_builtin(model, spec, path, input_shape, num_classes, where_checkpoint)
        else:
            load_checkpoint(model, path, where=where_checkpoint)
    check_io(model, input_shape, num_classes, f"{where}.arch '{spec.arch}'")
    return model


def check_io(model: nn.Module, input_shape: tuple[int, ...], num_classes: int, where: str) -> None:
    """One forward pass on two blank images, so a model that does not fit the data fails here,
    with a line naming the config field, instead of as a torch RuntimeError an hour into training."""
    was_training = model.training
    try:
        with torch.no_grad():
            where_params = next((p.device for p in model.parameters()), torch.device("cpu"))
            out = model.eval()(torch.zeros((2, *input_shape), device=where_params))
    except (RuntimeError, ValueError, TypeError, IndexError) as exc:
        channels = _channels_it_takes(model, input_shape)
        # data.image_size changes the size only: where the channels differ, say how to change those
        fix = (f"it takes {channels}-channel images: {_CHANNEL_FIXES[channels]}, or make its first layer take "
               f"{input_shape[0]} channel{'s' if input_shape[0] > 1 else ''}" if channels else "make its first layer match, or set data.image_size")
        raise ModelError(f"{where}: the model does not accept the data's images of shape {tuple(input_shape)} "
                         f"(channels, height, width) ({str(exc).splitlines()[0][:160]}); {fix}") from None
    finally:
        model.train(was_training)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, num_classes):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ModelError(f"{where}: the model outputs {got} for a batch of 2, expected (2, {num_classes}) logits for "
                         f"the data's {num_classes} classes; give it num_classes outputs")


# How the data's images get the channels a model takes, per count: data.color for image files, the arrays themselves
# for npz (and the built-in digits, which are gray).
_CHANNEL_FIXES = {1: "set data.color: gray (imagefolder), or save the arrays with 1 channel (npz)",
                  3: "set data.color: gray3 (imagefolder), or save the arrays with 3 channels (npz)"}


def _channels_it_takes(model: nn.Module, input_shape: tuple[int, ...]) -> Optional[int]:
    """The other usual channel count (1 or 3) the model accepts where it refused the data's, else None."""
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    for channels in (c for c in _CHANNEL_FIXES if c != input_shape[0]):
        try:
            with torch.no_grad():
                model.eval()(torch.zeros((2, channels, *input_shape[1:]), device=device))
            return channels
        except (RuntimeError, ValueError, TypeError, IndexError):
            continue
    return None


def _factory_kwargs(spec: ModelConfig, input_shape: tuple[int, ...], num_classes: int) -> dict:
    kwargs = dict(spec.kwargs)
    kwargs.setdefault("num_classes", num_classes)
    return kwargs


def _torchvision(spec: ModelConfig, num_classes: int, where: str) -> nn.Module:
    try:
        import torchvision
    except ImportError:
        raise ConfigError(f"{where}.arch '{spec.arch}': torchvision is not installed; pip install 'edgekd[torchvision]'") from None
    name = spec.arch.split(":", 1)[1]
    try:
        # weights=None always: nothing is downloaded at run time; give a checkpoint for trained weights.
        return torchvision.models.get_model(name, weights=None, num_classes=num_classes, **spec.kwargs)
    except ValueError:
        close = _close_names(name, torchvision.models.list_models())
        hint = f"; did you mean {' or '.join(f'torchvision:{c}' for c in close)}?" if close else \
            " (torchvision.models.list_models() lists its models)"
        raise ConfigError(f"{where}.arch '{spec.arch}': torchvision has no model '{name}'{hint}") from None
    except TypeError as exc:
        raise ConfigError(_kwargs_message(spec, where, exc)) from None


def _close_names(name: str, names: list[str]) -> list[str]:
    return difflib.get_close_matches(name.lower(), names, n=3, cutoff=0.8)


def _suggest_arch(arch: str) -> str:
    """'did you mean ...; ' for an unknown arch: a built-in name misspelled (convnett), or a torchvision model named
    without its prefix (resnet18, which is not built in); empty when nothing is close or torchvision is absent."""
    close = _close_names(arch, list(BUILTIN_MODELS))
    try:
        import torchvision

        models = torchvision.models.list_models()
    except ImportError:
        models = []
    if arch.lower() in models:
        return f"did you mean torchvision:{arch.lower()}? "
    close += [f"torchvision:{c}" for c in _close_names(arch, models)]
    return f"did you mean {' or '.join(close[:3])}? " if close else ""


def _kwargs_message(spec: ModelConfig, where: str, exc: TypeError) -> str:
    return (f"{where}.kwargs {dict(spec.kwargs)}: {spec.arch} does not accept them ({str(exc).splitlines()[0][:160]}); "
            "remove the unknown keys (num_classes and the input size are set from the data)")


def _load_into_builtin(model: nn.Module, spec: ModelConfig, path: Path, input_shape: tuple[int, ...],
                       num_classes: int, where: str) -> None:
    """A built-in arch grows a stage per halving of the input, so a checkpoint trained at 16x16 fed 8x8 data has a
    block too many and the key check alone would say "check the arch and width"; when the file fits the same arch
    built at another input size, the refusal says so (and what to set) instead."""
    try:
        load_checkpoint(model, path, where=where)
    except ModelError:
        stages = _stages_the_checkpoint_fits(spec, path, input_shape, num_classes, where)
        if stages is None:
            raise
        height, width = input_shape[-2], input_shape[-1]
        held = f"{stages} stage{'s' if stages > 1 else ''}"
        raise ModelError(f"{where} '{path}': made for another input size: it holds a {spec.arch} of {held}, "
                         f"which the arch builds for images {_sides_for(stages)}, while the data's {height}x{width} "
                         f"images give it {_stage_count((height, width))}; set data.image_size (or data.resize) to the "
                         "size the checkpoint was trained at, or give one trained at this size") from None


def _stages_the_checkpoint_fits(spec: ModelConfig, path: Path, input_shape: tuple[int, ...], num_classes: int,
                                where: str) -> Optional[int]:
    """The stage count (1 to 3) at which the built-in arch has exactly the checkpoint's keys and shapes, if another."""
    try:
        state = read_state_dict(path, where)
    except ModelError:
        return None
    factory, default_width, _ = BUILTIN_MODELS[spec.arch]
    current = _stage_count((input_shape[-2], input_shape[-1]))
    for stages in (1, 2, 3):
        if stages == current:
            continue
        side = 2 ** (stages + 1)  # the smallest side that gives this many stages
        try:
            other = factory(input_shape[0], num_classes, side, width=spec.width or default_width, **spec.kwargs)
        except TypeError:
            return None
        expected = other.state_dict()
        state = _without_parallel_prefix(state, expected)
        if expected.keys() == state.keys() and all(
                isinstance(state[k], torch.Tensor) and state[k].shape == v.shape for k, v in expected.items()):
            return stages
    return None


def _sides_for(stages: int) -> str:
    """The image sides at which a built-in arch has this many stages (zoo._stage_count)."""
    return {1: "smaller than 8x8", 2: "from 8x8 to 15x15", 3: "of 16x16 and larger"}[stages]


def load_checkpoint(model: nn.Module, path: Path, where: str = "checkpoint") -> nn.Module:
    state = _without_parallel_prefix(read_state_dict(path, where), model.state_dict())
    _check_state(model, state, path, where)
    model.load_state_dict(state)
    return model


def read_state_dict(path: Path, where: str = "checkpoint") -> dict:
    """The state_dict in a checkpoint file, unwrapped from a training script's dict; plain tensors only."""
    if not Path(path).is_file():
        raise ModelError(f"{where} '{path}': file not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if _CODE_REFUSAL in str(exc):
            raise ModelError(f"{where} '{path}': refused: the file carries pickled code or objects, not plain tensors "
                             f"({_unsupported(exc)}; loaded with weights_only=True, nothing in it was run); save the "
                             "weights alone with torch.save(model.state_dict(), path)") from None
        raise ModelError(f"{where} '{path}': not a PyTorch checkpoint (its bytes are neither torch.save's format nor a "
                         "pickle: damaged or another kind of file); download it again, or save it with "
                         "torch.save(model.state_dict(), path)") from None
    except Exception as exc:  # noqa: BLE001  garbage bytes reach torch's parsers and fail as any type (KeyError, ...)
        raise ModelError(f"{where} '{path}': not a readable PyTorch checkpoint ({type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''}); "
                         "download it again, or save it with torch.save(model.state_dict(), path)") from None
    state = _unwrapped(state)
    if not isinstance(state, dict):
        raise ModelError(f"{where} '{path}': expected a state_dict (dict of tensors), got {type(state).__name__}")
    return state


# Training scripts save the weights beside their other state: {'state_dict': ...} (Lightning and many others),
# {'model': ..., 'optimizer': ...} (torchvision's reference scripts, timm, fairseq); the weights are the inner dict.
_WRAPPER_KEYS = ("state_dict", "model")


def _unwrapped(state: object) -> object:
    if isinstance(state, dict):
        for key in _WRAPPER_KEYS:
            if isinstance(state.get(key), dict):
                return state[key]
    return state


def _without_parallel_prefix(state: dict, expected: dict) -> dict:
    """nn.DataParallel and DistributedDataParallel save every key as 'module.<key>'; drop that prefix when every
    key has it and the model's own keys do not (a model may have a submodule named 'module')."""
    prefix = "module."
    if not state or any(k.startswith(prefix) for k in expected):
        return state
    if not all(isinstance(k, str) and k.startswith(prefix) for k in state):
        return state
    stripped = OrderedDict(state)  # a copy: torch's helper renames the keys in place
    if hasattr(state, "_metadata"):  # per-module versions load_state_dict reads (BatchNorm's); the helper renames them too
        stripped._metadata = state._metadata
    consume_prefix_in_state_dict_if_present(stripped, prefix)
    return stripped


# torch's weights-only unpickler names a global it will not import (code or an arbitrary object) this way;
# its other refusals ("Unsupported operand 215") mean the bytes are no pickle at all (random or truncated data).
_CODE_REFUSAL = "Unsupported global"


def _unsupported(exc: Exception) -> str:
    """What the file wanted to import, from torch's long refusal ("Unsupported global: GLOBAL module.Name was not an
    allowed global ..."): `wants module.Name`, cut at no word (torch's advice to allow it is not ours to give)."""
    found = re.search(r"GLOBAL ([\w.]+)", str(exc))
    return f"it wants {found.group(1)}" if found else "it wants a Python object"


def _listed(keys: list[str]) -> str:
    return ", ".join(keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")


def _check_state(model: nn.Module, state: dict, path: Path, where: str) -> None:
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing and not unexpected:  # every key it has is the model's: a part of the state_dict (split, cut short)
        raise ModelError(f"{where} '{path}': holds {len(state)} of the model's {len(expected)} weights, and lacks "
                         f"{_listed(missing)}: an incomplete state_dict; give the whole file saved from this model")
    if missing or unexpected:
        detail = f"missing {_listed(missing)}" if missing else f"unexpected {_listed(unexpected)}"
        raise ModelError(f"{where} '{path}': keys do not match the model ({detail}); check the arch and width")
    for key, tensor in expected.items():
        got = state[key]
        if not isinstance(got, torch.Tensor) or got.shape != tensor.shape:
            shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
            raise ModelError(f"{where} '{path}': '{key}' has shape {shape}, the model expects {tuple(tensor.shape)}; "
                             "the checkpoint was made for another arch, width, input size or class count")


def save_checkpoint(model: nn.Module, path: Path) -> Path:
    return save_torch(model.state_dict(), path)


def save_torch(obj, path: Path) -> Path:
    """torch.save `obj` to `path` atomically, in bytes that depend on `obj` alone. torch.save given a path names the
    zip archive's records after the file's name, here atomic_path's random temporary one
    ('.student.pt.3mwt6ud5/data.pkl'), so the same weights saved twice had different sha256s; given a file object it
    names them 'archive' every time."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        torch.save(obj, handle)
    return path


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
