"""Stage 4: one int8 QDQ model per distinct target recipe, by calibration (ptq) or fine-tuning (qat).

PTQ models that break the int8 accuracy budget on the validation split go through the
accuracy-aware fallback (quant/fallback.py), so the compile stage's int8 candidate is the fixed one.
QAT fine-tunes the fake-quantized student with the distillation loss, once per recipe (each recipe
has its own integer formats), and exports the learned ranges to the same QDQ format.
"""
from __future__ import annotations

import json
import shutil
import sys
import warnings
from dataclasses import replace

import numpy as np

from edgekd.core.errors import ConfigError, DataError, QuantizerFailed, StageError
from edgekd.core.fileio import atomic_path
from edgekd.core.metrics import accuracy_drop, within_limit
from edgekd.core.progress import progress
from edgekd.data.calibration import describe, draw, load_recipe
from edgekd.pipeline.context import RunContext
from edgekd.pipeline.records import QuantizeRecord, StudentRecord, read_record
from edgekd.pipeline.selection import int8_budget
from edgekd.pipeline.stage import Stage, StageOutput
from edgekd.pipeline.target_runtime import run_profile
from edgekd.pipeline.validation_split import search_part, split_record
from edgekd.quant.fallback import (
    WEIGHTED_OP_TYPES,
    FallbackBudget,
    FallbackReport,
    logits_of,
    quantize_auto,
    quantize_with_fallback,
    with_op_types,
    with_preset,
)
from edgekd.quant.host import HostChoice, recipe_for_host, warn_once
from edgekd.runtimes.ptq import dequantize_count, quantize_qdq

# torch is imported inside the QAT functions only: PTQ of an ONNX student runs without it.


def recipes_for(ctx: RunContext) -> dict[str, HostChoice]:
    """Distinct quantization recipes needed by the configured targets, by recipe name, each as this host can
    measure it (quant/host.py: 7-bit weights on x86 CPUs without VNNI, with a warning)."""
    recipes = {}
    for name in ctx.cfg.targets:
        profile = run_profile(ctx, name)  # a target on its fallback runtime quantizes by that target's recipe
        if "int8" in profile.precisions and profile.quantization.name not in recipes:
            choice = recipe_for_host(profile.quantization, ctx.cfg.quantize.adapt_to_host, profile.name)
            warn_once(choice)
            recipes[profile.quantization.name] = choice
    return recipes


def _refuse_two_recipes_of_one_name(config, base_dir) -> None:
    """Targets share an int8 model by recipe name (recipes_for, the run layout's file names): two profiles giving
    different settings under one name would get one of them, and the other's manifest would describe a model it does
    not hold."""
    from edgekd.runtimes import load_profile

    seen: dict[str, tuple[str, dict]] = {}
    for target in config.targets:
        profile = load_profile(target, base_dir)
        if "int8" not in profile.precisions or profile.quantization is None:
            continue
        recipe = profile.quantization.model_dump(mode="json", exclude={"why"})
        first = seen.setdefault(profile.quantization.name, (profile.name, recipe))
        if first[1] != recipe:
            differ = sorted(k for k in recipe if recipe.get(k) != first[1].get(k))
            raise ConfigError(f"targets: '{first[0]}' and '{profile.name}' give two different int8 recipes named "
                              f"'{profile.quantization.name}' ({', '.join(differ)} differ), and targets share an int8 model "
                              "by recipe name; give one of them another quantization.name")


def synthetic_split(ctx: RunContext):
    """The data-free stage's generated set (labelled by the teachers), when there is one."""
    path = ctx.layout.synthetic_set
    if ctx.cfg.distill.mode != "data_free" or not path.is_file():
        return None
    import numpy as np

    from edgekd.data.datasets import Split

    with np.load(path, allow_pickle=False) as arrays:
        return Split(arrays["x"], arrays["y"])


