"""Where each input of a model holds its samples, and the two conversions at the edges of edgekd.

Inside edgekd every input array holds its samples on the first axis, so splitting, calibration draws and batching
slice rows the same way for every model. Models made elsewhere do not all agree: Silero VAD takes a recurrent
`state` of shape [2, batch, 128] (samples on axis 1) and `sr`, a 0-d sample rate that one call shares across its
whole batch. The model's own input shapes say which: an input's batch axis is its first dynamic axis (no fixed size:
a name, no value, -1 or 0), or 0 where all are fixed; a 0-d input is shared. The .npz is read in the model's layout
(`from_file`, checked against it) and every batch is put back into it just before a runtime sees it (`to_model`).
numpy only: the device imports this too.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

SHARED = None  # the batch axis of a 0-d input: one value for every sample of a call


def is_dynamic(dim: Any) -> bool:
    """A dimension without a fixed size, as onnx (dim_param, no dim_value, -1, 0), onnxruntime (None, a name) and
    OpenVINO (-1) write it."""
    return dim is None or isinstance(dim, str) or int(dim) <= 0


def batch_axes(shapes: Mapping[str, Sequence[Any]]) -> dict[str, int | None]:
    """Per input name: SHARED for a 0-d input, else its first dynamic axis, else 0."""
    return {name: SHARED if len(shape) == 0 else next((axis for axis, dim in enumerate(shape) if is_dynamic(dim)), 0)
            for name, shape in shapes.items()}


def samples_first_shape(shape: Sequence[Any]) -> list[Any]:
    """An input's shape as edgekd holds its arrays (samples on the first axis): its batch axis moved first; a shared
    0-d input becomes one value per sample, [None]. Silero's state [2, batch, 128] -> [batch, 2, 128]."""
    axis = batch_axes({"_": shape})["_"]
    if axis is SHARED:
        return [None]
    shape = list(shape)
    return [shape[axis], *shape[:axis], *shape[axis + 1:]]


def batch_first(axes: Mapping[str, int | None]) -> bool:
    """True when every input already holds its samples on axis 0: nothing to convert."""
    return all(axis == 0 for axis in axes.values())


def to_model(batch, axes: Mapping[str, int | None] | None):
    """One batch (samples first, as edgekd keeps them) in the model's layout: each input's samples moved to its batch
    axis, a shared input's one value (every row holds it, see from_file) as the 0-d array the model takes."""
    if not isinstance(batch, dict) or not axes or batch_first(axes):
        return batch
    out = {}
    for name, array in batch.items():
        axis = axes.get(name, 0)
        if axis is SHARED:
            out[name] = np.asarray(np.asarray(array)[0] if np.ndim(array) else array)  # 0-d ndarray, not a numpy scalar
        else:
            out[name] = np.ascontiguousarray(np.moveaxis(array, 0, axis)) if axis else array
    return out


def from_file(arrays: Mapping[str, np.ndarray], shapes: Mapping[str, Sequence[Any]], where: str,
              error: type[Exception] = ValueError) -> dict[str, np.ndarray]:
    """An .npz's inputs (in the model's layout) with their samples on the first axis. `shapes`: the model's input shapes
    by name (an input the model lacks is left as is, for the caller's own check). Raises `error` with one line naming
    the input whose samples cannot be found."""
    axes = {name: axis for name, axis in batch_axes(shapes).items() if name in arrays}
    batched = [name for name, axis in axes.items() if axis is not SHARED]
    if batch_first(axes):
        return dict(arrays)
    count = _sample_count(arrays, shapes, batched, axes, where, error)
    out = {}
    for name, array in arrays.items():
        axis = axes.get(name, 0)
        if axis is SHARED:
            out[name] = _shared(name, array, count, where, error)
        elif name in axes:
            _check_batched(name, array, shapes[name], axis, count, where, error)
            out[name] = np.moveaxis(array, axis, 0) if axis else array
        else:
            out[name] = array
    return out


def _sample_count(arrays, shapes, batched: list[str], axes, where: str, error) -> int:
    if not batched:
        raise error(f"{where}: every input of the model is 0-d ({', '.join(axes)}), so the file cannot say how many "
                    "samples it holds; edgekd needs at least one input with a batch axis")
    name = batched[0]
    _check_rank(name, arrays[name], shapes[name], axes[name], where, error)
    return int(arrays[name].shape[axes[name]])


def _check_rank(name: str, array: np.ndarray, shape, axis: int, where: str, error) -> None:
    if np.ndim(array) != len(shape):
        raise error(f"{where}: '{name}' has shape {tuple(np.shape(array))}, but the model's input '{name}' has "
                    f"{len(shape)} dimensions {_shown(shape)}; save it in the model's layout, samples on axis {axis}")


def _check_batched(name: str, array: np.ndarray, shape, axis: int, count: int, where: str, error) -> None:
    _check_rank(name, array, shape, axis, where, error)
    if array.shape[axis] != count:
        raise error(f"{where}: '{name}' {tuple(array.shape)} holds {array.shape[axis]} samples on axis {axis}, its batch "
                    f"axis (the first without a fixed size in the model's {_shown(shape)}), but the other inputs hold "
                    f"{count}; give every input the same samples, each on its batch axis")


def _shared(name: str, array: np.ndarray, count: int, where: str, error) -> np.ndarray:
    """A 0-d input's value, one row per sample (so that rows slice like every other input's)."""
    array = np.asarray(array)
    if array.ndim == 0:
        return np.full(count, array, dtype=array.dtype)
    if array.ndim == 1 and len(array) == count and (array == array[0]).all():
        return array
    raise error(f"{where}: '{name}' {tuple(array.shape)}: the model's input '{name}' is 0-d, one value for a whole batch; "
                f"save one value (a 0-d array) or the same value in each of the {count} rows")


def _shown(shape) -> str:
    return "[" + ", ".join("?" if is_dynamic(d) else str(d) for d in shape) + "]"


def onnx_input_shapes(path) -> dict[str, list]:
    """An ONNX file's data inputs (initializers excluded) by name: each dimension's size, or None when dynamic."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    weights = {init.name for init in graph.initializer}
    return {value.name: [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
                         for d in value.type.tensor_type.shape.dim]
            for value in graph.input if value.name not in weights}
