"""Post-training int8 with NNCF on the ONNX model: a QDQ ONNX file whose Q/DQ placement is OpenVINO's.

Why a second quantizer beside onnxruntime's: OpenVINO's CPU plugin fuses Q/DQ into its int8 kernels only where
they sit as its own transformations expect, and NNCF (OpenVINO's quantizer) places them that way for every
architecture. onnxruntime's placement, even tuned (targets/ at commit 528dd67's intel-cpu recipe), left
mobilenet_v3_small's int8 slower than fp32 on OpenVINO, where NNCF's ran faster
(benchmarks/results/targets_architectures.md). The output stays a QDQ ONNX file, so export, fallback,
evaluation and compile treat it like onnxruntime's.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edgekd.core.errors import QuantizerFailed
from edgekd.core.fileio import atomic_path
from edgekd.core.quiet import quiet_nncf
from edgekd.runtimes.profiles import QuantRecipe


def quantize_nncf(fp32_onnx: Path, out_path: Path, recipe: QuantRecipe, calibration: np.ndarray | dict[str, np.ndarray],
                  nodes_to_exclude: list[str] | None = None, transformer: bool = False) -> Path:
    """nncf.quantize with its defaults except: every calibration sample is used (subset_size), `nodes_to_exclude`
    stay float (the fallback search's nodes), `recipe.reduce_range` gives 7-bit weights in every layer
    (OverflowFix.ENABLE: exact on x86 CPUs without VNNI; NNCF's default does it in the first layer only), and
    `recipe.bias_correction` (NNCF's fast one by default, see QuantRecipe).
    `calibration`: the samples of a one-input model, or {input name: samples} for several inputs (a text model's
    input_ids and attention_mask). `transformer`: NNCF's ModelType.TRANSFORMER, its scheme for attention models
    (softmax, layer norm and GELU kept float, the attention MatMuls quantized as OpenVINO fuses them)."""
    import nncf
    import onnx
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, OverflowFix

    model = onnx.load(str(fp32_onnx))
    feeds = _one_sample_feeds(model, calibration)
    preset = nncf.QuantizationPreset.PERFORMANCE if recipe.preset == "performance" else nncf.QuantizationPreset.MIXED
    overflow = OverflowFix.ENABLE if recipe.reduce_range else OverflowFix.FIRST_LAYER
    advanced = AdvancedQuantizationParameters(overflow_fix=overflow, disable_bias_correction=recipe.bias_correction == "none")
    ignored = nncf.IgnoredScope(names=list(nodes_to_exclude or []), validate=False)
    try:
        with quiet_nncf():  # its INFO lines and progress bars stay out of edgekd's log
            quantized = nncf.quantize(model, nncf.Dataset(feeds), preset=preset, subset_size=len(feeds), ignored_scope=ignored,
                                      fast_bias_correction=recipe.bias_correction != "full", advanced_parameters=advanced,
                                      model_type=nncf.ModelType.TRANSFORMER if transformer else None)
    except Exception as exc:  # NNCF raises many types; the first line says which node or statistic failed
        raise QuantizerFailed(f"quantize: NNCF failed with recipe '{recipe.name}' ({str(exc).splitlines()[0][:160]})") from None
    with atomic_path(out_path) as tmp:
        onnx.save(quantized, str(tmp))
    return out_path


def _one_sample_feeds(model, calibration: np.ndarray | dict[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
    """One {input name: one sample} feed per calibration sample, as NNCF's examples feed it: its statistics are per
    sample. Images are cast to float32 (an npz may hold float64); a text model's token ids keep their integer type."""
    if not isinstance(calibration, dict):
        calibration = {model.graph.input[0].name: np.asarray(calibration).astype(np.float32)}
    from edgekd.core.batch_layout import batch_axes, to_model

    axes = batch_axes({v.name: [d.dim_value or None for d in v.type.tensor_type.shape.dim] for v in model.graph.input})
    count = len(next(iter(calibration.values())))
    return [to_model({name: array[i:i + 1] for name, array in calibration.items()}, axes) for i in range(count)]