def _calibration_set(ctx: RunContext, recipe_set):
    """The recipe's draw from a split, or from the quantize.calibration_images folder when one is given."""
    folder = ctx.cfg.quantize.calibration_images
    if not folder:
        return draw(ctx.dataset, recipe_set, synthetic_split(ctx))
    from edgekd.core.fileio import resolve_path
    from edgekd.data.calibration import draw_folder
    from edgekd.data.datasets import preprocess_of

    return draw_folder(resolve_path(folder, ctx.base_dir), recipe_set, ctx.dataset, preprocess_of(ctx.cfg.data))


def _ptq(ctx: RunContext, recipe, calibration_x):
    cfg, out = ctx.cfg.quantize, ctx.layout.int8_onnx(recipe.name)
    # NNCF calibrates by its own rules: no onnxruntime calibration method to choose or search.
    method = "nncf" if recipe.tool == "nncf" else cfg.calibrate_method or recipe.calibrate_method
    # fallback: false ships int8 as calibrated, or not at all when it breaks max_drop: measured as the search measures
    # it, with nothing else tried (no other calibration, op set, preset or node kept in float).
    searching = cfg.fallback.enabled
    # The recipe's minmax, not one the user chose: an average over batches is tried before nodes are kept in float.
    retry = ("moving-average",) if searching and method == "minmax" and not cfg.calibrate_method else ()
    # onnxruntime's whole default op set, not one the recipe chose: its weighted layers alone are tried next.
    op_types = WEIGHTED_OP_TYPES if searching and recipe.tool != "nncf" and recipe.op_types is None else ()
    # NNCF's performance preset (symmetric activations): its mixed preset is tried next.
    presets = ("mixed",) if searching and recipe.tool == "nncf" and recipe.preset == "performance" else ()
    budget = FallbackBudget(int8_budget(ctx, recipe.name), ctx.cfg.gate.drop_type,
                            cfg.max_fallback_nodes if cfg.fallback.enabled else 0, cfg.sensitivity_samples,
                            cfg.fallback.max_seconds, score=ctx.task.score, retry_calibrations=retry,
                            retry_op_types=op_types, retry_presets=presets)
    # The held-back samples judge what the search keeps (pipeline/validation_split.py). They do not decide whether the
    # search runs either: a first model that passes on the search samples is kept as it is, even when it would miss on
    # the held-back ones. Searching because of them would make them part of the search (its outcome would depend on
    # them) and the compile stage's judgement on them optimistic again; instead the compile stage's reason names the
    # samples it judged on and this stage's own drop (compile._say_judged_on).
    val = search_part(ctx)
    replaced = ""
    try:
        if method == "auto":
            method, tried = quantize_auto(ctx.layout.fp32_onnx, out, recipe, calibration_x, val.x, val.y, budget)
            report = tried[method]
            search = {m: r.to_json() if isinstance(r, FallbackReport) else {"failed": r} for m, r in tried.items()}
        else:
            report, search = quantize_with_fallback(ctx.layout.fp32_onnx, out, recipe, calibration_x, val.x, val.y, budget,
                                                    method), None
            replaced = _calibration_replaced(recipe, method, report, len(val.y))
            method = report.calibrate_method or method
    except QuantizerFailed:  # no int8 model at all (QuantizeStage.run's _not_made), not one over the budget
        raise
    except StageError as missed:
        return _int8_over_budget(ctx, recipe, out, calibration_x, method, missed)
    # the op set and preset the kept model was made with, for any further search
    recipe = with_preset(with_op_types(recipe, report.op_types), report.preset)
    report, on_targets = _on_target_runtimes(ctx, recipe, out, report, budget, calibration_x, method)
    info = {"calibrate_method": method, "nodes_in_float": report.nodes_in_float, "fallback": report.to_json()}
    info = {**info, "calibrate_method_replaced": replaced} if replaced else info
    info = {**info, "op_types": report.op_types} if report.op_types else info
    info = {**info, "preset": report.preset} if report.preset else info
    if searched(report, search, on_targets):  # its targets' candidates are judged on the held-back samples
        info = {**info, "searched": True, "validation_split": split_record(ctx)}
    info = {**info, "target_runtimes": on_targets} if on_targets else info
    return out, {**info, "calibration_search": search} if search else info


