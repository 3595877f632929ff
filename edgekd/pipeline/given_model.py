"""A model given as it is (student.onnx, or a checkpoint shipped as given): its ONNX inputs read, checked against
the data, and, for data without labels, its own predictions as the labels every later stage measures against.
Shared by the as_given and export stages and the run context, below them all."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from edgekd.core.batch_layout import SHARED, batch_axes
from edgekd.core.errors import ConfigError, DataError, clip_words
from edgekd.core.fileio import resolve_path
from edgekd.core.metrics import predict


def with_reference_labels(cfg, base_dir: Path, dataset):
    """Unlabeled data: label val and test with the given model's own top-1, so that every later top-1 (quantize budget,
    candidate selection, bench, gate, the device's bench) is top-1 agreement with the fp32 model. Only a model shipped
    as given can be judged that way: training needs labels. `cfg`: the run's PipelineConfig, `base_dir`: its folder
    (taken apart rather than the run context, which loads the dataset through here)."""
    where = f"data.path '{cfg.data.path}'" if cfg.data.path else f"data.source '{cfg.data.source}'"
    if cfg.distill.mode != "none":
        raise DataError(f"{where}: the images have no labels, and distill.mode {cfg.distill.mode} trains on labels; give "
                        "class sub-folders (or y in the npz), or ship a trained model (no teachers, no distill section)")
    if cfg.quantize.method == "qat":
        raise ConfigError(f"quantize.method: qat fine-tunes with labels and {where} has none; use quantize.method: ptq")
    if not cfg.ships_onnx:
        raise ConfigError(f"{where}: the images have no labels, and a PyTorch student's class count comes from them; give "
                          "class sub-folders (or y in the npz), or ship the model's ONNX export (student.onnx)")
    source = resolve_path(cfg.student.onnx, base_dir)
    if not source.is_file():
        raise ConfigError(f"student.onnx '{cfg.student.onnx}': file not found ({source}); give the path of the "
                          "model's .onnx file, absolute or relative to the config file")
    given_input_spec(source, dataset, "student.onnx", where)
    logits = onnx_logits(source)
    val_logits = logits(dataset.val.x)
    if val_logits.ndim == 2 and val_logits.shape[1] == 1:
        raise ConfigError(one_score_refusal(f"student.onnx '{source}'"))
    if val_logits.ndim != 2:
        raise ConfigError(f"student.onnx '{source}': the model's output has shape {_shape(val_logits.shape)}; edgekd ships classifiers "
                          "whose output is (batch, classes) logits")
    print(f"{where}: no labels; every top-1 below is agreement with the fp32 model's top-1 (fidelity, not accuracy)",
          file=sys.stderr)
    return dataset.with_reference_labels(val_logits, logits(dataset.test.x))


def onnx_logits(path: Path, shown_as: Path | None = None, output: str | None = None):
    """`shown_as`: the user's file to name in a load error, when `path` is the run's copy of it; `output`: the output
    to return by name (task.output), else the first."""
    from edgekd.runtimes.ort import OrtSession

    session = OrtSession(path, threads=None, shown_as=shown_as)
    run = (lambda batch: session.run_outputs(batch)[output]) if output is not None else session.run
    return lambda x: predict(_one_row_per_sample(run, shown_as or path, output), x)


def _fed(batch) -> str:
    """The inputs of a batch as a message names them: name, dtype and shape per sample (batch first)."""
    arrays = batch if isinstance(batch, dict) else {"x": batch}
    return ", ".join(f"{name} {np.asarray(a).dtype.name} (batch, {', '.join(str(d) for d in np.shape(a)[1:])})"
                     for name, a in arrays.items())


def _one_row_per_sample(run, path: Path, output: str | None):
    """`run`, refusing a batch whose scored output does not hold one row per sample: a model that returns, say, its
    first row whatever the batch would otherwise be scored by numpy broadcasting one prediction against every label."""
    from edgekd.core.metrics import sample_count

    def checked(batch):
        try:
            got = np.asarray(run(batch))
        except Exception as exc:  # onnxruntime's InvalidArgument: the model refused these inputs' values or shapes
            if not (type(exc).__module__.startswith("onnxruntime") and type(exc).__name__ == "InvalidArgument"):
                raise
            raise ConfigError(f"student.onnx '{path}': the model refused the data's inputs ({_fed(batch)}): "
                              f"{clip_words(str(exc).replace(chr(10), ' '), 240)}; save the arrays as the model takes "
                              "them (sample rate, lengths, state shapes)") from None
        rows = sample_count(batch)
        if got.ndim == 0 or got.shape[0] != rows:
            name = f"output '{output}'" if output else "first output"
            raise ConfigError(f"student.onnx '{path}': its {name} has shape {_shape(got.shape)} for a batch of {rows} "
                              "samples; edgekd scores one row per sample (the batch first): export the model with its "
                              "batch axis first in every output, or name the output to score with --output")
        return got
    return checked


def onnx_inputs(path: Path) -> list[dict]:
    """Every data input of an ONNX model (initializers excluded): name, dtype, shape (symbolic dimensions by name, "?"
    when unnamed) and dynamic_axes ({axis: name} of each dimension without a fixed size), for the manifest."""
    import onnx

    try:
        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception as exc:  # protobuf's DecodeError and friends: not an ONNX file
        raise ConfigError(f"{path}: not a readable ONNX model ({clip_words(exc, 160)}); export it again") from None
    initializers = {init.name for init in graph.initializer}
    specs = []
    for value in (i for i in graph.input if i.name not in initializers):
        tensor = value.type.tensor_type
        shape = [_dimension(d) for d in tensor.shape.dim]
        specs.append({"name": value.name, "dtype": onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name,
                      "shape": shape, "dynamic_axes": {str(i): d for i, d in enumerate(shape) if not isinstance(d, int)}})
    return specs


def _dimension(dim) -> int | str:
    """One dimension of an ONNX shape: its size when fixed, else its name, "?" when it has none. Exporters write a
    dynamic axis as a name, as no value at all, or (Paddle2ONNX, tf2onnx) as -1 or 0; onnxruntime runs all of them at
    any size, so only a positive dim_value is fixed."""
    if dim.dim_param:
        return dim.dim_param
    return dim.dim_value if dim.HasField("dim_value") and dim.dim_value > 0 else "?"


def onnx_input_spec(path: Path) -> dict:
    """Name, shape and dtype of an ONNX model's one data input (edgekd feeds one image tensor)."""
    inputs = onnx_inputs(path)
    if len(inputs) != 1:
        described = ", ".join(f"{i['name']} {i['dtype']} {_shape(i['shape'])}" for i in inputs)
        raise ConfigError(f"{path}: the model takes {len(inputs)} inputs ({described}); edgekd ships image classifiers "
                          "fed one input tensor")
    return {k: inputs[0][k] for k in ("name", "shape", "dtype")}


