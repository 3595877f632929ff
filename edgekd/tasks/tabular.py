"""Stages 1-4 for tables (data.source csv or parquet): teachers of any kind fitted or loaded, their outputs on every
split cached, each scored on validation, and the ensemble exported to ONNX as the baseline; the student (preprocessing
+ MLP or residual MLP) distilled from the cached outputs; one ONNX graph taking raw columns; int8 of its network part.
Compile, bench and gate are the shared stages: they read what these write.

    data: {source: parquet, path: diamonds.parquet, target: cut}
    teachers:
      - {lightgbm: LGBMClassifier, params: {n_estimators: 300}}
      - {sklearn: RandomForestClassifier, params: {n_estimators: 300}}
      - {sklearn: MLPClassifier, params: {hidden_layer_sizes: [64, 32]}}
      - {onnx: my-model.onnx}              # a fitted model of any origin, inputs named as the columns
    student: {arch: resmlp, width: 32, kwargs: {depth: 2}}
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from edgekd.core.errors import ConfigError, DataError, StageError
from edgekd.core.fileio import resolve_path
from edgekd.pipeline.context import RunContext
from edgekd.pipeline.records import ExportRecord, QuantizeRecord, StudentRecord, TeachersRecord
from edgekd.pipeline.run_models import teacher_cache
from edgekd.pipeline.stage import StageOutput, TaskStep, fresh_progress
from edgekd.pipeline.task import Classification
from edgekd.tasks.tabular_teachers import (
    SPLITS,
    TRANSFER_FILE,
    ensemble_probabilities,
    make_transfer_rows,
    split_key,
    teacher_onnx_file,
    train_soft_targets,
    transfer_key,
    transfer_recipe,
    transfer_rows,
)
from edgekd.train.config import FITTED_KINDS


def check_tabular_config(config, base_dir: Path) -> None:
    """What the table path supports, refused with the key before anything loads."""
    from edgekd.runtimes import load_profile
    from edgekd.runtimes.registry import runtime_of
    from edgekd.tabular.student import STUDENT_ARCHS

    for index, teacher in enumerate(config.teachers):
        if teacher.kind == "torch":
            raise ConfigError(f"teachers[{index}].arch: a table's teachers are fitted or given as files: sklearn, lightgbm, "
                              "xgboost, onnx (a network exported with inputs named as the columns) or skops")
    if config.ships_onnx or config.distill.mode not in ("offline",):
        raise ConfigError(f"distill.mode: tables distill offline from teachers (got {config.distill.mode}); give teachers")
    if config.student.arch not in STUDENT_ARCHS or config.student.checkpoint:
        raise ConfigError(f"student.arch: tables take {' or '.join(STUDENT_ARCHS)} (with width and kwargs.depth, no "
                          f"checkpoint); got {config.student.arch!r}")
    if config.distill.hints or config.distill.augment or config.distill.dkd or config.distill.finetune_epochs:
        raise ConfigError("distill: tables distill with Hinton's loss on the cached outputs; remove hints, augment, dkd and "
                          "finetune_epochs")
    if config.quantize.method == "qat":
        raise ConfigError("quantize.method: qat is for images; tables quantize after training (ptq) or not at all (none)")
    for index, name in enumerate(config.targets):
        # string inputs and ONNX-ML operators: onnxruntime runs them
        if runtime_of(load_profile(name, base_dir).backend) != "onnxruntime":
            raise ConfigError(f"targets[{index}] '{name}': a table model takes string columns and ONNX-ML operators, which "
                              "onnxruntime runs; use an onnxruntime target (x86-cpu, arm64-cpu)")
    path = resolve_path(Path(config.data.path).expanduser(), base_dir)
    if not path.is_file():
        raise ConfigError(f"data.path '{config.data.path}': no such file ({path}); give a .csv or .parquet file")


class TabularTeachersStep(TaskStep):
    """Stage 1 (tables): each teacher fitted on the training split (or loaded from its file), its outputs on every
    split cached, scored on validation and test, and converted to ONNX; the ensemble as one ONNX graph, timed."""

    name = "teachers"
    sections = ("seed", "data", "teachers", "distill.transfer_set", "distill.out_of_fold")
    trains = True

    @classmethod
    def check(cls, config, base_dir) -> None:
        check_tabular_config(config, base_dir)

    def check_inputs(self) -> list[dict]:
        self.ctx.dataset  # noqa: B018  (loaded for its checks: columns, target, categories)
        return []

    def run(self) -> StageOutput:
        from edgekd.core.progress import progress
        from edgekd.tabular import baseline
        from edgekd.train.teacher_kinds import out_of_fold_logits

        ctx, data, folder = self.ctx, self.ctx.dataset, self.ctx.stage_dir("teachers")
        cache, entries, members, outputs, inputs = teacher_cache(ctx), [], [], [], []
        transfer = self._transfer_set(folder, outputs)
        for index, spec in progress(list(enumerate(ctx.cfg.teachers)), desc="teachers", unit="teacher"):
            teacher = _teacher(ctx, index, spec)
            folds = ctx.cfg.distill.out_of_fold if spec.kind in FITTED_KINDS else None
            logits, keys = {}, {s: split_key(teacher.identity, ctx, s, folds if s == "train" else None) for s in SPLITS}
            compute = {s: lambda r=getattr(data, s).x, t=teacher: _finite(t, t.logits(r), r) for s in SPLITS}
            if folds:  # its training rows' outputs from fits that did not see them (distill.out_of_fold)
                compute["train"] = lambda spec=spec, index=index, folds=folds: out_of_fold_logits(
                    spec, index, data.train.x, data.train.y, data.num_classes, ctx.cfg.seed, folds, data.schema)
            if transfer is not None:  # the synthetic rows, labelled through the teacher's own logits() like a real split
                keys["transfer"] = transfer_key(teacher.identity, ctx)
                compute["transfer"] = lambda t=teacher: t.logits(transfer)
            for split, key in keys.items():
                describe = {"teacher": f"{teacher.where} {teacher.name}", "split": split}
                found = cache.get_or_compute(key, compute[split], describe)
                logits[split] = np.asarray(found.logits, dtype=np.float32)
            if teacher.kind in ("onnx", "skops"):  # trained elsewhere: scored on validation before anything learns from it
                given_teacher_fits(teacher, logits, data)
            entry = {"index": index, "kind": teacher.kind, "name": teacher.name, "weight": spec.weight, "out_of_fold": folds,
                     "val_top1": ctx.task.score(logits["val"], data.val.y), "top1": ctx.task.score(logits["test"], data.test.y),
                     "cache_keys": keys}
            onnx_file, reason = teacher_onnx_file(ctx, teacher, folder / f"teacher-{index}.onnx")
            entry.update(baseline.describe_file(onnx_file, reason))
            outputs += [onnx_file] if onnx_file is not None and teacher.onnx_path is None else []
            inputs += [teacher.onnx_path] if teacher.onnx_path is not None else []
            members.append(onnx_file)
            entries.append(entry)
        ensemble = self._ensemble(entries, members, folder)
        outputs += [folder / baseline.ENSEMBLE_FILE] if ensemble.get("onnx_bytes") else []
        said = TeachersRecord(tuple(ensemble.pop("member_warnings")))  # read by the bench stage
        metrics = {"teachers": entries, "ensemble": ensemble, "preprocessing": data.preprocessing()}
        if transfer is not None:
            metrics["transfer_set"] = {"rows": int(len(next(iter(transfer.values())))), "recipe": transfer_recipe(ctx)}
        return StageOutput(outputs, metrics, inputs=inputs, record=said)

    def _transfer_set(self, folder: Path, outputs: list) -> dict[str, np.ndarray] | None:
        """distill.transfer_set's rows, made once and kept beside the teachers for the distill stage."""
        from edgekd.core.fileio import atomic_path

        if self.ctx.cfg.distill.transfer_set is None:
            return None
        rows = make_transfer_rows(self.ctx)
        path = folder / TRANSFER_FILE
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, **rows)
        outputs.append(path)
        return rows

    def _ensemble(self, entries: list[dict], members: list, folder: Path) -> dict[str, Any]:
        from edgekd.pipeline.teacher_check import top1_without_each
        from edgekd.tabular import baseline

        ctx, data = self.ctx, self.ctx.dataset
        test = ensemble_probabilities(ctx, cached_logits_from(entries, teacher_cache(ctx), "test"))
        val_logits = cached_logits_from(entries, teacher_cache(ctx), "val")
        val = ensemble_probabilities(ctx, val_logits)
        out = {"top1": ctx.task.score(test, data.test.y), "val_top1": ctx.task.score(val, data.val.y),
               "best_member_top1": max(e["top1"] for e in entries)}
        without = top1_without_each(val_logits, [t.weight for t in ctx.cfg.teachers], ctx.cfg.distill.ensemble,
                                    ctx.task.score, data.val.y) if len(entries) > 1 else None
        out["member_warnings"] = _say_weak_members(entries, out["val_top1"], data.val.y, without)
        return {**out, **baseline.ensemble_file(members, [t.weight for t in ctx.cfg.teachers], folder / baseline.ENSEMBLE_FILE,
                                                data, ctx.cfg.bench)}