def _calibration_replaced(recipe, requested: str, report: FallbackReport, samples: int) -> str:
    """When the fallback's calibration retry replaced the requested method (the recipe's minmax by moving-average),
    the manifest recorded the new method beside the recipe's own without a word: said here and recorded."""
    if not report.calibrate_method or report.calibrate_method == requested or requested in ("auto", "nncf"):
        return ""
    # the retry's own measure of the method it kept (a later op-type retry may have changed the final drop)
    kept = (report.calibrations_tried.get(report.calibrate_method) or {}).get("val_drop", report.int8_val_drop)
    also = "; then the op-type retry changed it further" if report.op_types else ""
    said = (f"quantize: recipe '{recipe.name}': calibrated with {report.calibrate_method} instead of the recipe's "
            f"{requested}: {requested} dropped {report.first_val_drop:.2f} on the {samples} search validation samples, "
            f"{report.calibrate_method} {kept:.2f}{also} (the fallback's calibration "
            "retry; set quantize.calibrate_method to keep one method)")
    print(said, file=sys.stderr)
    return said


def searched(report: FallbackReport, calibration_search: dict | None, on_targets: dict) -> bool:
    """Did the search choose among int8 models (so that the kept one must be judged on samples it has not seen)?
    Not when the first model passed: then nothing was picked for how it did on the search's samples."""
    return bool(report.triggered or report.calibrations_tried or report.op_types_tried or report.presets_tried or calibration_search
                or on_targets.get("nodes_in_float_for_runtimes"))


def _int8_over_budget(ctx: RunContext, recipe, out, calibration_x, method: str, missed: StageError):
    """No int8 model within the budget, even with the fallback's nodes in float: the plain int8 model is still made
    (its drop measured and shown as a candidate), so the compile stage ships its targets' float candidates with that
    drop as the reason, as the issue asks (every model ships on every target), instead of the whole run failing."""
    plain = "minmax" if method in ("auto", "nncf") else method
    searched = getattr(missed, "fallback_report", None)  # the search's own: the calibration, op set and preset that dropped least
    if searched is not None:
        recipe = with_preset(with_op_types(recipe, searched.op_types), searched.preset)
        plain = searched.calibrate_method or plain
    quantize_qdq(ctx.layout.fp32_onnx, out, recipe, calibration_x, calibrate_method=None if recipe.tool == "nncf" else plain)
    warnings.warn(f"{missed}; {_what_targets_ship(ctx, recipe.name)}", stacklevel=2)
    made_with = {"op_types": searched.op_types, "preset": searched.preset} if searched is not None else {}
    # the plain model's drop as the search measured it: what judges a target that cannot run it here (a TensorRT engine)
    drop = {"over_budget_drop": searched.int8_val_drop} if searched is not None else {}
    return out, {"calibrate_method": method if method != "auto" else plain, "nodes_in_float": [],
                 "over_budget": str(missed), **drop, **{k: v for k, v in made_with.items() if v}}


def _what_targets_ship(ctx: RunContext, recipe_name: str) -> str:
    """What the targets of a recipe whose int8 misses the budget ship. Not always a float candidate: a profile with
    precisions [int8] builds nothing else, and the compile stage ships its int8 beyond the budget for the gate to judge;
    saying "ship a float candidate" there promised a model that does not exist."""
    profiles = [run_profile(ctx, name) for name in ctx.cfg.targets]
    sharing = [p for p in profiles if p.quantization is not None and p.quantization.name == recipe_name and "int8" in p.precisions]
    int8_only = [p.name for p in sharing if not set(p.precisions) - {"int8"}]
    if not int8_only:
        return f"the targets of recipe '{recipe_name}' ship a float candidate"
    said = (f"target {', '.join(int8_only)} has no float precision (precisions [int8]): it ships this int8 model beyond "
            "the budget, for the gate to judge on the test split (add fp32 to its profile's precisions for a candidate "
            "that keeps the accuracy)")
    with_float = [p.name for p in sharing if p.name not in int8_only]
    return said + (f"; target {', '.join(with_float)} ships a float candidate" if with_float else "")


