"""An ONNX file made elsewhere, brought into the run as onnxruntime itself would take it: its external-data files
carried with it, and an opset below what int8 needs upgraded by onnx's own version converter, then checked against
the original on the data (every output close) and recorded. Torch-free, like the rest of the as-given ONNX path."""
from __future__ import annotations

import functools
import warnings
from pathlib import Path

import numpy as np

from edgekd.core.errors import ArtifactError, ConfigError, clip_words
from edgekd.core.metrics import sample_count, take_rows
from edgekd.runtimes.onnx_graph import MIN_QUANT_OPSET, copy_onnx, dedupe_opset_imports, opset_of, upgrade_opset

# The upgraded model must compute what the original does: the converter rewrites operator signatures (Squeeze's axes
# as an input, ...), not arithmetic, so only float reordering by the runtime's fusions separates the two.
UPGRADE_RTOL, UPGRADE_ATOL = 1e-4, 1e-5
CHECK_SAMPLES = 64


def bring_in(source: Path, target: Path, samples, field: str) -> tuple[list[Path], dict | None]:
    """Copy `source` to `target` (with its external data), upgraded to MIN_QUANT_OPSET when its opset is lower.
    Returns the files written (model first) and the upgrade's record for the manifest (None: no upgrade). Where the
    converter cannot upgrade the file, or the upgraded file computes something else (Resize's semantics changed at
    opset 11), the file is kept at its own opset, which onnxruntime runs: it ships without int8 (`kept_opset`), said
    in one warning, rather than not at all."""
    opset = opset_of(source)
    if opset is None or opset >= MIN_QUANT_OPSET:
        written = copy_onnx(source, target, field)
        merged = dedupe_opset_imports(target, field)  # the run's copy; the user's file is never changed
        return written, ({"from": opset, "to": opset, "tool": "one opset_import per domain", "removed": merged}
                         if merged else None)
    check = None
    try:
        written = upgrade_opset(source, target, MIN_QUANT_OPSET)
        check = compare_outputs(source, target, take_rows(samples, slice(0, CHECK_SAMPLES)))
        problem = None if check["close"] else (f"changed the outputs (max abs error {check['max_abs_error']:.3g} on "
                                               f"{check['samples']} samples)")
    except ArtifactError:  # the upgraded file does not load: the converter's fault, as below
        raise
    except Exception as exc:  # the converter raises plain Exceptions and checker errors for ops it cannot adapt
        problem = f"cannot upgrade it ({clip_words(exc, 200)})"
    if problem is None:
        return written, {"from": opset, "to": MIN_QUANT_OPSET, "tool": "onnx.version_converter", "check": check}
    warnings.warn(f"{field} '{source}': opset {opset} is below the {MIN_QUANT_OPSET} that int8 needs, and onnx's version "
                  f"converter {problem}; it ships at opset {opset} without an int8 candidate: export it at opset "
                  f"{MIN_QUANT_OPSET} or later for int8", stacklevel=2)
    return copy_onnx(source, target, field), {"from": opset, "to": opset, "tool": "onnx.version_converter",
                                              "kept_opset": problem, **({"check": check} if check else {})}


def output_names(path: Path) -> list[str]:
    """The model's output names, in order; read once a process while the file is unchanged (the compile and bench
    stages ask for each evaluation split, and parsing the file parses its weights)."""
    stat = Path(path).stat()
    return list(_output_names(str(path), stat.st_mtime_ns, stat.st_size))


@functools.lru_cache(maxsize=32)
def _output_names(path: str, _mtime_ns: int, _size: int) -> tuple[str, ...]:
    import onnx

    return tuple(value.name for value in onnx.load(path, load_external_data=False).graph.output)


def check_output_name(path: Path, name: str | None) -> None:
    """task.output names one of the model's outputs; one line listing them otherwise."""
    names = output_names(path)
    if name is not None and name not in names:
        raise ConfigError(f"task.output '{name}': the model {path} has no output of that name (its outputs: "
                          f"{', '.join(names)}); name the output the task metric scores, or leave task.output out for "
                          "the first")


def scored_output_first(path: Path, name: str | None) -> bool:
    """Put the output the task metric scores (task.output) first in the run's copy of the model: every stage, the
    bundles and the device's bench score the first output, so naming it once here reaches all of them. Only the
    order of graph.output changes; runtimes return outputs by name. Returns whether the order changed."""
    import onnx

    check_output_name(path, name)
    if name is None or output_names(path)[0] == name:
        return False
    model = onnx.load(str(path), load_external_data=False)  # external data stays where copy_onnx put it
    outputs = sorted(model.graph.output, key=lambda value: value.name != name)
    del model.graph.output[:]
    model.graph.output.extend(outputs)
    onnx.save(model, str(path))
    return True


def compare_outputs(original: Path, upgraded: Path, x) -> dict:
    """Every output of both models on the same samples: the largest absolute error, the least cosine, and whether
    all are within UPGRADE_RTOL/ATOL of the original's scale."""
    expected, got = _outputs(original, x), _outputs(upgraded, x, shown_as=f"{original} (upgraded)")
    worst, cosine, close = 0.0, 1.0, True
    for a, b in zip(expected, got):
        a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
        if a64.shape != b64.shape:
            return {"close": False, "max_abs_error": float("inf"), "min_cosine": None, "samples": sample_count(x)}
        scale = max(1.0, float(np.abs(a64).max(initial=0.0)))
        worst = max(worst, float(np.abs(a64 - b64).max(initial=0.0)))
        close = close and bool(np.allclose(b64, a64, rtol=UPGRADE_RTOL, atol=UPGRADE_ATOL * scale))
        norm = np.linalg.norm(a64) * np.linalg.norm(b64)
        cosine = min(cosine, float((a64 * b64).sum() / norm) if norm else 1.0)
    return {"close": close, "max_abs_error": worst, "min_cosine": cosine, "outputs": len(expected), "samples": sample_count(x)}


def _outputs(path: Path, x, shown_as=None) -> list[np.ndarray]:
    from edgekd.runtimes.ort import load_failure, open_session

    try:
        session = open_session(path)
    except Exception as exc:  # onnxruntime's own exception types
        raise ArtifactError(load_failure(path, exc, shown_as)) from None
    from edgekd.core.batch_layout import batch_axes, to_model

    axes = batch_axes({i.name: i.shape for i in session.get_inputs()})
    feed = to_model(x, axes) if isinstance(x, dict) else {session.get_inputs()[0].name: np.asarray(x, np.float32)}
    return session.run(None, feed)