def given_input_spec(source: Path, dataset, field: str, where: str) -> dict:
    """The given model's main input (name, shape, dtype), once the data is checked to feed it: one image tensor, or
    (an npz with one array per input) every input by name, dtype and fixed dimensions."""
    from edgekd.runtimes.onnx_graph import external_data_files

    external_data_files(source, field)  # its weights beside it, inside its folder: refused in one line before loading
    named = f"{field} '{source}'"  # the user's file, not only the config key
    inputs = onnx_inputs(source)
    if not isinstance(dataset.train.x, dict):
        if len(inputs) > 1:
            raise ConfigError(_one_tensor_for_several(inputs, named, where, npz=getattr(dataset, "name", "") == "npz"))
        spec = onnx_input_spec(source)
        check_input_matches(spec, dataset.input_shape, named, getattr(dataset, "image_steps", None) is not None)
        return spec
    check_named_inputs(inputs, dataset.train.x, named, where)
    return {k: inputs[0][k] for k in ("name", "shape", "dtype")}


def _one_tensor_for_several(inputs: list[dict], named: str, where: str, npz: bool) -> str:
    """The data gives one tensor and the model takes several: the arrays an .npz must hold instead, one per input."""
    described = ", ".join(f"{i['name']} {i['dtype']} {_shape(i['shape'])}" for i in inputs)
    arrays = ", ".join(f"{i['name']}=..." for i in inputs)
    given = "one array x" if npz else "one image tensor"
    return (f"{where}: the model in {named} takes {len(inputs)} inputs ({described}) but the data gives {given}; give an "
            f".npz with one array per input, named as it, and y for labels: numpy.savez(path, {arrays}, y=...)")


LABEL_NAMES = ("labels", "label", "target", "targets", "classes", "class")  # what else users call y


