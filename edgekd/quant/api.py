"""`quantize(model, Int8Config(...))`: int8 QDQ ONNX from Python, in the spirit of torchao's `quantize_`.

    from edgekd.api import Int8Config, quantize
    # post-training: an fp32 ONNX file in, a QDQ ONNX file out
    quantize("student.onnx", Int8Config(target="x86-cpu", calibration=x_cal, output="student-int8.onnx"))
    # quantization-aware training: the same config at two steps, your training loop in between
    qat = quantize(model, Int8Config(target="x86-cpu", step="prepare", calibration=x_cal))
    ...  # fine-tune qat like any nn.Module
    quantize(qat, Int8Config(target="x86-cpu", step="convert", output="student-qat.onnx"))

Importing this module does not import torch; only the prepare and convert steps do.
"""
from __future__ import annotations

import difflib
import logging
import typing
import warnings
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Literal, Optional, Union

import numpy as np

from edgekd.core.errors import ConfigError
from edgekd.quant.fallback import FallbackBudget
from edgekd.quant.host import recipe_for_host
from edgekd.runtimes.profiles import QuantRecipe, load_profile


@dataclass
class Int8Config:
    """target: a device profile name or path (its quantization recipe is used), or a QuantRecipe.
    step: "ptq" calibrates an fp32 ONNX file; "prepare" returns a fake-quantized copy of a torch
    model for QAT; "convert" exports a prepared model to QDQ ONNX at `output`.
    calibration: input samples (N, ...) for PTQ ranges, or to initialise QAT activation ranges.
    calibrate_method: the target recipe's when None; "auto" tries each and keeps pick_calibration's choice on
    validation (x, y), as the pipeline's quantize.calibrate_method: auto does.
    fallback + validation (x, y): PTQ keeps sensitive nodes in float until within fallback.max_drop.
    adapt_to_host: on an x86 CPU without VNNI/AMX, 7-bit weights so that int8 measured here is exact (quant/host.py)."""

    target: Union[str, QuantRecipe] = "x86-cpu"
    step: Literal["ptq", "prepare", "convert"] = "ptq"
    calibration: Optional[np.ndarray] = None
    calibrate_method: Optional[Literal["minmax", "moving-average", "entropy", "percentile", "auto"]] = None
    output: Optional[Union[str, Path]] = None
    fallback: Optional[FallbackBudget] = None
    validation: Optional[tuple[np.ndarray, np.ndarray]] = None
    adapt_to_host: bool = True

    def __post_init__(self) -> None:
        self.check_choices()

    def check_choices(self) -> None:
        """Each Literal field holds one of its values, as the pipeline config's keys are checked: a dataclass checks
        nothing, and calibrate_method='moving_average' reached onnxruntime's table as a bare KeyError."""
        hints = typing.get_type_hints(Int8Config)
        for field in fields(self):
            valid = _literal_values(hints[field.name])
            value = getattr(self, field.name)
            if valid and value is not None and value not in valid:
                close = difflib.get_close_matches(str(value), [str(v) for v in valid], n=1)
                hint = f"did you mean '{close[0]}'? " if close else ""
                raise ConfigError(f"Int8Config.{field.name} '{value}': not a valid value; {hint}"
                                  f"use one of {', '.join(map(str, valid))}")

    def recipe(self) -> QuantRecipe:
        if isinstance(self.target, QuantRecipe):
            recipe, name = self.target, ""
        else:
            profile = load_profile(self.target)
            if profile.quantization is None:
                raise ConfigError(f"Int8Config.target '{self.target}': this target has no int8 recipe")
            recipe, name = profile.quantization, profile.name
        choice = recipe_for_host(recipe, self.adapt_to_host, name)
        if choice.note:
            _warn_every_call(choice.note)
        return choice.recipe


def _warn_every_call(note: str) -> None:
    """A note said at every quantize() call, from the caller's line: warnings.warn's registry shows a note once per line
    of code, so the second int8 file made the same way (a loop, or the same helper) was quantized with 7-bit weights
    without a word. A fresh registry per call keeps the user's filters ("ignore", "error", "once") in force."""
    import sys

    frame = sys._getframe(1)
    while frame.f_back is not None and frame.f_globals.get("__name__", "").startswith("edgekd."):
        frame = frame.f_back  # the first frame outside edgekd: the user's call
    warnings.warn_explicit(note, UserWarning, frame.f_code.co_filename, frame.f_lineno,
                           module=frame.f_globals.get("__name__", "__main__"), registry={})


