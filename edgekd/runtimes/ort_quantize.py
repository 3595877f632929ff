"""onnxruntime's own graph tools for the model families (text classifiers, language models): its BERT fusion and
its quantizers (dynamic int8, static int8 in QDQ, MatMulNBits), owned here so that text/ and lm/ never import
onnxruntime (tests/test_import_contracts.py). The families choose what to quantize and why (their docstrings);
these functions only call onnxruntime with those choices.

Why not runtimes/ptq.quantize_qdq for the text model's static int8: that one is the image recipe's (one input cast to
float32 or fixed-size batches cut from arrays, onnxruntime's plain shape inference, the recipe's extra options); the
BERT graph needs symbolic shape inference to type its fused operators' outputs and is calibrated on ready-made
batches of padded token ids, so its call differs in every argument but the format.
"""
from __future__ import annotations

import contextlib
import logging
import tempfile
from pathlib import Path

import numpy as np

from edgekd.core.fileio import atomic_path


def fuse_bert(source: str | Path, target: str | Path, num_heads: int, hidden_size: int) -> None:
    """Rewrite an exported BERT graph into onnxruntime's fused operators (onnxruntime.transformers.optimizer,
    model_type "bert"; opt_level 0: only its own fusions, nothing tied to this machine's CPU)."""
    from onnxruntime.transformers import optimizer

    from edgekd.core.quiet import quiet_ort_transformers

    with quiet_ort_transformers():  # it logs every fusion at INFO, and warns of small vocabularies
        optimized = optimizer.optimize_model(str(source), model_type="bert", num_heads=num_heads, hidden_size=hidden_size,
                                             opt_level=0, use_gpu=False)
        optimized.save_model_to_file(str(target))


def dynamic_int8_bert(fp32_path: str | Path, int8_path: str | Path, reduce_range: bool) -> Path:
    """quantize_dynamic on a (fused) BERT graph: MatMul, Gather (the embedding tables), Attention and
    EmbedLayerNormalization with int8 weights, activations quantized per batch at run time."""
    import onnx
    from onnxruntime.quantization import QuantType, quant_pre_process, quantize_dynamic

    int8_path = Path(int8_path)
    logging.getLogger("root").setLevel(logging.ERROR)  # quantize_dynamic logs each tensor at INFO
    with tempfile.TemporaryDirectory(prefix="edgekd-text-int8-") as scratch, atomic_path(int8_path) as tmp:
        # ONNX shape inference and graph clean-up first, as onnxruntime recommends. Not its symbolic shape inference:
        # it stops on the attention-mask ops ("Incomplete symbolic shape inference").
        prepared = Path(scratch) / "prepared.onnx"
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        # Attention (fused: onnxruntime's QAttention) and EmbedLayerNormalization (QEmbedLayerNormalization) where
        # the graph has them; MatMul and Gather (the embedding tables) otherwise. DefaultTensorType: the fused
        # operators' outputs carry no type information, which the quantizer otherwise stops on.
        quantize_dynamic(str(prepared), str(tmp), op_types_to_quantize=["MatMul", "Gather", "Attention", "EmbedLayerNormalization"],
                         weight_type=QuantType.QInt8, per_channel=False, reduce_range=reduce_range,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    return int8_path


class BatchReader:
    """onnxruntime's CalibrationDataReader protocol over a list of {input name: array} batches, fed as int64 (token
    ids and masks) under `input_names`."""

    def __init__(self, batches: list[dict[str, np.ndarray]], input_names: list[str]):
        self._batches = iter(batches)
        self._names = list(input_names)

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._batches, None)
        return None if batch is None else {name: batch[name].astype(np.int64) for name in self._names}


def static_int8_bert(fp32_path: str | Path, int8_path: str | Path, calibration: list[dict[str, np.ndarray]],
                     input_names: list[str], reduce_range: bool, per_channel: bool = False) -> Path:
    """quantize_static in QDQ format on a (fused) BERT graph: MatMul only, weights int8, activations uint8 with
    min-max ranges from `calibration` (batches of `input_names`), weight scales per output channel with `per_channel`."""
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quant_pre_process, quantize_static

    int8_path = Path(int8_path)
    source = Path(fp32_path).resolve()  # before the chdir below: a relative path (edgekd run's default runs/NAME) is the caller's
    logging.getLogger("root").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="edgekd-text-qdq-") as scratch, atomic_path(int8_path) as tmp:
        prepared = Path(scratch) / "prepared.onnx"
        # onnxruntime's symbolic shape inference here (merging unknown dimensions, guessing the fused operators'
        # output ranks): without the activation types it gives, the calibrator quantizes no activation of the fused
        # graph (a weight-only QDQ file).
        # In the scratch folder: when its inference is incomplete, onnxruntime dumps sym_shape_infer_temp.onnx and a
        # data file into the working directory (symbolic_shape_infer.infer_shapes), i.e. the user's project.
        with contextlib.chdir(scratch):
            quant_pre_process(str(source), str(prepared), skip_symbolic_shape=False, auto_merge=True,
                              guess_output_rank=True)
        # MatMul only: the rest (softmax, layer norm, GELU, the embedding sums) stays fp32, where int8 would cost
        # a quantize/dequantize pair per op and buys nothing on the CPU provider.
        quantize_static(str(prepared), str(tmp), BatchReader(calibration, input_names), quant_format=QuantFormat.QDQ,
                        op_types_to_quantize=["MatMul"], activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        per_channel=per_channel, reduce_range=reduce_range,
                        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})  # as in dynamic_int8_bert
    return int8_path


def dynamic_int8_constant_matmuls(model, out: Path, reduce_range: bool) -> None:
    """quantize_dynamic of an in-memory onnx.ModelProto: the MatMuls with a constant weight only (MatMulConstBOnly),
    int8 weights per output channel, written to `out`."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(model, str(out), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"], reduce_range=reduce_range,
                     per_channel=True, extra_options={"MatMulConstBOnly": True})


def matmul_nbits(model, out: Path, bits: int, block_size: int, accuracy_level: int | None) -> None:
    """onnxruntime's MatMulNBitsQuantizer on an in-memory onnx.ModelProto: symmetric weights of `bits` bits in blocks
    of `block_size`, one file (no external data) written to `out`."""
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    quantizer = MatMulNBitsQuantizer(model, bits=bits, block_size=block_size, is_symmetric=True, accuracy_level=accuracy_level)
    quantizer.process()
    quantizer.model.save_model_to_file(str(out), use_external_data_format=False)