def _finite(teacher, logits: np.ndarray, rows: dict[str, np.ndarray]) -> np.ndarray:
    """A table teacher's outputs, or one line naming the columns whose missing values gave it NaN (a model fitted without
    an imputer, an ONNX file that takes no NaN): the cache's own check could only advise data normalisation."""
    bad = ~np.isfinite(np.asarray(logits, dtype=np.float64)).all(axis=1)
    if not bad.any():
        return logits
    missing = [name for name, values in rows.items()
               if values.dtype.kind == "f" and np.isnan(values[bad].astype(np.float64)).any()]
    cause = (f"rows with a missing value in column(s) {', '.join(missing[:6])}: the model takes no missing values; "
             "fill them in the file, or give a model fitted with an imputer" if missing else "check the model and the data")
    raise DataError(f"{teacher.where}.{teacher.kind} '{teacher.name}': outputs NaN or Inf on {int(bad.sum())} of "
                    f"{len(bad)} rows, {cause}")


def _say_weak_members(entries: list[dict], ensemble_val_top1: float, y: np.ndarray,
                      without: list[float] | None = None) -> list[str]:
    """A table ensemble's members judged as pipeline/teacher_check.say_weak_members says (image teachers are too);
    `without`: the ensemble's validation top-1 with each member left out."""
    from edgekd.pipeline.teacher_check import say_weak_members

    return say_weak_members(entries, ensemble_val_top1, y, "validation rows", without)