def _literal_values(hint: Any) -> tuple:
    """The values of a Literal type hint, also inside Optional[Literal[...]]; () for any other hint."""
    if typing.get_origin(hint) is Literal:
        return typing.get_args(hint)
    return next((values for arg in typing.get_args(hint) if (values := _literal_values(arg))), ())


# Metadata keys (onnx.load(path).metadata_props) of a model quantize() made with validation samples.
CALIBRATE_METHOD_KEY = "edgekd.calibrate_method"  # the method used (calibrate_method "auto": the one it chose)
VAL_KL_KEY = "edgekd.val_kl"  # mean KL divergence (nats) of its softmax from the fp32 model's on the validation samples
VAL_DROP_KEY = "edgekd.val_drop"  # its validation drop against the fp32 model


def quantize(model: Any, config: Int8Config):
    """ptq -> Path of the QDQ model; prepare -> a QatModel; convert -> Path of the QDQ model.

    With validation samples (fallback or calibrate_method "auto"), what the search found is in the returned model's
    metadata (onnx.load(path).metadata_props): edgekd.float_nodes (the nodes kept in float, comma-separated; absent
    when none), edgekd.calibrate_method (the method used, "auto"'s choice), edgekd.val_kl and edgekd.val_drop. A
    failure raises StageError naming what was tried."""
    config.check_choices()  # again: a field may have been set after the config was made
    if config.step == "ptq":
        return _ptq(model, config)
    if config.step == "prepare":
        from edgekd.quant.qat import prepare_qat

        return prepare_qat(model, config.recipe(), None if config.calibration is None else _tensor(config.calibration))
    if config.step == "convert":
        return _convert(model, config)
    raise ConfigError(f"Int8Config.step '{config.step}': use ptq, prepare or convert")


def _ptq(model: Any, config: Int8Config) -> Path:
    from edgekd.quant.fallback import quantize_auto, quantize_with_fallback
    from edgekd.runtimes.ptq import quantize_qdq

    _check_model_file(model)
    if config.calibration is None or config.output is None:
        raise ConfigError("Int8Config(step='ptq') needs calibration samples and an output path")
    _refuse_output_over_input(Path(model), Path(config.output))
    _refuse_quantized_model(Path(model))
    _check_samples_fit(Path(model), config.calibration, "calibration")
    _warn_pixels_for_a_float_input(Path(model), config.calibration)
    validation = config.validation
    if validation is not None:
        validation = _check_validation_pair(validation)
        _check_samples_fit(Path(model), validation[0], "validation")
    recipe, output = config.recipe(), Path(config.output)
    if config.calibrate_method and recipe.tool == "nncf":  # said, as the pipeline's preflight says it
        warnings.warn(f"Int8Config.calibrate_method '{config.calibrate_method}': not used: recipe '{recipe.name}' is "
                      "NNCF's (tool: nncf), which calibrates by its own rules", stacklevel=3)
    auto = config.calibrate_method == "auto" and recipe.tool != "nncf"  # NNCF calibrates by its own rules
    if config.fallback is None and not auto:
        return quantize_qdq(Path(model), output, recipe, config.calibration, calibrate_method=config.calibrate_method)
    if validation is None:
        needs = "calibrate_method='auto'" if auto else "fallback"
        raise ConfigError(f"Int8Config {needs} needs validation=(x, y) to measure the accuracy on")
    x, y = validation
    # A failure's advice names this API's settings (FallbackBudget.max_nodes, step='prepare'), not the pipeline's keys.
    budget = replace(config.fallback or FallbackBudget(max_drop=float("inf")), advice="api")
    if auto:
        # No fallback asked for: a budget no drop exceeds, so each method is judged as it quantizes.
        method, tried = quantize_auto(Path(model), output, recipe, config.calibration, x, y, budget)
        logging.getLogger(__name__).info("calibrate_method auto chose %s", method)
        _record_choice(output, method, tried[method])
        return output
    report = quantize_with_fallback(Path(model), output, recipe, config.calibration, x, y, budget, config.calibrate_method)
    _record_choice(output, "nncf" if recipe.tool == "nncf" else report.calibrate_method or config.calibrate_method
                   or recipe.calibrate_method, report)
    return output