def _on_target_runtimes(ctx: RunContext, recipe, out, report: FallbackReport, budget: FallbackBudget, calibration_x,
                        method: str) -> tuple[FallbackReport, dict]:
    """The int8 model measured on the validation split on each target's own runtime (pipeline/target_accuracy.py)
    before the fallback decision stands; where one breaks the budget, more nodes kept in float until all pass."""
    from edgekd.pipeline.records import ExportRecord, read_record
    from edgekd.pipeline.target_accuracy import own_runtime_targets, runtime_drops, within_budget

    profiles = own_runtime_targets(ctx, recipe.name)
    if not profiles:
        return report, {}
    spec = read_record(ctx.manifest, ExportRecord).input
    drops = runtime_drops(ctx, profiles, out, report.fp32_val_top1, spec, search_part(ctx))
    if within_budget(drops, budget.max_drop):
        return report, {"measured": drops}
    found = _search_on_runtimes(ctx, recipe, out, report, budget, calibration_x, method, profiles, spec) \
        if ctx.cfg.quantize.fallback.enabled and ctx.cfg.quantize.max_fallback_nodes else None
    if found is None:
        for target, drop in drops.items():  # said now, not only in the compile stage's table
            warnings.warn(f"quantize: the int8 model ({recipe.name}) drops {drop['val_drop']:.2f} top-1 on the validation split "
                          f"under {target}'s runtime ({drop['runtime']}; {report.val_drop:.2f} under onnxruntime) > budget "
                          f"{budget.max_drop:g}, and keeping up to quantize.max_fallback_nodes in float did not fix it: "
                          f"the compile stage will ship {target}'s fp32", stacklevel=2)
        return report, {"measured": drops}
    kept, measured = found
    val = search_part(ctx)
    top1 = ctx.task.score(logits_of(out, val.x), val.y)  # the kept model under onnxruntime too
    drop = accuracy_drop(report.fp32_val_top1, top1, budget.drop_type, len(val.y))
    report = replace(report, nodes_in_float=kept, val_top1=top1, val_drop=drop, triggered=True)
    return report, {"first_model": drops, "measured": measured, "nodes_in_float_for_runtimes": kept}


def _search_on_runtimes(ctx: RunContext, recipe, out, report: FallbackReport, budget: FallbackBudget, calibration_x,
                        method: str, profiles: list, spec) -> tuple[list[str], dict] | None:
    """Nodes kept in float in the fallback's sensitivity order (computed here when the onnxruntime search did not
    need it), scored on the targets' runtimes; the passing model replaces `out`."""
    import tempfile
    from pathlib import Path

    from edgekd.pipeline.target_accuracy import first_passing, runtime_drops, within_budget
    from edgekd.quant.fallback import rank_sensitivity

    val = search_part(ctx)
    with tempfile.TemporaryDirectory(prefix="edgekd-runtime-fallback-") as scratch:
        cache = Path(scratch) / "calibration.json"
        quantize = lambda path, exclude: quantize_qdq(ctx.layout.fp32_onnx, path, recipe, calibration_x,  # noqa: E731
                                                      nodes_to_exclude=exclude, calibrate_method=method, calibration_cache=cache)
        ranked = [entry["node"] for entry in report.sensitivity]
        if not ranked:
            subset = slice(0, budget.sensitivity_samples)
            fp32_logits = logits_of(ctx.layout.fp32_onnx, val.x[subset])
            ranked = [e["node"] for e in rank_sensitivity(out, fp32_logits, val.x[subset], quantize, Path(scratch))]
        candidate = Path(scratch) / "candidate.onnx"

        def measure(kept: list[str]):
            drops = runtime_drops(ctx, profiles, quantize(candidate, kept), report.fp32_val_top1, spec, val)
            return within_budget(drops, budget.max_drop), drops

        found = first_passing(ranked, len(report.nodes_in_float), budget.max_nodes, measure)
        if found is not None:
            with atomic_path(out) as tmp:
                shutil.copyfile(candidate, tmp)
    return found