def check_named_inputs(inputs: list[dict], arrays: dict[str, np.ndarray], field: str, where: str) -> None:
    """Each model input has its array, in its dtype, with its fixed dimensions; one line naming the input, what it
    expects and what the array is, at the first mismatch."""
    names = [spec["name"] for spec in inputs]
    extra = [name for name in arrays if name not in names]
    if extra:
        labels = " (labels go under y)" if extra[0].lower() in LABEL_NAMES else ""
        raise ConfigError(f"{where}: array '{extra[0]}' is not an input of the model in {field} (its inputs: "
                          f"{', '.join(names)}); name each array as the input it feeds{labels}")
    for spec in inputs:
        expected = f"{spec['dtype']} {_shape(spec['shape'])}"
        if spec["name"] not in arrays:
            raise ConfigError(f"{where}: no array for the model's input '{spec['name']}' ({expected}); the npz holds "
                              f"{', '.join(sorted(arrays))}: save one array per input, named as the input")
        array = arrays[spec["name"]]
        axis = batch_axes({spec["name"]: spec["shape"]})[spec["name"]]
        if axis is SHARED:  # a 0-d input: one value per sample row inside edgekd (batch_layout.from_file)
            dims, fits, shown = [], array.ndim == 1, _shape(array.shape[1:])
        else:
            _check_batch_axis(spec, field, axis)
            dims = [d for i, d in enumerate(spec["shape"]) if i != axis]
            fits = len(dims) == array.ndim - 1 and all(not isinstance(d, int) or d == s for d, s in zip(dims, array.shape[1:]))
            shown = _shape([*array.shape[1:axis + 1], "batch", *array.shape[axis + 1:]])
        if array.dtype.name != spec["dtype"] or not fits:
            raise ConfigError(f"{where}: the model's input '{spec['name']}' is {expected} but its array is "
                              f"{array.dtype.name} {shown}; save it in the input's dtype and shape")


def _check_batch_axis(spec: dict, field: str, axis: int = 0) -> None:
    shape = spec["shape"]
    dynamic = [i for i, d in enumerate(shape) if not isinstance(d, int)]
    if shape and isinstance(shape[axis], int) and len(shape) == 3 and dynamic == [1]:
        # Not a fixed shape: a sequence-first export (T, N, F), whose batch is on another axis than edgekd feeds it.
        raise ConfigError(f"{field}: the model's input '{spec['name']}' has shape {_shape(shape)}: its axis {axis} is fixed "
                          f"at {shape[axis]} and axis {dynamic[0]} ({shape[dynamic[0]]}) is dynamic, a sequence-first "
                          f"layout with the batch on axis {dynamic[0]}; edgekd feeds the batch on axis {axis}: export the "
                          f"model with the batch first (transpose the input inside it, x.transpose(0, {dynamic[0]}), and "
                          f"dynamic_axes={{'{spec['name']}': {{{axis}: 'batch'}}}})")
    if isinstance(shape[axis], int) if shape else True:
        fixed = (f"has shape {_shape(shape)}, its axis {axis} fixed at {shape[axis]} (dynamic: axis "
                 f"{', '.join(str(i) for i in dynamic)})" if dynamic else f"has the fixed shape {_shape(shape)}")
        raise ConfigError(f"{field}: the model's input '{spec['name']}' {fixed}; edgekd "
                          "measures batches of several sizes: export it with a dynamic batch axis (torch.onnx.export(..., "
                          f"dynamic_axes={{'{spec['name']}': {{{axis}: 'batch'}}}}), or dynamo=True with dynamic_shapes)")


def check_input_matches(spec: dict, sample_shape: tuple, field: str, image_files: bool = False) -> None:
    """One line naming both shapes when the data's samples cannot feed the model's input. `image_files`: the data is
    decoded from image files, whose channels data.color sets (the likely fix when only the channels differ)."""
    _check_batch_axis(spec, field)
    model_shape = spec["shape"][1:]
    fits = len(model_shape) == len(sample_shape) and all(
        not isinstance(m, int) or m == s for m, s in zip(model_shape, sample_shape))
    if spec["dtype"] != "float32" and fits:
        read = "an image folder is decoded to" if image_files else "an npz's x is read as"
        raise ConfigError(f"{field}: the model's input '{spec['name']}' is {spec['dtype']} {_shape(spec['shape'])}, and "
                          f"{read} images scaled to float32; save the arrays in an npz under the input's name instead "
                          f"({_savez_named(spec['name'])}) to feed them as they are, in their own dtype")
    if spec["dtype"] != "float32" or not fits:
        fixes = (_color_fix(model_shape, sample_shape) if image_files else _array_fix(model_shape, sample_shape)) + \
            _layout_fix(model_shape, sample_shape)
        # data.image_size resizes an image folder's files only: an array's shape is fixed when it is saved
        rest = "check data.* (source, image_size)" if image_files else "give images of the model's shape (data.source, data.path)"
        raise ConfigError(f"{field}: the model's input '{spec['name']}' is {spec['dtype']} {_shape(spec['shape'])} but the data's "
                          f"samples are float32 {_shape(['batch', *sample_shape])}; {fixes}{rest} or export the model for "
                          "this input")