def _record_choice(output: Path, method: str, report) -> None:
    """The calibration method the model was made with and its mean KL divergence from the fp32 model on the
    validation samples, in the model's metadata beside edgekd.float_nodes: quantize() returns a path only, and these
    were a logging.info line at most."""
    from edgekd.runtimes.ptq import add_model_metadata

    add_model_metadata(output, {CALIBRATE_METHOD_KEY: method, VAL_KL_KEY: f"{report.val_kl:.6g}",
                                VAL_DROP_KEY: f"{report.val_drop:.6g}"})


def _check_model_file(model: Any) -> None:
    """A path that names no file (a typo) is said to be missing: "pass its path" alone read as if a path were the
    wrong kind of argument."""
    if not isinstance(model, (str, Path)):
        raise ConfigError("Int8Config(step='ptq') quantizes an fp32 ONNX file: pass its path (export torch models first)")
    if not Path(model).exists():
        raise ConfigError(f"quantize(model='{model}'): no such file; check the path of the fp32 ONNX file")
    if not Path(model).is_file():
        raise ConfigError(f"quantize(model='{model}'): not a file; pass the path of the fp32 ONNX file")


def _check_validation_pair(validation: Any) -> tuple[Any, np.ndarray]:
    """validation=(x, y) with as many labels as samples: otherwise numpy's broadcast error ("operands could not be
    broadcast together") came from deep in the accuracy measurement. Returns (x, y as an array of class indices)."""
    if not isinstance(validation, (tuple, list)) or len(validation) != 2:
        raise ConfigError("Int8Config.validation: give a pair (x, y) of samples and their labels")
    x, y = validation
    y = _class_indices(y)
    if isinstance(x, dict):  # several inputs: the reader checks them
        return x, y
    if len(x) != len(y):
        raise ConfigError(f"Int8Config.validation: x has {len(x)} samples but y has {len(y)} labels; "
                          "give one label per sample")
    if len(x) == 0:
        raise ConfigError("Int8Config.validation: no samples (x is empty); give the samples to measure accuracy on")
    return x, y


def _class_indices(y: Any) -> np.ndarray:
    """The labels as one class index per sample, refused before calibration runs: a list reached the fallback search
    as a list ('list' object has no attribute 'ndim'), and one-hot rows a broadcast error in the top-1 count, both
    after minutes of calibrating."""
    try:
        labels = np.asarray(y)
    except (TypeError, ValueError) as exc:  # ragged lists
        raise ConfigError(f"Int8Config.validation: y is not an array of labels ({exc}); give one class index per "
                          "sample") from None
    if labels.ndim != 1:
        fix = " (one-hot rows: give y.argmax(1))" if labels.ndim == 2 else ""
        raise ConfigError(f"Int8Config.validation: y has shape {labels.shape}; give one integer class index per "
                          f"sample, shape (N,){fix}")
    whole = labels.dtype.kind in "iu" or (labels.dtype.kind == "f" and bool(np.all(np.isfinite(labels)))
                                          and bool(np.all(labels == np.round(labels))))
    if not whole:
        raise ConfigError(f"Int8Config.validation: y holds {labels.dtype} values, not class indices; give one integer "
                          "class index per sample")
    if labels.size and labels.min() < 0:
        raise ConfigError(f"Int8Config.validation: y holds {labels.min():g}, a negative class index; give indices "
                          "0..classes-1, one per sample")
    return labels.astype(np.int64)  # whole floats (1.0) as the integers the top-1 count compares with


def _refuse_output_over_input(model: Path, output: Path) -> None:
    """The int8 file is written atomically over `output`: were it the fp32 model itself, the user's only float copy
    would be replaced without a word (15793 -> 10642 bytes on the digits CNN)."""
    same = output.resolve() == model.resolve() or (output.exists() and output.samefile(model))
    if same:
        raise ConfigError(f"Int8Config.output '{output}' is the model being quantized ('{model}'): writing there would "
                          "overwrite the fp32 model; give another output path (e.g. model-int8.onnx)")


def _refuse_quantized_model(model: Path) -> None:
    """A model that already holds quantized operators (the pipeline's student.onnx intake says so and ships it as
    given): onnxruntime quantizes its Q/DQ pairs again and writes an invalid graph (tensor names used twice), which
    check_written then blamed on the quantizer."""
    from edgekd.runtimes.onnx_graph import QUANTIZED_OPS, op_counts

    quantized = op_counts(model, QUANTIZED_OPS)
    if quantized:
        found = ", ".join(f"{n} {op}" for op, n in sorted(quantized.items()))
        raise ConfigError(f"'{model}': the model is already quantized ({found} nodes); "
                          "use it as it is, or quantize the fp32 model it was made from")