def qat_int8(ctx: RunContext, recipe, calibration_x: np.ndarray, out=None):
    """Fine-tune the run's student with fake quantization and distillation; write its QDQ model to `out`
    only if it matches the fake-quantized student and keeps within the int8 accuracy budget."""
    import torch

    from edgekd.pipeline.run_models import build_student
    from edgekd.quant.qat import prepare_qat
    from edgekd.quant.qat_export import export_qdq
    from edgekd.quant.qat_train import finetune_qat

    cfg, data, out = ctx.cfg, ctx.dataset, out or ctx.layout.int8_onnx(recipe.name)
    temperature = cfg.quantize.qat.temperature or cfg.distill.temperature
    alpha = cfg.distill.alpha if cfg.quantize.qat.alpha is None else cfg.quantize.qat.alpha
    transfer, soft, source = _qat_transfer_set(ctx, temperature)
    qat = prepare_qat(build_student(ctx), recipe, torch.from_numpy(calibration_x))
    run = finetune_qat(qat, transfer.x, transfer.y, soft, cfg.quantize.qat.train, temperature, alpha, cfg.seed)
    # Checked before it is renamed into place: a model that fails a check never replaces `out`.
    with atomic_path(out) as candidate:
        export_qdq(qat, data.val.x, candidate, opset=max(13, min(cfg.export.opset, 17)))
        checks = _check_qat_model(ctx, recipe, qat, candidate)
    return out, {"nodes_in_float": [], "qat": {
        "epochs": run.epochs_run, "seconds": round(run.seconds, 2), "temperature": temperature, "alpha": alpha,
        "transfer_set": {"source": source, "samples": len(transfer)},
        "unfolded_batch_norms": qat.unfolded_batch_norms, **checks}}


def _check_qat_model(ctx: RunContext, recipe, qat, path) -> dict:
    """The fake-quantized student's own validation drop, then the QDQ model's agreement with it, then the QDQ model's
    drop, against the same budget the PTQ path enforces (int8_budget); a StageError when one fails. The student's
    own drop comes first: a fine-tuning collapse (a loss of 9544, then ln 10) made both models predict near chance,
    and their disagreement was then reported as an export fault (min_top1_agreement) with no advice that helps."""
    from edgekd.train.trainer import predict_logits

    cfg, val = ctx.cfg, ctx.dataset.val
    torch_logits, onnx_logits = predict_logits(qat, val.x), logits_of(path, val.x)
    fp32_top1, budget = ctx.task.score(logits_of(ctx.layout.fp32_onnx, val.x), val.y), int8_budget(ctx, recipe.name)
    _check_qat_drop(ctx, recipe, "fake-quantized QAT student", fp32_top1, ctx.task.score(torch_logits, val.y), budget)
    agreement = float((torch_logits.argmax(1) == onnx_logits.argmax(1)).mean())
    if agreement < cfg.export.min_top1_agreement:
        raise StageError(f"quantize: the QAT QDQ model agrees with the fake-quantized student on {agreement:.3f} of "
                         f"validation predictions < export.min_top1_agreement {cfg.export.min_top1_agreement}")
    top1 = ctx.task.score(onnx_logits, val.y)
    drop = _check_qat_drop(ctx, recipe, "QAT int8 model", fp32_top1, top1, budget)
    return {"fp32_val_top1": fp32_top1, "val_top1": top1, "val_drop": drop, "budget": budget,
            "torch_onnx_top1_agreement": agreement}