def _layout_fix(model_shape: list, sample_shape: tuple) -> str:
    """A model taking channels-last images (a Keras export) fed channels-first samples: the npz that feeds it."""
    if len(model_shape) != 3 or len(sample_shape) != 3 or model_shape[-1] not in (1, 3, 4):
        return ""
    if model_shape[-1] != sample_shape[0] or any(isinstance(m, int) and m != s for m, s in zip(model_shape[:2], sample_shape[1:])):
        return ""
    return ("the model takes channels-last images (batch, H, W, C), which edgekd feeds from an npz as saved: "
            "numpy.savez(FILE, x=images, y=labels) with images (N, H, W, C); else ")


def _array_fix(model_shape: list, sample_shape: tuple) -> str:
    """An array of images (an .npz's x) that feeds a channels-first model once saved otherwise: channels-last images
    (N, H, W, C) transposed, or grey images (one channel) repeated into the model's three."""
    if len(model_shape) != 3 or len(sample_shape) != 3 or not isinstance(model_shape[0], int):
        return ""
    channels, size = model_shape[0], model_shape[1:]
    same_size = all(not isinstance(m, int) or m == s for m, s in zip(size, sample_shape[-2:]))
    if sample_shape[-1] == channels and all(not isinstance(m, int) or m == s for m, s in zip(size, sample_shape[:2])):
        return ("x holds channels-last images (N, H, W, C) and the model takes (N, C, H, W): save x as (N, C, H, W), "
                "x.transpose(0, 3, 1, 2); else ")
    if sample_shape[0] == 1 and channels == 3 and same_size:
        h, w = sample_shape[-2:]
        return ("x holds grey images (one channel) and the model takes 3: repeat the grey channel, save x as "
                f"numpy.repeat(x.reshape(len(x), 1, {h}, {w}), 3, axis=1); else ")
    return ""


def _savez_named(name: str) -> str:
    """How to save an npz whose array feeds the input `name` as it is: under its name, or input.NAME where the name is
    one of an npz of images' own keys (x, y, ...: data/sources.NPZ_KEYS)."""
    from edgekd.data.sources import INPUT_PREFIX, NPZ_KEYS

    if name in NPZ_KEYS:
        return f"numpy.savez(FILE, **{{'{INPUT_PREFIX}{name}': x, 'y': y}})"
    return f"numpy.savez(FILE, {name}=x, y=y)" if name.isidentifier() else f"numpy.savez(FILE, **{{'{name}': x, 'y': y}})"


def _color_fix(model_shape: list, sample_shape: tuple) -> str:
    """The data.color that gives an image folder's samples the model's channels, when the channels are what differs."""
    channels = model_shape[0] if len(model_shape) == len(sample_shape) == 3 else None
    if not isinstance(channels, int) or channels == sample_shape[0] or channels not in (1, 3):
        return ""
    color = "gray" if channels == 1 else "rgb (or gray3 for grayscale images)"
    return f"the model takes {channels} channel(s): set data.color: {color} (edgekd ship: --color {color.split()[0]}); else "


def _shape(shape) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")"


def one_score_refusal(field: str) -> str:
    """A (batch, 1) output (one sigmoid or logit score per sample): its top-1 is class 0 whatever it says, so top-1,
    agreement and the gate on them would compare nothing."""
    return (f"{field}: the model's first output has one column (one score per sample, e.g. a sigmoid); its top-1 is "
            "always class 0, so top-1 and agreement with fp32 would judge nothing: edgekd ships classifiers with one "
            "output per class; export it with two (torch.cat([-z, z], 1) for a logit z, or [1 - p, p] for a probability p)")