def cached_logits_from(entries: list[dict], cache, split: str) -> list[np.ndarray]:
    return [np.asarray(cache.load(e["cache_keys"][split]).logits, dtype=np.float32) for e in entries]


def given_teacher_fits(teacher, logits: dict[str, np.ndarray], data) -> None:
    """A fitted file's validation top-1, printed; the run stops when its outputs are not this data's classes in this
    data's order, or when it is not clearly above chance (columns in another form, or another dataset).

    A model whose classes are integer ids (classlabels_int64s, or classes_ 0..k-1) is matched to the data's sorted
    class names by position, and one trained with another coding (Fair and Good swapped) is merely worse, often well
    above chance: the label-order check `edgekd ship` runs on a given model (given_check.check_label_order) finds the
    swap in its confusion matrix. It looks at the training rows too: the file was trained elsewhere, so they judge it
    as fairly as validation does, and a swap of two small classes needs their number to be told from noise."""
    import sys

    from edgekd.core.errors import ModelError
    from edgekd.pipeline.given_check import check_label_order
    from edgekd.pipeline.teacher_check import not_above_chance

    y = data.val.y
    chance = float(np.bincount(y).max() / len(y))
    top1 = float((logits["val"].argmax(1) == y).mean())
    print(f"[teachers] {teacher.where} {teacher.name}: validation top-1 {top1:.1%} (largest class {chance:.1%})", file=sys.stderr)
    where = f"{teacher.where}.{teacher.kind} '{teacher.name}'"
    order = ", ".join(data.classes)
    judged = [split for split in ("train", "val") if split in logits]
    check_label_order(np.concatenate([logits[s].argmax(1) for s in judged]), np.concatenate([getattr(data, s).y for s in judged]),
                      data.classes, where, folders=False, rows=" and ".join(_SPLIT_NAMES[s] for s in judged) + " rows",
                      fix=_order_fix(teacher, data.classes))
    low = not_above_chance(top1, chance, len(y), "validation rows")
    if low:
        raise ModelError(f"{where}: {low}; its outputs must follow this data's class order ({order}) and it must take "
                         "this data's columns")


def _order_fix(teacher, classes: list[str]) -> str:
    """What to do when a given teacher's classes look swapped: a model holding the class names is matched by name, so
    its confusion is another target's or other rows' (a trial was told to fit it on the names it was fitted on)."""
    from edgekd.data.table_schema import category_text

    order = ", ".join(classes)
    known = [category_text(c) for c in getattr(getattr(teacher, "model", None), "classes_", [])]
    if known and all(name in classes for name in known) and not all(name.isdigit() for name in known):
        return (f"its classes ({', '.join(known[:6])}) are matched to this data's by name, so it predicts them from other "
                "rows or another target column: give a model fitted on data.target of this file")
    return (f"its class ids are matched to this data's classes by position (sorted: {order}): {_RELABEL[teacher.kind]}, or "
            "reorder its outputs to that order")


