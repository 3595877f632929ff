"""Stage 4: int8 QDQ models by post-training calibration, one per distinct target recipe."""
from __future__ import annotations

from ..data.calibration import draw, load_recipe
from ..quant.ptq import quantize_qdq
from ..targets import load_profile
from .context import RunContext, StageOutput
from .export import fp32_onnx_path


def recipes_for(ctx: RunContext) -> dict:
    """Distinct quantization recipes needed by the configured targets, by recipe name."""
    recipes = {}
    for name in ctx.cfg.targets:
        profile = load_profile(name, ctx.base_dir)
        if "int8" in profile.precisions:
            recipes[profile.quantization.name] = profile.quantization
    return recipes


def int8_path(ctx: RunContext, recipe_name: str):
    return ctx.stage_dir("quantize") / f"student-int8-{recipe_name}.onnx"


def run(ctx: RunContext) -> StageOutput:
    if ctx.cfg.quantize.method == "none":
        return StageOutput([], {"method": "none"})
    recipe_set = load_recipe(ctx.cfg.quantize.calibration)
    calibration, digest = draw(ctx.dataset, recipe_set)
    fp32 = fp32_onnx_path(ctx)
    outputs, used = [], {}
    for name, recipe in recipes_for(ctx).items():
        method = ctx.cfg.quantize.calibrate_method or recipe.calibrate_method
        outputs.append(quantize_qdq(fp32, int8_path(ctx, name), recipe, calibration.x, calibrate_method=method))
        used[name] = {**recipe.model_dump(), "calibrate_method": method, "bytes": outputs[-1].stat().st_size}
    metrics = {"method": "ptq", "calibration": {"recipe": recipe_set.model_dump(), "samples": len(calibration),
                                                "sha256": digest}, "recipes": used}
    return StageOutput(outputs, metrics, inputs=[fp32])