def _check_qat_drop(ctx: RunContext, recipe, what: str, fp32_top1: float, top1: float, budget: float) -> float:
    cfg, val = ctx.cfg, ctx.dataset.val
    drop = accuracy_drop(fp32_top1, top1, cfg.gate.drop_type, len(val.y))
    if not within_limit(drop, budget):
        raise StageError(f"quantize: the {what} ({recipe.name}) drops {drop:.2f} ({cfg.gate.drop_type}) top-1 on the "
                         f"validation split ({fp32_top1:.1%} -> {top1:.1%}) > budget {budget:g} (quantize.max_drop, else "
                         "gate.max_drop or a stricter target profile's); try more quantize.qat.train.epochs, a lower "
                         "quantize.qat.train.lr, or quantize.method: ptq (with fallback)")
    return drop


def _qat_transfer_set(ctx: RunContext, temperature: float):
    """What QAT fine-tunes on, with the teachers' softened outputs on it: the training split (teacher
    logits from the shared cache), or in data_free mode the distill stage's synthetic set, so that the
    whole pipeline still needs no real training image. With distill.mode none (no teachers) the student's own
    fp32 outputs are the soft targets: self-distillation keeps the int8 model close to the model it replaces."""
    import torch

    from edgekd.pipeline.run_models import build_teachers
    from edgekd.train.distill.losses import ensemble_soft_targets
    from edgekd.train.trainer import predict_logits

    if ctx.cfg.distill.mode == "none":
        from edgekd.pipeline.run_models import build_student

        logits = torch.from_numpy(predict_logits(build_student(ctx), ctx.dataset.train.x))
        return ctx.dataset.train, torch.softmax(logits / temperature, dim=1), "train (self-distillation)"
    if ctx.cfg.distill.mode != "data_free":
        from edgekd.pipeline.run_models import teacher_soft_targets

        return ctx.dataset.train, teacher_soft_targets(ctx, temperature), "train"
    synthetic = synthetic_split(ctx)
    if synthetic is None:
        raise StageError("quantize.method: qat in distill.mode data_free fine-tunes on 02-distill/synthetic.npz, which is "
                         "missing: rerun the distill stage (edgekd run --force), or use quantize.method: ptq")
    logits = [torch.from_numpy(predict_logits(t, synthetic.x)) for t in build_teachers(ctx)]
    soft = ensemble_soft_targets(logits, temperature, [t.weight for t in ctx.cfg.teachers], ctx.cfg.distill.ensemble)
    return synthetic, soft, "synthetic"