_SPLIT_NAMES = {"train": "training", "val": "validation"}
# How a given file comes to hold the class names, which are matched by name (train/teacher_kinds.py)
_RELABEL = {"onnx": "export it with the class names as its labels (skl2onnx and onnxmltools write them when the model "
                    "was fitted on the names)",
            "skops": "fit it on the target's names (its classes_ are then matched by name)"}


def _teacher(ctx: RunContext, index: int, spec):
    from edgekd.train.teacher_kinds import fit_teacher, load_teacher

    data = ctx.dataset
    if spec.kind in ("onnx", "skops"):
        return load_teacher(spec, index, data.num_classes, ctx.base_dir, data.schema)
    return fit_teacher(spec, index, data.train.x, data.train.y, data.num_classes, ctx.cfg.seed, data.schema, lazy=True)


class TabularDistillStep(TaskStep):
    """Stage 2 (tables): the student's preprocessing fitted on the training split (and converted to ONNX, checked
    against scikit-learn), the network trained on the ensemble's cached outputs (Hinton KD; alpha 0: labels only)."""

    name = "distill"
    sections = ("student", "distill")
    trains = True

    def run(self) -> StageOutput:
        from edgekd.tabular import distill
        from edgekd.train.models import save_checkpoint

        ctx, folder = self.ctx, self.ctx.stage_dir("distill")
        seed = ctx.cfg.seed if ctx.cfg.distill.seed is None else ctx.cfg.distill.seed
        soft = train_soft_targets(ctx) if ctx.cfg.distill.alpha > 0 else None
        trained, metrics = distill.train_student(ctx.dataset, ctx.cfg.student, ctx.cfg.distill, soft, seed,
                                                 transfer=transfer_rows(ctx) if soft is not None else None,
                                                 checkpoint=fresh_progress(ctx, folder / "distill.progress.pt"))
        preprocessing = distill.save_preprocessing(trained.front, ctx.dataset, folder / distill.PREPROCESSING_FILE)
        checkpoint = save_checkpoint(trained.network, folder / "student.pt")  # read back with weights_only=True
        return StageOutput([checkpoint, preprocessing], {**metrics, "seed": seed}, record=StudentRecord())


class TabularExportStep(TaskStep):
    """Stage 3 (tables): the network exported, joined behind the preprocessing graph: raw columns in, logits out,
    checked against PyTorch on validation rows."""

    name = "export"
    sections = ("export", "targets")

    def run(self) -> StageOutput:
        from edgekd.pipeline.given_model import onnx_inputs
        from edgekd.tabular import distill

        ctx = self.ctx
        network_path = ctx.stage_dir("export") / distill.NETWORK_FILE
        parity = distill.export(ctx, network_path, ctx.layout.fp32_onnx)
        cfg = ctx.cfg.export
        if parity["max_abs_error"] > cfg.parity_atol or parity["top1_agreement"] < cfg.min_top1_agreement:
            raise StageError(f"export: the ONNX file disagrees with PyTorch ({parity}); export.parity_atol is {cfg.parity_atol}")
        inputs = onnx_inputs(ctx.layout.fp32_onnx)
        record = ExportRecord(ctx.task.input_spec(ctx.dataset, inputs[0]["name"]), inputs)
        return StageOutput([network_path, ctx.layout.fp32_onnx], {"parity": parity, "opset": cfg.opset}, record=record)


class TabularQuantizeStep(TaskStep):
    """Stage 4 (tables): per target recipe, the network part quantized (QDQ, calibrated on training rows' features),
    joined behind the same float preprocessing graph (one-hot and scaling stay exact)."""

    name = "quantize"
    sections = ("quantize", "targets", "gate.max_drop", "gate.drop_type")

    def run(self) -> StageOutput:
        ctx = self.ctx
        if ctx.cfg.quantize.method == "none":
            return StageOutput([], record=QuantizeRecord("none"))
        from edgekd.data.calibration import load_recipe
        from edgekd.quant.host import recipe_for_host
        from edgekd.runtimes import load_profile
        from edgekd.tabular import distill

        recipe = load_recipe(ctx.cfg.quantize.calibration, ctx.base_dir)
        if recipe.source not in ("train", "val"):
            raise ConfigError(f"quantize.calibration '{recipe.name}': a table model calibrates on train or val rows; use train-256")
        folded_scratch = ctx.stage_dir("quantize") / ".folded-network.onnx"
        source = distill.int8_source(ctx, ctx.stage_dir("export") / distill.NETWORK_FILE, folded_scratch)
        calibration = source.inputs(distill.calibration_features(ctx, recipe))
        outputs, used = [], {}
        for target in ctx.cfg.targets:
            profile = load_profile(target, ctx.base_dir)
            if "int8" not in profile.precisions or not profile.quantization or profile.quantization.name in used:
                continue
            choice = recipe_for_host(profile.quantization, ctx.cfg.quantize.adapt_to_host, profile.name)
            scratch = ctx.stage_dir("quantize") / f".{profile.quantization.name}-network.onnx"
            fallback = _quantize_network(ctx, source, scratch, choice.recipe, profile.quantization.name, calibration)
            path = distill.join_front(ctx, scratch, ctx.layout.int8_onnx(profile.quantization.name), folded=source.folded)
            scratch.unlink(missing_ok=True)
            outputs.append(path)
            used[profile.quantization.name] = {**profile.quantization.model_dump(), **choice.record(), "bytes": path.stat().st_size,
                                               "quantized": "the network (MatMul/Gemm); preprocessing stays float", **fallback}
        folded_scratch.unlink(missing_ok=True)
        made_from = {"recipe": recipe.model_dump(), "rows": int(len(calibration))}
        return StageOutput(outputs, inputs=[ctx.layout.fp32_onnx], record=QuantizeRecord("ptq", used, made_from))