def check_classes(logits: np.ndarray, classes: int, field: str, outputs: list[str] | None = None,
                  folders: list[str] | None = None) -> None:
    """`outputs`: the model's output names; with several, the message says how to score another one. `folders`: the
    class folders the labels come from, named when the model has fewer classes than them."""
    if logits.ndim == 2 and logits.shape[1] == 1:
        raise ConfigError(one_score_refusal(field))
    if logits.ndim == 1:  # (batch,): an ArgMax's class labels, or one score per sample
        kind = "class labels (as an ArgMax gives)" if np.issubdtype(logits.dtype, np.integer) else "one value per sample"
        raise ConfigError(f"{field}: the model's first output is {logits.dtype} (batch,), {kind}, not one score per class: "
                          "top-1 and agreement with fp32 need the scores; export the model without its ArgMax, with the "
                          "(batch, classes) logits or probabilities as its output")
    if logits.ndim == 2 and folders and logits.shape[1] < classes:
        raise ConfigError(f"{field}: the model's first output has {logits.shape[1]} classes but the data has {classes} class "
                          f"folders ({', '.join(folders[:8])}{', ...' if len(folders) > 8 else ''}); remove the folders of "
                          "classes the model does not know, or ship with --no-labels (data.labels: none)")
    several = bool(outputs and len(outputs) > 1)  # the first output may be a feature, not the logits
    if logits.ndim == 2 and logits.shape[1] > classes and not several:
        raise ConfigError(_fewer_classes_than_outputs(logits.shape[1], classes, field, folders))
    if logits.ndim != 2 or logits.shape[1] != classes:
        other = (f"; if another output holds the logits, score it on an .npz of the inputs as the model takes them "
                 f"(np.savez(FILE, x=..., y=labels)): --data FILE --metric top1 --output NAME (task: {{kind: fidelity, metric: top1, "
                 f"output: NAME}}; its outputs: {', '.join(outputs)})" if several else "")
        raise ConfigError(f"{field}: the model's first output has shape {_shape(logits.shape)} but the data has {classes} "
                          f"classes; edgekd ships classifiers whose output is (batch, classes) logits: check data.source{other}")


def _fewer_classes_than_outputs(outputs: int, classes: int, field: str, folders: list[str] | None) -> str:
    """The model is (batch, classes) as it should be, but the data has fewer classes than its outputs: test images of
    some classes only. Labels index the model's outputs by position (folder i in sorted order is output i), so the
    classes cannot simply be fewer: folders 0, 1, 3 would read folder 3 as output 2. Named: the missing classes where
    the folders are numbered, and what works."""
    if folders:
        numbered = [int(name) for name in folders if name.isdigit()]
        missing = sorted(set(range(outputs)) - set(numbered)) if len(numbered) == len(folders) and max(numbered) < outputs else []
        shown = ", ".join(folders[:8]) + (", ..." if len(folders) > 8 else "")
        which = (f": no folder for class{'es' if len(missing) > 1 else ''} {', '.join(map(str, missing[:8]))}"
                 if missing else "")
        return (f"{field}: the model has {outputs} outputs (classes) but the data has {classes} class folders ({shown})"
                f"{which}; folder i in sorted order is read as output i, so every output needs its folder: add a folder "
                "of images for each missing class, named so that all sort in the model's order, or ship with --no-labels "
                "(data.labels: none) to judge the model by agreement with its fp32 self")
    return (f"{field}: the model has {outputs} outputs (classes) but the data's labels run 0..{classes - 1} ({classes} "
            f"classes); label i is output i, and every class needs samples: add samples of classes {classes}.."
            f"{outputs - 1}, or ship with --no-labels (data.labels: none) to judge the model by agreement with its fp32 self")


def onnx_scaling(path: Path, channels: int) -> tuple[list[float], list[float]] | None:
    """The input scaling an ONNX model's own metadata records, if any: edgekd's exports carry `preprocessing` (JSON with
    per-channel `mean` and `std`), and some exporters write `mean` and `std` keys. None when absent or not per channel."""
    import json

    import onnx

    props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    try:
        found = json.loads(props["preprocessing"]) if "preprocessing" in props else \
            {"mean": json.loads(props["mean"]), "std": json.loads(props["std"])}
        mean, std = [float(v) for v in found["mean"]], [float(v) for v in found["std"]]
    except (KeyError, TypeError, ValueError):  # no scaling recorded, or not as numbers: nothing to try
        return None
    return (mean, std) if len(mean) == len(std) == channels and min(std) > 0 else None
