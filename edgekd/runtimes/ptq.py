"""Post-training static quantization to a QDQ ONNX model with onnxruntime.quantization.

QDQ (QuantizeLinear/DequantizeLinear pairs) is the one portable int8 format: onnxruntime,
OpenVINO and TensorRT all consume it.
"""
from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Optional

import numpy as np

from edgekd.core.batch_layout import batch_axes, onnx_input_shapes, to_model
from edgekd.core.errors import ConfigError, DataError, QuantizerFailed, clip_words
from edgekd.core.fileio import atomic_path
from edgekd.core.metrics import batch_rows, sample_count, take_rows
from edgekd.runtimes.onnx_graph import op_counts
from edgekd.runtimes.profiles import QuantRecipe


class ArrayReader:
    """onnxruntime CalibrationDataReader over an in-memory array, in fixed-size batches (views, not copies).

    `len()` and `set_range()` let onnxruntime's calibrators take one batch per collect_data call (STRIDED): a
    calibrator keeps every intermediate tensor of every batch it is given in one call, which for 256 images at
    3x224x224 was gigabytes (all of a mid-size CNN's activations, 256 times); one batch at a time, it merges each
    batch's ranges or histograms and frees its tensors."""

    def __init__(self, input_name: str, samples: np.ndarray | dict[str, np.ndarray], batch_size: int = 32,
                 axes: dict[str, int | None] | None = None):
        """`samples`: the one input's array, or {input name: array} for a model with several inputs, samples first;
        `axes`: each input's batch axis in the model (core/batch_layout.py), where each batch is moved to."""
        named = samples if isinstance(samples, dict) else {input_name: samples}
        if not all(np.isfinite(a).all() for a in named.values() if np.issubdtype(a.dtype, np.floating)):
            raise DataError("calibration data contains NaN or Inf; check the dataset and the calibration recipe")
        self._batches = [to_model(take_rows(named, slice(i, i + batch_size)), axes)
                         for i in range(0, sample_count(named), batch_size)]
        self._iter: Optional[Iterator] = None
        self.rewind()

    def __len__(self) -> int:
        return len(self._batches)

    def get_next(self):
        return next(self._iter, None)

    def set_range(self, start_index: int, end_index: int) -> None:
        """Serve batches start_index..end_index-1 only (onnxruntime's CalibStridedMinMax calls this)."""
        self._iter = iter(self._batches[start_index:end_index])

    def rewind(self) -> None:
        self._iter = iter(self._batches)

    def __iter__(self):  # onnxruntime's qdq_loss_debug.collect_activations iterates over its reader
        return iter(self._batches)


# Batches per calibrator call (onnxruntime's CalibStridedMinMax, which applies to every calibration method): one.
STRIDED = {"CalibStridedMinMax": 1}
# Input bytes per calibration batch. The calibrator's model outputs every intermediate tensor, so one batch holds the
# activations of all layers at once: at 32 images of 3x224x224 mobilenet_v3_small's quantize stage peaked at 1.1 GB,
# at 8 at 0.4 GB. 4 MB is 6 such images, and the recipes' 32 for small inputs.
CALIBRATION_BYTES = 4 << 20


def _quant_type(name: str):
    from onnxruntime.quantization import QuantType

    return {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8}[name]


def _calibration_method(name: str):
    from onnxruntime.quantization import CalibrationMethod

    methods = {"minmax": CalibrationMethod.MinMax, "moving-average": CalibrationMethod.MinMax,
               "entropy": CalibrationMethod.Entropy, "percentile": CalibrationMethod.Percentile}
    if name not in methods:  # a caller of quantize_qdq past the config's checks: one line, not KeyError 'moving_average'
        raise ConfigError(f"calibrate_method '{name}': not a calibration method; use one of {', '.join(methods)}")
    return methods[name]


def op_types_of(recipe: QuantRecipe) -> Optional[list[str]]:
    """The op types quantize_static quantizes for `recipe`: its op_types (None: onnxruntime's defaults,
    the union of its operator registries, as quantize_static computes them) plus extra_op_types."""
    if not recipe.extra_op_types:
        return recipe.op_types
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    base = recipe.op_types if recipe.op_types is not None else sorted(set(QLinearOpsRegistry) | set(QDQRegistry))
    return [*base, *(t for t in recipe.extra_op_types if t not in base)]