class QuantizeStage(Stage):
    """Stage 4: one int8 QDQ model per distinct target recipe (PTQ with fallback, or QAT). Depends on the gate's
    max_drop and drop_type too: the int8 budget defaults to them."""

    name = "quantize"
    sections = ("quantize", "targets", "gate.max_drop", "gate.drop_type")

    @classmethod
    def check(cls, config, base_dir) -> None:
        if config.quantize.method == "none":
            return
        recipe = load_recipe(config.quantize.calibration, base_dir)
        if recipe.source == "synthetic" and config.distill.mode != "data_free":
            raise ConfigError(f"quantize.calibration '{config.quantize.calibration}': a synthetic set exists only with "
                              "distill.mode: data_free; use a recipe that draws real images, such as train-256")
        _check_calibration_folder(config, base_dir)
        _refuse_two_recipes_of_one_name(config, base_dir)
        _warn_calibrate_method_unused(config, base_dir)
        _warn_budget_looser_than_gate(config)

    @classmethod
    def check_data(cls, ctx: RunContext) -> None:
        """A recipe pinned by expected_sha256 is drawn as soon as the data is loaded, so data that changed since it was
        pinned is refused before the first stage trains, not after it. A synthetic set exists only after distillation."""
        if ctx.cfg.quantize.method == "none" or cls.task_step(ctx.cfg) is not None:
            return
        recipe_set = load_recipe(ctx.cfg.quantize.calibration, ctx.base_dir)
        if recipe_set.expected_sha256 and recipe_set.source != "synthetic":
            _calibration_set(ctx, recipe_set)

    def run(self) -> StageOutput:
        ctx = self.ctx
        method = ctx.cfg.quantize.method
        if method == "none" or read_record(ctx.manifest, StudentRecord).already_quantized:  # said by the distill stage
            return StageOutput([], record=QuantizeRecord("none"))
        recipe_set = load_recipe(ctx.cfg.quantize.calibration, ctx.base_dir)
        calibration, digest = _calibration_set(ctx, recipe_set)
        fp32 = ctx.layout.fp32_onnx
        outputs, used, made = [], {}, {}
        below = _below_int8_opset(fp32)
        for name, choice in progress(list(recipes_for(ctx).items()), desc="int8 recipes (calibration)", unit="recipe"):
            recipe = choice.recipe
            flavour = json.dumps(recipe.model_dump(exclude={"name", "why"}), sort_keys=True)
            if below is not None:
                made.setdefault(flavour, below)
            if isinstance(made.get(flavour), QuantizerFailed):  # the same formats failed under another name
                used[name] = _not_made(ctx, name, choice, made[flavour])
                continue
            if flavour in made:  # same formats under another name (e.g. x86 VNNI and OpenVINO): reuse the model
                path, info = ctx.layout.int8_onnx(name), {**made[flavour][1], "same_model_as": made[flavour][2]}
                with atomic_path(path) as tmp:
                    shutil.copyfile(made[flavour][0], tmp)
            else:
                try:
                    path, info = (qat_int8 if method == "qat" else _ptq)(ctx, recipe, calibration.x)
                except QuantizerFailed as failed:
                    made[flavour], used[name] = failed, _not_made(ctx, name, choice, failed)
                    continue
                made[flavour] = (path, info, name)
            outputs.append(path)
            used[name] = {**recipe.model_dump(), **info, **choice.record(), "bytes": path.stat().st_size,
                          "dequantize_nodes": dequantize_count(path)}
            if used[name]["dequantize_nodes"] == 0:
                warnings.warn(_no_int8_left(name, recipe, info), stacklevel=2)
        classes = ctx.dataset.num_classes if ctx.task.has_classes else 0  # per_class counts the classes none drew too
        made_from = {"recipe": recipe_set.model_dump(), **describe(recipe_set, calibration, classes), "sha256": digest,
                     "folder": ctx.cfg.quantize.calibration_images}
        return StageOutput(outputs, inputs=[fp32], record=QuantizeRecord(method, used, made_from))


def _no_int8_left(name: str, recipe, info: dict) -> str:
    """Why a recipe's model holds no quantized node. When the fallback kept every node in float, "quantized no node"
    read as if the quantizer had skipped the model, though it quantized everything and int8 dropped too much."""
    fallback = info.get("fallback") or {}
    kept = info.get("nodes_in_float") or []
    if fallback.get("triggered") and kept:
        return (f"quantize: recipe '{name}' ({recipe.tool}): int8 dropped {fallback['int8_val_drop']:.2f} points on the "
                f"validation split; the fallback kept all {len(kept)} quantizable nodes in float (no int8 left), so its "
                "targets get no int8 candidate; try quantize.method: qat")
    return (f"quantize: recipe '{name}' quantized no node of the model ({recipe.tool}); its targets get no "
            "int8 candidate (a float file under an int8 name would mislead)")


def _below_int8_opset(fp32) -> QuantizerFailed | None:
    """A model shipped at an opset below int8's (its upgrade refused, pipeline/onnx_intake.bring_in): no quantizer is
    tried, every recipe's targets ship a float candidate."""
    from edgekd.runtimes.onnx_graph import MIN_QUANT_OPSET, opset_of

    opset = opset_of(fp32)
    if opset is None or opset >= MIN_QUANT_OPSET:
        return None
    return QuantizerFailed(f"quantize: the model is at opset {opset}, below the {MIN_QUANT_OPSET} that int8 needs "
                           f"(its upgrade was refused: see the distill stage's opset_upgrade)")


