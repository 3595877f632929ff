"""Stage 4: one int8 QDQ model per distinct target recipe, by calibration (ptq) or fine-tuning (qat).

PTQ models that break the int8 accuracy budget on the validation split go through the
accuracy-aware fallback (quant/fallback.py), so the compile stage's int8 candidate is the fixed one.
"""
from __future__ import annotations

from ..data.calibration import draw, load_recipe
from ..quant.fallback import FallbackBudget, quantize_with_fallback
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


def int8_budget(ctx: RunContext, recipe_name: str) -> float:
    """quantize.max_drop, else the strictest max_drop among the targets sharing this recipe."""
    if ctx.cfg.quantize.max_drop is not None:
        return ctx.cfg.quantize.max_drop
    limits = [ctx.cfg.gate.max_drop]
    for name in ctx.cfg.targets:
        profile = load_profile(name, ctx.base_dir)
        if profile.quantization and profile.quantization.name == recipe_name and profile.gate.max_drop is not None:
            limits.append(profile.gate.max_drop)
    return min(limits)


def run(ctx: RunContext) -> StageOutput:
    method = ctx.cfg.quantize.method
    if method == "none":
        return StageOutput([], {"method": "none"})
    recipe_set = load_recipe(ctx.cfg.quantize.calibration)
    calibration, digest = draw(ctx.dataset, recipe_set)
    fp32 = fp32_onnx_path(ctx)
    outputs, used = [], {}
    for name, recipe in recipes_for(ctx).items():
        path, info = _ptq(ctx, recipe, calibration.x)
        outputs.append(path)
        used[name] = {**recipe.model_dump(), **info, "bytes": path.stat().st_size}
    metrics = {"method": method, "calibration": {"recipe": recipe_set.model_dump(), "samples": len(calibration),
                                                 "sha256": digest}, "recipes": used}
    return StageOutput(outputs, metrics, inputs=[fp32])


def _ptq(ctx: RunContext, recipe, calibration_x):
    cfg, out = ctx.cfg.quantize, int8_path(ctx, recipe.name)
    method = cfg.calibrate_method or recipe.calibrate_method
    if not cfg.fallback:
        quantize_qdq(fp32_onnx_path(ctx), out, recipe, calibration_x, calibrate_method=method)
        return out, {"calibrate_method": method, "nodes_in_float": []}
    budget = FallbackBudget(int8_budget(ctx, recipe.name), ctx.cfg.gate.drop_type, cfg.max_fallback_nodes,
                            cfg.sensitivity_samples)
    val = ctx.dataset.val
    report = quantize_with_fallback(fp32_onnx_path(ctx), out, recipe, calibration_x, val.x, val.y, budget, method)
    return out, {"calibrate_method": method, "nodes_in_float": report.nodes_in_float, "fallback": report.to_json()}