def quantize_qdq(fp32_onnx: Path, out_path: Path, recipe: QuantRecipe, calibration: np.ndarray,
                 nodes_to_exclude: Optional[list[str]] = None, calibrate_method: Optional[str] = None,
                 calibration_cache: Optional[Path] = None) -> Path:
    """Quantize `fp32_onnx` with `recipe`, calibrated on `calibration`; write `out_path` atomically.

    `calibration_cache`: onnxruntime's JSON cache of tensor ranges. The first call fills it, later
    calls (the fallback search quantizes the same model many times) skip calibration.
    A recipe with tool nncf goes to NNCF (runtimes/nncf_ptq.py), which calibrates by its own rules.
    """
    if recipe.tool == "nncf":
        from edgekd.runtimes.nncf_ptq import quantize_nncf

        return quantize_nncf(Path(fp32_onnx), Path(out_path), recipe, calibration, nodes_to_exclude)
    from onnxruntime.quantization import QuantFormat, quantize_static

    input_name = input_name_of(fp32_onnx)
    # several inputs: each array in its own dtype; one array: float32, without a copy when it is float32 already
    samples = calibration if isinstance(calibration, dict) else np.asarray(calibration, dtype=np.float32)
    reader = ArrayReader(input_name, samples, batch_size=batch_rows(samples, limit=32, budget=CALIBRATION_BYTES),
                         axes=model_axes(fp32_onnx, samples))
    extra = {**recipe.extra_options, **STRIDED, "ActivationSymmetric": recipe.symmetric_activations,
             "WeightSymmetric": recipe.symmetric_weights}
    if recipe.signed_input:
        from onnxruntime.quantization import QuantType

        overrides = dict(extra.get("TensorQuantOverrides", {}))
        overrides[input_name] = [{"quant_type": QuantType.QInt8, "symmetric": True}]
        extra["TensorQuantOverrides"] = overrides
    method = calibrate_method or recipe.calibrate_method
    if method == "percentile":
        extra["CalibPercentile"] = 99.99
    if method == "moving-average":
        # onnxruntime's MinMax as a moving average of each batch's extremes, the rule of PyTorch's
        # MovingAverageMinMaxObserver: the first batch sets the range, each later one (one per call, STRIDED) moves it
        # by 1% of the difference, so an outlier batch no longer sets a tensor's whole range (PP-OCRv4 rec in
        # benchmarks/third_party.py: minmax dropped 53 points on validation, moving-average stays within 1), at
        # minmax's cost, where percentile keeps a histogram of every tensor. The first batch weighs most: it is a
        # retry after minmax (quant/fallback.py), judged on the validation split like any candidate.
        extra["CalibMovingAverage"] = True
    logging.getLogger("root").setLevel(logging.ERROR)  # quantize_static logs each tensor at INFO
    with tempfile.TemporaryDirectory(prefix="edgekd-ptq-") as scratch:
        prepared = prepare_for_quantization(fp32_onnx, Path(scratch) / "prepared.onnx")
        if method == "entropy":
            calibration_cache = calibration_cache or Path(scratch) / "entropy.json"
            if not calibration_cache.is_file():
                entropy_ranges(prepared, reader, calibration_cache, op_types_of(recipe))
        with atomic_path(out_path) as tmp:
            try:
                quantize_static(
                    str(prepared), str(tmp), reader, quant_format=QuantFormat.QDQ,
                    op_types_to_quantize=op_types_of(recipe), per_channel=recipe.per_channel,
                    reduce_range=recipe.reduce_range, activation_type=_quant_type(recipe.activation_type),
                    weight_type=_quant_type(recipe.weight_type), nodes_to_exclude=nodes_to_exclude or [],
                    calibrate_method=_calibration_method(method), extra_options=extra,
                    calibration_cache_path=str(calibration_cache) if calibration_cache else None,
                )
            except (ValueError, RuntimeError) as exc:
                raise QuantizerFailed(f"quantize: onnxruntime failed with recipe '{recipe.name}' ({clip_words(exc, 200)})") from None
            strip_node_debug_metadata(tmp)
            if nodes_to_exclude:
                mark_float_nodes(tmp, nodes_to_exclude)
            check_written(tmp, out_path, fp32_onnx, recipe.name)
    return out_path


def prepare_for_quantization(fp32_onnx: Path, out_path: Path) -> Path:
    """Shape inference and graph clean-up, as onnxruntime recommends before quantizing: the graph quantize_static
    sees, so the fallback ranking (runtimes/sensitivity.py) compares the int8 model with this one, tensor by tensor."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    quant_pre_process(str(_weights_inside(fp32_onnx, Path(out_path).parent)), str(out_path), skip_symbolic_shape=True)
    return out_path


def check_written(written: Path, out_path: Path, fp32_onnx: Path, recipe_name: str) -> None:
    """ONNX's checker on the int8 model the quantizer wrote, before anything loads it. A failure here is the
    quantizer's (e.g. per-channel DequantizeLinear with `axis` in an opset-11 graph), not the user's model: the
    message says so instead of calling the model corrupt."""
    import onnx

    from edgekd.runtimes.onnx_graph import MIN_QUANT_OPSET, opset_of

    try:
        onnx.checker.check_model(str(written))
    except Exception as exc:  # onnx.checker.ValidationError, and protobuf errors of a half-written file
        opset = opset_of(fp32_onnx)
        hint = (f"the fp32 model is at opset {opset}: upgrade it to {MIN_QUANT_OPSET} or later "
                "(onnx.version_converter.convert_version)" if opset and opset < MIN_QUANT_OPSET
                else "the fp32 model itself is fine: report this with the model's opset and the recipe")
        raise QuantizerFailed(f"quantize: recipe '{recipe_name}' wrote {out_path.name}, an int8 model that is not valid ONNX "
                         f"({clip_words(exc, 200)}); {hint}") from None


# quantize_static cannot set the entropy calibrator's histogram sizes, and with its defaults (128 bins
# into 128 quantized bins) the KL-divergence search has one candidate, the min/max range: "entropy"
# silently equals minmax. TensorRT's entropy calibration uses 2048 bins into 128.
ENTROPY_BINS = {"num_bins": 2048, "num_quantized_bins": 128}


def entropy_ranges(prepared: Path, reader: ArrayReader, cache: Path, op_types: Optional[list[str]]) -> None:
    """Entropy calibration with onnxruntime's own calibrator, saved as the cache quantize_static reads."""
    from onnxruntime.quantization.calibrate import CalibrationMethod, create_calibrator, save_tensors_data

    with tempfile.TemporaryDirectory(prefix="edgekd-entropy-") as scratch:
        calibrator = create_calibrator(prepared, op_types, augmented_model_path=str(Path(scratch) / "augmented.onnx"),
                                       calibrate_method=CalibrationMethod.Entropy, extra_options=dict(ENTROPY_BINS))
        for index in range(len(reader)):  # one batch per call, as STRIDED makes quantize_static do
            reader.set_range(index, index + 1)
            calibrator.collect_data(reader)
        save_tensors_data(calibrator.compute_data(), cache)
    reader.rewind()