def _quantize_network(ctx: RunContext, source, out: Path, recipe, recipe_name: str, calibration: np.ndarray) -> dict:
    """The network part (`source`: distill.Int8Source) quantized; with quantize.fallback on (the default), the
    accuracy-aware fallback keeps its most sensitive nodes in float until the validation drop is within the int8 budget
    (quant/fallback.py), as for images. The drop is measured on the network's features, which the float preprocessing
    computes exactly."""
    from edgekd.pipeline.selection import int8_budget
    from edgekd.quant.fallback import FallbackBudget, quantize_with_fallback
    from edgekd.runtimes.ptq import quantize_qdq
    from edgekd.tabular import distill

    cfg = ctx.cfg.quantize
    method = cfg.calibrate_method if cfg.calibrate_method not in (None, "auto") else recipe.calibrate_method
    network = source.path
    if not cfg.fallback.enabled:
        quantize_qdq(network, out, recipe, calibration, calibrate_method=method)
        return {"calibrate_method": method, "nodes_in_float": []}
    budget = FallbackBudget(int8_budget(ctx, recipe_name), ctx.cfg.gate.drop_type, cfg.max_fallback_nodes,
                            cfg.sensitivity_samples, cfg.fallback.max_seconds, score=ctx.task.score)
    val = ctx.dataset.val
    report = quantize_with_fallback(network, out, recipe, calibration, source.inputs(distill.front_features(ctx, val.x)), val.y,
                                    budget, method)
    return {"calibrate_method": method, "nodes_in_float": report.nodes_in_float, "fallback": report.to_json()}


# Tables fit or load their teachers, distill from cached outputs, export one graph taking raw columns and quantize its
# network part (the steps above); compile, bench and gate are the generic stages.
TABULAR_STEPS = {name: f"edgekd.tasks.tabular:Tabular{name.capitalize()}Step" for name in ("teachers", "distill", "export", "quantize")}


@dataclass(frozen=True)
class TabularClassification(Classification):
    """data.source csv or parquet: raw columns in, one (batch, 1) input per column named as it, or one per type
    (data.inputs; edgekd/data/table_schema.py), one label per row, top-1."""

    name: str = "tabular-classification"
    fp32_from_onnx: ClassVar[bool] = True

    def input_spec(self, dataset: Any, name: str = "columns", batch: int | str = "batch") -> dict[str, Any]:
        return {"name": name, "shape": [batch, 1], "dtype": "mixed: float32 (numeric) and string (categorical) columns",
                "columns": [c.name for c in dataset.schema.columns]}

    def evaluation_set(self, dataset: Any, samples: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
        test = dataset.test
        n = min(samples, len(test))
        return dataset.model_x({name: array[:n] for name, array in test.x.items()}), test.y[:n]  # data.inputs' layout

    def steps(self, config) -> dict[str, str]:
        return TABULAR_STEPS

    def teacher_outputs(self, ctx, x: dict[str, np.ndarray], samples: int) -> np.ndarray:
        """Teachers of any kind: the ensemble's probabilities from their cached outputs."""
        from edgekd.tasks.tabular_teachers import teacher_reference

        return teacher_reference(ctx, samples)

    def load_dataset(self, config, base_dir, layout=None):
        from edgekd.data.tabular import load_tabular_dataset

        return load_tabular_dataset(config.data, config.seed, base_dir)