def _check_samples_fit(model: Path, samples: Any, field: str) -> None:
    """An array of samples (first axis) whose rank or fixed dimensions cannot feed the model's one input is refused
    here, naming both shapes: onnxruntime's own "Invalid rank for input: x Got: 3 Expected: 4" names neither the
    field nor the layout it wants. Several inputs ({name: array}), and an input whose samples are not on its first
    axis (one array is fed in the model's own layout), are left to the calibration reader."""
    from edgekd.core.batch_layout import batch_axes, is_dynamic, onnx_input_shapes

    _refuse_no_samples(samples, field)
    shapes = onnx_input_shapes(model)
    if isinstance(samples, dict) or len(shapes) != 1 or batch_axes(shapes) != dict.fromkeys(shapes, 0):
        return
    (name, shape), = shapes.items()
    array_shape = np.shape(samples)
    wanted = shape[1:]
    fits = len(array_shape) == len(wanted) + 1 and all(
        is_dynamic(w) or w == s for w, s in zip(wanted, array_shape[1:]))
    if not fits:
        raise ConfigError(f"Int8Config.{field}: the array has shape {tuple(array_shape)} but the model's input '{name}' is "
                          f"{_dims(shape)}; give samples first, each of shape {_dims(wanted)}")


def _warn_pixels_for_a_float_input(model: Path, samples: Any) -> None:
    """Raw 8-bit pixels (an integer array, or whole numbers 0..255: the rule data.scale auto reads pixels by) given as
    calibration for a model that takes floats: calibrated as given, the int8 ranges fit values the model was likely
    never trained on (digits: int8 82.2% against 97.7% with the samples scaled as in training), without a word."""
    import onnx

    from edgekd.data.sources import _value_range

    if isinstance(samples, dict):  # several inputs: each its own preprocessing
        return
    graph = onnx.load(str(model), load_external_data=False).graph
    weights = {init.name for init in graph.initializer}
    inputs = [value for value in graph.input if value.name not in weights]
    floats = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE, onnx.TensorProto.BFLOAT16)
    if len(inputs) != 1 or inputs[0].type.tensor_type.elem_type not in floats:
        return
    array = np.asarray(samples)
    integers = array.dtype.kind in "iu"
    if not integers and (array.dtype.kind != "f" or _value_range(array) != "pixels"):
        return
    seen = f"an integer array ({array.dtype})" if integers else "whole numbers"
    warnings.warn(f"Int8Config.calibration: {seen} of values {array.min(initial=0):g}..{array.max(initial=0):g}, which "
                  f"look like raw 8-bit pixels, for the model's float input '{inputs[0].name}': calibrated as given; "
                  "give the samples preprocessed as the model was trained on them (e.g. x / 255, normalized)",
                  stacklevel=4)


def _refuse_no_samples(samples: Any, field: str) -> None:
    """An empty array (x[:0]) gave onnxruntime's calibrator no ranges and its raw TypeError ("Unexpected type
    <class 'NoneType'> for tensors_range")."""
    arrays = samples.values() if isinstance(samples, dict) else [samples]
    if any(np.ndim(a) > 0 and len(a) == 0 for a in arrays):
        raise ConfigError(f"Int8Config.{field}: no samples (the array is empty); give at least one sample, "
                          "samples first (N, ...)")


def _dims(shape: list) -> str:
    from edgekd.core.batch_layout import is_dynamic

    return "[" + ", ".join("?" if is_dynamic(d) else str(d) for d in shape) + "]"


def _convert(model: Any, config: Int8Config) -> Path:
    from edgekd.quant.qat import QatModel
    from edgekd.quant.qat_export import export_qdq

    if not isinstance(model, QatModel):
        raise ConfigError("Int8Config(step='convert') needs the model returned by step='prepare'")
    if config.output is None:
        raise ConfigError("Int8Config(step='convert') needs an output path for the QDQ ONNX file")
    example = config.calibration if config.calibration is not None else model.example_input
    model.set_observer_mode("frozen")
    return export_qdq(model, np.asarray(example), Path(config.output))


def _tensor(samples: np.ndarray):
    import torch

    return torch.as_tensor(np.asarray(samples, dtype=np.float32))