def _not_made(ctx: RunContext, name: str, choice, failed: QuantizerFailed) -> dict:
    """A recipe whose quantizer could not make a valid int8 model of this (itself fine) model, as onnxruntime's with a
    classifier head inside an If node's branches: no int8 file (nor an earlier run's), the reason said, and
    dequantize_nodes 0 so that its targets' float candidates compete alone (compile.int8_files), as when no int8
    model is within the budget."""
    ctx.layout.int8_onnx(name).unlink(missing_ok=True)
    warnings.warn(f"{failed}; the targets of recipe '{name}' ship a float candidate", stacklevel=2)
    return {**choice.recipe.model_dump(), **choice.record(), "failed": str(failed), "dequantize_nodes": 0}


def _warn_budget_looser_than_gate(config) -> None:
    """quantize.max_drop above gate.max_drop (90 against 1.0): the fallback accepts an int8 model, and does not search,
    where the compile stage then rejects it against the gate's limit. Said at preflight; the looser budget is kept
    (a user may want the int8 model made whatever the gate says), but its consequence is named."""
    budget = config.quantize.max_drop
    if config.quantize.method == "none" or budget is None:
        return
    gate = config.gate.max_drop  # the task metric's own limit applies alike; top-1's is the one most runs set
    if gate is not None and budget > gate:
        warnings.warn(f"quantize.max_drop {budget:g} is looser than gate.max_drop {gate:g}: the fallback keeps an int8 "
                      f"model that drops up to {budget:g} without keeping any node in float, and the compile stage then "
                      f"rejects it (drop > {gate:g}); set quantize.max_drop to {gate:g} or less, or leave it unset (it "
                      "defaults to the gate's)", stacklevel=2)


def _warn_calibrate_method_unused(config, base_dir) -> None:
    """quantize.calibrate_method chooses onnxruntime's calibration; an NNCF recipe (intel-cpu's) calibrates by its own
    rules (_ptq), so for its targets the key was ignored while the manifest recorded calibrate_method nncf. Said at
    preflight, naming those targets: the key still applies to the run's onnxruntime targets."""
    if config.quantize.method != "ptq" or config.quantize.calibrate_method is None:
        return
    from edgekd.runtimes.profiles import load_profile

    profiles = [load_profile(name, base_dir) for name in config.targets]
    nncf = [p for p in profiles if "int8" in p.precisions and p.quantization.tool == "nncf"]
    if nncf:
        named = ", ".join(f"{p.name} (recipe '{p.quantization.name}')" for p in nncf)
        warnings.warn(f"quantize.calibrate_method {config.quantize.calibrate_method}: not used for target {named}: its "
                      "recipe is NNCF's (tool: nncf), which calibrates by its own rules; the key applies to onnxruntime "
                      "recipes only", stacklevel=2)


def _check_calibration_folder(config, base_dir) -> None:
    """quantize.calibration_images: a folder with images in it, decoded with the image folder's preprocessing."""
    folder = config.quantize.calibration_images
    if not folder or config.quantize.method == "none":
        return
    from edgekd.core.fileio import resolve_path
    from edgekd.data.sources import image_files

    if config.data.source != "imagefolder":
        raise ConfigError(f"quantize.calibration_images: needs data.source imagefolder, whose preprocessing (data.resize, "
                          f"data.center_crop, data.color) decodes the calibration images; data.source is '{config.data.source}'")
    if config.quantize.method == "qat":
        raise ConfigError("quantize.calibration_images: unlabeled calibration images are for quantize.method ptq; qat fine-tunes "
                          "on the labeled training split")
    found = resolve_path(folder, base_dir)
    if not found.is_dir():
        raise DataError(f"quantize.calibration_images '{folder}': not a folder ({found}); give a folder of images, absolute "
                        "or relative to the config file")
    image_files(found, "quantize.calibration_images")