def strip_node_debug_metadata(onnx_path: Path) -> None:
    """Drop per-node metadata_props (the torch.export-based exporter records each node's FX source
    there, about 1.5 KB a node, and quantize_static copies it to every node it keeps). Runtimes
    ignore it; for a small student it would be most of the int8 file."""
    import onnx

    model = onnx.load(str(onnx_path))
    if any(len(node.metadata_props) for node in model.graph.node):
        for node in model.graph.node:
            del node.metadata_props[:]
        onnx.save(model, str(onnx_path))


def mark_float_nodes(onnx_path: Path, names: list[str]) -> None:
    """Record the nodes kept in float in the model's metadata (runtimes/ort.FLOAT_NODES_KEY): onnxruntime sessions of
    the file then keep them in float (see there), on this machine and on the device alike."""
    import onnx

    from edgekd.runtimes.ort import FLOAT_NODES_KEY

    model = onnx.load(str(onnx_path))
    onnx.helper.set_model_props(model, {**{p.key: p.value for p in model.metadata_props}, FLOAT_NODES_KEY: ",".join(names)})
    onnx.save(model, str(onnx_path))


def add_model_metadata(onnx_path: Path, props: dict[str, str]) -> None:
    """Add `props` to the model's metadata, keeping what is there (FLOAT_NODES_KEY among it). Written whole or not at
    all (an interrupt must not leave the int8 model cut short), its external data left where it is (not loaded, so
    not written inline, which a model over 2 GB cannot be)."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    onnx.helper.set_model_props(model, {**{p.key: p.value for p in model.metadata_props}, **props})
    with atomic_path(onnx_path) as tmp:
        onnx.save(model, str(tmp))


def quantized_nodes(qdq_onnx: Path) -> list[str]:
    """Names of the compute nodes that run in int8: those fed by a DequantizeLinear."""
    import onnx

    graph = onnx.load(str(qdq_onnx), load_external_data=False).graph
    dequantized = {out for n in graph.node if n.op_type == "DequantizeLinear" for out in n.output}
    return [n.name for n in graph.node
            if n.name and n.op_type not in ("QuantizeLinear", "DequantizeLinear") and dequantized.intersection(n.input)]


def dequantize_count(qdq_onnx: Path) -> int:
    """DequantizeLinear nodes anywhere in the model, subgraphs (If, Loop, Scan branches) included: 0 when the quantizer
    left every node in float (NNCF on Silero VAD's graph), a file that int8 names but fp32 runs."""
    return op_counts(qdq_onnx, {"DequantizeLinear"}).get("DequantizeLinear", 0)




def _weights_inside(fp32_onnx: Path, scratch: Path) -> Path:
    """`fp32_onnx` with its external data (model.onnx.data) read back into the file, in `scratch`; the file itself when
    it has none. quant_pre_process runs onnxruntime's optimizer into a temporary folder that lacks the .data file, then
    fails to load its own output ("should be stored in .../pre.quant.*/model.onnx.data")."""
    import onnx

    from edgekd.runtimes.onnx_graph import external_data_files

    if not external_data_files(Path(fp32_onnx), "quantize"):
        return Path(fp32_onnx)
    inline = scratch / "fp32-inline.onnx"
    onnx.save_model(onnx.load(str(fp32_onnx)), str(inline))  # over 2 GB protobuf refuses: onnx's ValueError says so
    return inline


def model_axes(onnx_path: Path, samples) -> dict[str, int | None] | None:
    """Each input's batch axis (core/batch_layout.py) for samples of several inputs; None for one input's array."""
    return batch_axes(onnx_input_shapes(onnx_path)) if isinstance(samples, dict) else None


def input_name_of(onnx_path: Path) -> str:
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    initializers = {init.name for init in model.graph.initializer}
    return next(i.name for i in model.graph.input if i.name not in initializers)
