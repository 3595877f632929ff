"""Stages 1-4 for text classifiers (data.source text): a BERT-style teacher trained on the corpus (or the user's own,
a save_pretrained folder), the DistilBERT recipe's student distilled from it (or the user's classifier shipped as
given), ONNX export with input_ids and attention_mask (batch and sequence dynamic), and int8 per target. Compile,
bench and gate are the image stages, unchanged: they read what these write.

    teachers: [{arch: bert, kwargs: {hidden: 128, layers: 6, heads: 4, intermediate: 512}, train: {...}}]
    teachers: [{arch: bert, checkpoint: my-bert/}]   # a save_pretrained folder with its tokenizer.json: not trained
    teachers: [{arch: bert, ...}, {sklearn: [{TfidfVectorizer: {}}, {LogisticRegression: {}}]}]  # and a pipeline fitted
                                          # on the raw training texts; weights picked on validation
    student: {arch: bert-half}            # the teacher's width, every other teacher layer (DistilBERT)
    student: {arch: bert, kwargs: {...}}  # a narrower student, fresh, with a learned projection for the cosine
    student: {arch: bert, checkpoint: my-bert/}      # without teachers and distill: shipped as given (distill.mode none)

Weights are saved with safetensors (nothing is unpickled when read back) beside the models' configs as JSON.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from edgekd.core.errors import ConfigError, StageError
from edgekd.core.fileio import atomic_path, resolve_path, write_text_atomic
from edgekd.core.metrics import within_limit
from edgekd.core.progress import progress
from edgekd.pipeline.context import RunContext
from edgekd.pipeline.records import ExportRecord, QuantizeRecord, StudentRecord
from edgekd.pipeline.stage import StageOutput, TaskStep
from edgekd.pipeline.task import Classification
from edgekd.tasks.text_data import TOKENIZER_FILE, given_model, given_model_key
from edgekd.tasks.text_models import load_model, save_model

TEACHER_ARCH, STUDENT_ARCHS = "bert", ("bert-half", "bert")
FITTED_FILE = "fitted-teachers.npz"  # the scikit-learn text teachers' outputs on the training texts (teachers stage)
SIZE_KEYS = ("hidden", "layers", "heads", "intermediate")
CALIBRATION_BATCH = 32
EVALUATION_SEED = 0  # the evaluation set's draw from a larger test split: fixed, so every run measures the same texts


def _size(kwargs: dict, where: str):
    from edgekd.text.models import Size

    unknown = sorted(set(kwargs) - set(SIZE_KEYS))
    if unknown:
        raise ConfigError(f"{where}.kwargs: unknown key '{unknown[0]}'; a text model takes {', '.join(SIZE_KEYS)}")
    return Size(**kwargs)


def check_text_config(config, base_dir: Path) -> None:
    """What the text path supports, refused with the key before anything loads."""
    if config.distill.mode == "none":
        _check_shipped_as_given(config)
    else:
        _check_distillation(config)
    if config.quantize.method == "qat":
        raise ConfigError("quantize.method: qat is for images; data.source text quantizes after training (ptq) or not at all (none)")
    path = resolve_path(Path(config.data.path).expanduser(), base_dir)
    if not path.is_file():
        raise ConfigError(f"data.path '{config.data.path}': no such file ({path}); give a .jsonl or .csv of text,label")
    key = given_model_key(config)
    if key:
        given_model(config, base_dir)  # config.json, model_type, safetensors, tokenizer.json: a second, no weights
        if config.data.vocab_size:
            raise ConfigError(f"data.vocab_size: the tokenizer comes with {key} (its tokenizer.json); remove data.vocab_size")


def _check_distillation(config) -> None:
    """One BERT teacher (trained by the run, or a save_pretrained folder), optionally beside scikit-learn pipelines
    reading the raw texts (fitted on the training split), and a student distilled from them."""
    from edgekd.text.fitted_teachers import check_text_teacher

    if not config.teachers or config.teachers[0].arch != TEACHER_ARCH:
        raise ConfigError(f"teachers: data.source text distills from a teacher with arch '{TEACHER_ARCH}' first (teachers[0]), "
                          "optionally followed by scikit-learn pipelines reading the raw texts; give that")
    for index, spec in enumerate(config.teachers[1:], start=1):
        check_text_teacher(spec, index)
    teacher = config.teachers[0]
    if teacher.checkpoint and teacher.kwargs:
        raise ConfigError("teachers[0].kwargs: the teacher's sizes come from teachers[0].checkpoint (its config.json); remove kwargs")
    if config.student.arch not in STUDENT_ARCHS or config.student.checkpoint:
        raise ConfigError(f"student.arch: data.source text takes {' or '.join(STUDENT_ARCHS)} (without checkpoint); "
                          f"got {config.student.arch!r}; to ship a save_pretrained folder as given, remove teachers and distill")
    if config.student.arch == "bert-half" and config.student.kwargs:
        raise ConfigError("student.kwargs: bert-half takes the teacher's sizes; remove kwargs, or use arch bert for a narrower student")
    if config.distill.mode != "offline" or config.distill.hints or config.distill.augment:
        raise ConfigError("distill: data.source text distills offline, without hints or augment, or ships the student as "
                          "given (distill.mode none); remove them")
    if not teacher.checkpoint:
        _size(teacher.kwargs, "teachers[0]")
    if config.student.arch == "bert":
        _size(config.student.kwargs, "student")


def _check_shipped_as_given(config) -> None:
    """distill.mode none: the user's own classifier, a save_pretrained folder, is the model to ship."""
    if config.ships_onnx:
        raise ConfigError("student.onnx: data.source text ships a save_pretrained folder as given; give "
                          "student: {arch: bert, checkpoint: FOLDER} instead")
    if config.student.arch != TEACHER_ARCH or config.student.kwargs:
        raise ConfigError(f"student.arch: data.source text ships a save_pretrained folder as given with "
                          f"student: {{arch: {TEACHER_ARCH}, checkpoint: FOLDER}} (no kwargs); got {config.student.arch!r}")


def ensemble_train_logits(ctx: RunContext, bert_logits: np.ndarray) -> np.ndarray:
    """The ensemble's outputs on the training texts: BERT's beside the fitted teachers' the teachers stage kept, mixed
    with the weights it picked on validation."""
    from edgekd.text.fitted_teachers import mix

    path = ctx.stage_dir("teachers") / FITTED_FILE
    if not path.is_file():
        raise StageError(f"distill: {path} is gone; rerun with --force --only teachers (or without --resume)")
    with np.load(path, allow_pickle=False) as saved:
        members = [saved[f"teacher-{index}"] for index in range(1, len(ctx.cfg.teachers))]
    return mix([bert_logits, *members], ctx.manifest.metrics("teachers")["ensemble"]["weights"])


def _recipe(train_cfg, seed: int):
    from edgekd.text.training import Recipe

    return Recipe(epochs=train_cfg.epochs, batch_size=train_cfg.batch_size, lr=train_cfg.lr,
                  weight_decay=train_cfg.weight_decay, seed=seed)


def _encoded(split):
    from edgekd.text.training import Encoded

    return Encoded(split.x["input_ids"], split.x["attention_mask"], split.y)


class TextTeachersStep(TaskStep):
    """Stage 1 (text): the tokenizer (the WordPiece one learned on the training split, or the given model's), and the
    BERT-style teacher: trained on the corpus, or a save_pretrained folder taken as it is and measured."""

    name = "teachers"
    sections = ("seed", "data", "teachers", "distill.out_of_fold")  # the last keys nothing while unset
    trains = True

    @classmethod
    def check(cls, config, base_dir) -> None:
        check_text_config(config, base_dir)

    def check_inputs(self) -> list[dict]:
        """The corpus loads, splits and tokenizes (with a given model: its tokenizer and labels match the corpus)
        before the run folder is touched (ctx.dataset)."""
        self.ctx.dataset  # noqa: B018  (loaded for its checks; the runner keeps it)
        return []

    def run(self) -> StageOutput:
        ctx, data = self.ctx, self.ctx.dataset
        folder = ctx.stage_dir("teachers")
        tokenizer_path = folder / TOKENIZER_FILE  # where the compile stage takes every bundle's tokenizer from
        write_text_atomic(tokenizer_path, data.tokenizer_json)
        shared = {"preprocessing": data.preprocessing(), "vocabulary": data.tokenizer().get_vocab_size(),
                  **({"vocabulary_note": data.vocabulary_note} if data.vocabulary_note else {})}
        if not ctx.cfg.teachers:  # a classifier shipped as given: its tokenizer is all the bundles need from here
            return StageOutput([tokenizer_path], {"teachers": [], "ensemble": None, **shared})
        from edgekd.text import models, training

        teacher, measured = self._given() if ctx.cfg.teachers[0].checkpoint else self._trained()
        read = measured.pop("read", [])  # a given folder's files, recorded with their sha256
        entry = {"name": "teacher-0", "kind": "torch", "arch": TEACHER_ARCH, "params": models.parameters(teacher),
                 "top1": measured["val_top1"], "test_top1": training.top1(teacher, _encoded(data.test)), **measured}
        outputs = [tokenizer_path, *save_model(teacher, folder, "teacher-0")]
        ensemble = {"params": entry["params"], "top1": entry["top1"]}
        teachers = [entry]
        if len(ctx.cfg.teachers) > 1:
            fitted, ensemble = self._fitted(teacher)
            teachers += fitted
            outputs.append(folder / FITTED_FILE)
        return StageOutput(outputs, {"teachers": teachers, "ensemble": ensemble, **shared}, inputs=read)

    def _fitted(self, teacher) -> tuple[list[dict], dict]:
        """The scikit-learn text teachers (fitted on the training texts, outputs cached), scored on validation and test;
        the ensemble's weights picked on validation; their training outputs kept for the distill stage."""
        from edgekd.pipeline.run_models import teacher_cache
        from edgekd.text import fitted_teachers as ft
        from edgekd.text import training

        ctx, data = self.ctx, self.ctx.dataset
        texts = {"train": data.train.texts, "val": data.val.texts, "test": data.test.texts}
        bert = {split: training.outputs(teacher, _encoded(getattr(data, split)))["logits"] for split in ("val", "test")}
        entries, members = [], []
        for index, spec in enumerate(ctx.cfg.teachers[1:], start=1):
            out = ft.fitted_outputs(spec, index, (data.train.texts, data.train.y), texts, data.num_classes, ctx.cfg.seed,
                                    teacher_cache(ctx), data.fingerprint, ctx.cfg.distill.out_of_fold)
            val_top1 = ft.top1(out.logits["val"], data.val.y)
            _clearly_above_chance(f"teachers[{index}] ({out.name})", val_top1, data.val.y, "check its steps and parameters")
            entries.append({"index": index, "name": f"teacher-{index}", "kind": "sklearn", "estimator": out.name,
                            "top1": val_top1, "test_top1": ft.top1(out.logits["test"], data.test.y), "cache_hit": out.cached,
                            "cache_keys": out.keys})
            members.append(out.logits)
        weights, how = ft.pick_weights([bert["val"], *(m["val"] for m in members)], data.val.y,
                                       [t.weight for t in ctx.cfg.teachers])
        mixed = {split: ft.mix([bert[split], *(m[split] for m in members)], weights) for split in ("val", "test")}
        with atomic_path(ctx.stage_dir("teachers") / FITTED_FILE) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, **{f"teacher-{e['index']}": m["train"] for e, m in zip(entries, members)})
        ensemble = {"top1": ft.top1(mixed["val"], data.val.y), "test_top1": ft.top1(mixed["test"], data.test.y),
                    "weights": weights, "weights_from": how, "mode": "log of the weighted mean of probabilities"}
        return entries, ensemble

    def _trained(self):
        import torch

        from edgekd.text import models, training

        ctx, data, spec = self.ctx, self.ctx.dataset, self.ctx.cfg.teachers[0]
        torch.manual_seed(ctx.cfg.seed)
        teacher = models.classifier(models.config(data.tokenizer().get_vocab_size(), data.num_classes,
                                                  _size(spec.kwargs, "teachers[0]"), max_length=data.max_length))
        fitted = training.fit(teacher, _encoded(data.train), _encoded(data.val), _recipe(spec.train, ctx.cfg.seed),
                              log=lambda m: None, name="teacher")  # the progress bar says where it is
        return teacher, fitted

    def _given(self):
        """The save_pretrained folder's classifier, not trained: saved below like a trained one, so the distill stage
        and the bench stage's reference read it the same way."""
        from edgekd.text import pretrained, training

        given = given_model(self.ctx.cfg, self.ctx.base_dir)
        teacher = pretrained.load_classifier(given)
        val_top1 = training.top1(teacher, _encoded(self.ctx.dataset.val))
        _clearly_above_chance("teachers[0]", val_top1, self.ctx.dataset.val.y, f"{given.folder}: an untrained model, or "
                              "one trained with another tokenizer or labels, teaches nothing")
        return teacher, {"val_top1": val_top1, "given": str(given.folder), "read": pretrained.files(given)}


def _clearly_above_chance(where: str, val_top1: float, labels: np.ndarray, why: str) -> None:
    """A teacher the run did not train, judged before anything learns from it (pipeline/teacher_check's bar: the
    largest class's share plus its standard errors, as checkpoint teachers of images are)."""
    from edgekd.pipeline.teacher_check import not_above_chance

    counts = np.bincount(np.asarray(labels))
    problem = not_above_chance(val_top1, float(counts.max() / counts.sum()), int(counts.sum()), "validation samples")
    if problem:
        raise StageError(f"{where}: {problem}; {why}")


class TextGivenTokenizerStep(TextTeachersStep):
    """Stage 1 (text) with distill.mode none: no teacher, only the shipped folder's tokenizer.json kept for the
    bundles. Its key covers `student` too: that folder brings the tokenizer, and --resume must see it change."""

    sections = ("seed", "data", "teachers", "student")


class TextAsGivenStep(TaskStep):
    """Stage 2 (text) with distill.mode none: the user's classifier, a save_pretrained folder, taken as it is,
    measured, and saved where the export stage reads the student."""

    name = "distill"
    sections = ("student", "distill")

    def run(self) -> StageOutput:
        from edgekd.text import models, pretrained, training

        ctx, data = self.ctx, self.ctx.dataset
        given = given_model(ctx.cfg, ctx.base_dir)
        student = pretrained.load_classifier(given)
        metrics = {"mode": "none", "source": "save_pretrained", "given": str(given.folder), "params": models.parameters(student),
                   "val_top1": training.top1(student, _encoded(data.val)), "test_top1": training.top1(student, _encoded(data.test))}
        return StageOutput(save_model(student, ctx.stage_dir("distill"), "student"), metrics, inputs=pretrained.files(given),
                           record=StudentRecord())


class TextDistillStep(TaskStep):
    """Stage 2 (text): the student, from the teacher's layers (bert-half) or fresh and narrower (bert), trained on the
    teacher's cached logits and last [CLS] state with the labels (alpha 0: labels only)."""

    name = "distill"
    sections = ("student", "distill")
    trains = True

    @classmethod
    def check(cls, config, base_dir) -> None:
        if config.distill.compare_scratch:  # text runs get a cheaper reference row: tfidf_logreg
            raise ConfigError("distill.compare_scratch: image runs only; a text run's report has the tfidf_logreg baseline "
                              "row instead: remove distill.compare_scratch")

    def run(self) -> StageOutput:
        from edgekd.text import models, training

        ctx, data, cfg = self.ctx, self.ctx.dataset, self.ctx.cfg.distill
        seed = ctx.cfg.seed if cfg.seed is None else cfg.seed
        teacher = load_model(ctx.stage_dir("teachers"), "teacher-0")
        if ctx.cfg.student.arch == "bert-half":
            student, _layers = models.half_depth_student(teacher)
            projection = None
        else:
            student, projection = models.narrow_student(teacher.config, _size(ctx.cfg.student.kwargs, "student"))
        train = _encoded(data.train)
        kd = training.KD(cfg.temperature, cfg.alpha) if cfg.alpha > 0 else None
        cached = training.outputs(teacher, train, hidden=True) if kd else None
        if cached is not None and len(ctx.cfg.teachers) > 1:  # soft targets from the ensemble, the [CLS] state from BERT
            cached["logits"] = ensemble_train_logits(ctx, cached["logits"])
        fitted = training.fit(student, train, _encoded(data.val), _recipe(cfg.train, seed), kd=kd, teacher=cached,
                              projection=projection, log=lambda m: None, name="student")
        metrics = {"params": models.parameters(student), "seed": seed, "arch": ctx.cfg.student.arch,
                   "loss": {"kind": "distilbert" if kd else "cross_entropy", "temperature": cfg.temperature, "alpha": cfg.alpha,
                            "cosine": "last [CLS] state" if kd else None,
                            "soft_targets": (f"ensemble of {len(ctx.cfg.teachers)} teachers" if len(ctx.cfg.teachers) > 1
                                             else "teacher-0") if kd else None},
                   "test_top1": training.top1(student, _encoded(data.test)), **fitted}
        return StageOutput(save_model(student, ctx.stage_dir("distill"), "student"), metrics, record=StudentRecord())


class TextExportStep(TaskStep):
    """Stage 3 (text): the student as ONNX (input_ids, attention_mask; batch and sequence dynamic), checked against
    PyTorch on validation texts. When every target runs onnxruntime, the graph is fused into onnxruntime's BERT
    operators (edgekd.text.export.fuse_for_onnxruntime): faster, and what lets int8 quantize attention."""

    name = "export"
    sections = ("export", "targets")

    def run(self) -> StageOutput:
        from edgekd.pipeline.given_model import onnx_inputs
        from edgekd.text import export

        ctx, data, cfg = self.ctx, self.ctx.dataset, self.ctx.cfg.export
        student = load_model(ctx.stage_dir("distill"), "student")
        path = export.export(student, ctx.layout.fp32_onnx, max_length=data.max_length, opset=cfg.opset,
                             fuse=_all_onnxruntime(ctx))
        sample = {name: array[:cfg.parity_samples] for name, array in data.val.x.items()}
        parity = export.compare(student, path, sample)
        if parity["max_abs_error"] > cfg.parity_atol or parity["top1_agreement"] < cfg.min_top1_agreement:
            raise StageError(f"export: the ONNX file disagrees with PyTorch ({parity}); export.parity_atol is {cfg.parity_atol}")
        record = ExportRecord(ctx.task.input_spec(data, "input_ids"), onnx_inputs(path))
        metrics = {"parity": parity, "opset": cfg.opset, "fused_operators": export.fused_operators(path)}
        return StageOutput([path], metrics, inputs=[ctx.stage_dir("distill") / "student.safetensors"], record=record)


def _all_onnxruntime(ctx: RunContext) -> bool:
    """Whether every target runs onnxruntime, the only runtime with the fused BERT operators."""
    from edgekd.runtimes import load_profile
    from edgekd.runtimes.registry import runtime_of

    return all(runtime_of(load_profile(target, ctx.base_dir).backend) == "onnxruntime" for target in ctx.cfg.targets)


class TextQuantizeStep(TaskStep):
    """Stage 4 (text): per target recipe, static int8 (QDQ, calibrated on training texts) and, for onnxruntime,
    dynamic int8 too; the faster of those within the accuracy limit on the validation split is the recipe's model."""

    name = "quantize"
    sections = ("quantize", "targets", "gate.max_drop", "gate.drop_type")

    @classmethod
    def check(cls, config, base_dir) -> None:
        """quantize.calibration resolved before the teacher trains, as the image stage's check does (this step replaces
        that stage, and its check with it): a recipe that does not exist, or draws from another split, is refused now."""
        if config.quantize.method == "none":
            return
        from edgekd.data.calibration import load_recipe

        _text_calibration_source(load_recipe(config.quantize.calibration, base_dir))

    def run(self) -> StageOutput:
        ctx = self.ctx
        if ctx.cfg.quantize.method == "none":
            return StageOutput([], record=QuantizeRecord("none"))
        from edgekd.data.calibration import load_recipe
        from edgekd.runtimes import load_profile

        recipe = load_recipe(ctx.cfg.quantize.calibration, ctx.base_dir)
        calibration = self._calibration(recipe)
        outputs, used = [], {}
        for target in ctx.cfg.targets:
            profile = load_profile(target, ctx.base_dir)
            if "int8" not in profile.precisions or not profile.quantization or profile.quantization.name in used:
                continue
            path, info = self._quantize(profile, calibration)
            outputs.append(path)
            used[profile.quantization.name] = {**info, "bytes": path.stat().st_size}
        made_from = {"recipe": recipe.model_dump(), "texts": sum(len(b["input_ids"]) for b in calibration),
                     "batch": CALIBRATION_BATCH}
        return StageOutput(outputs, inputs=[ctx.layout.fp32_onnx], record=QuantizeRecord("ptq", used, made_from))

    def _calibration(self, recipe) -> list[dict[str, np.ndarray]]:
        """quantize.calibration's count of texts (drawn at random with its seed) from its split, in batches."""
        _text_calibration_source(recipe)
        split = getattr(self.ctx.dataset, recipe.source)
        rows = np.random.default_rng(recipe.seed).permutation(len(split))[:recipe.count]
        return [{name: array[rows[i:i + CALIBRATION_BATCH]] for name, array in split.x.items()}
                for i in range(0, len(rows), CALIBRATION_BATCH)]

    def _quantize(self, profile, calibration) -> tuple[Path, dict[str, Any]]:
        import shutil

        from edgekd.pipeline.selection import accuracy_limit
        from edgekd.quant.host import recipe_for_host
        from edgekd.runtimes.registry import runtime_of
        from edgekd.text import export

        ctx = self.ctx
        choice = recipe_for_host(profile.quantization, ctx.cfg.quantize.adapt_to_host, profile.name)
        scratch = ctx.stage_dir("quantize") / f".{profile.quantization.name}"
        scratch.mkdir(exist_ok=True)
        made = {"static": _static_int8(ctx.layout.fp32_onnx, scratch / "static.onnx", calibration, choice.recipe)}
        if runtime_of(profile.backend) == "onnxruntime":  # dynamic int8 (MatMulInteger) is onnxruntime's own
            made["dynamic"] = export.quantize_dynamic_int8(ctx.layout.fp32_onnx, scratch / "dynamic.onnx", choice.recipe.reduce_range)
        rows = _measure(ctx, made, profile.threads)
        limit = accuracy_limit(ctx.cfg.gate, profile).max_drop
        kind, passing = _pick_int8(rows, limit)
        path = ctx.layout.int8_onnx(profile.quantization.name)
        with atomic_path(path) as tmp:
            shutil.copyfile(made[kind], tmp)
        shutil.rmtree(scratch)
        return path, {**profile.quantization.model_dump(), **choice.record(), "text_int8": kind, "measured": rows,
                      "why": f"{kind}: " + ("the faster within the accuracy limit on validation" if passing
                                            else "none within the accuracy limit on validation: the smaller drop")}


def _text_calibration_source(recipe) -> None:
    if recipe.source not in ("train", "val"):
        raise ConfigError(f"quantize.calibration '{recipe.name}': a text model calibrates on train or val texts, "
                          f"not {recipe.source}; use train-256")


def _pick_int8(rows: dict[str, dict[str, float]], limit: float) -> tuple[str, bool]:
    """The int8 file to keep, and whether any is within the limit: the fastest of those whose validation drop is
    within it (up to float rounding, as every accuracy budget), else the one with the smaller drop."""
    passing = [k for k in rows if within_limit(rows[k]["val_drop"], limit)]
    if passing:
        return min(passing, key=lambda k: rows[k]["p50_ms"]), True
    return min(rows, key=lambda k: rows[k]["val_drop"]), False


def _static_int8(fp32_onnx: Path, out: Path, calibration: list[dict[str, np.ndarray]], recipe) -> Path:
    """Static int8 by the target recipe's tool: NNCF (OpenVINO's quantizer, its transformer scheme: Q/DQ where
    OpenVINO's CPU plugin fuses them into int8 kernels) or onnxruntime's quantize_static (QDQ around the MatMuls)."""
    from edgekd.text import export

    if recipe.tool == "nncf":
        from edgekd.runtimes.nncf_ptq import quantize_nncf

        joined = {name: np.concatenate([batch[name] for batch in calibration]) for name in export.INPUT_NAMES}
        return quantize_nncf(fp32_onnx, out, recipe, joined, transformer=True)
    return export.quantize_static_int8(fp32_onnx, out, calibration, recipe.reduce_range, recipe.per_channel)


def _measure(ctx: RunContext, files: dict[str, Path], threads: int | None) -> dict[str, dict[str, float]]:
    """Validation top-1 drop against the fp32 ONNX model, and p50 latency at batch 1 (interleaved), of each file."""
    from edgekd.core.metrics import accuracy_drop, predict, take_rows
    from edgekd.device.latency import measure_interleaved
    from edgekd.runtimes.ort import OrtSession

    val = ctx.dataset.val
    reference = predict(OrtSession(ctx.layout.fp32_onnx, threads).run, val.x)
    top1 = ctx.task.score(reference, val.y)
    sessions = {name: OrtSession(path, threads) for name, path in files.items()}
    rows = {}
    for name, session in progress(list(sessions.items()), desc="int8 validation accuracy", unit="model"):
        score = ctx.task.score(predict(session.run, val.x), val.y)
        rows[name] = {"val_top1": score, "val_drop": accuracy_drop(top1, score, ctx.cfg.gate.drop_type, len(val.y))}
    stats = measure_interleaved({n: s.run for n, s in sessions.items()}, take_rows(val.x, slice(0, 1)),
                                ctx.cfg.bench.latency_spec(), desc="int8 latency")
    for name in rows:
        rows[name]["p50_ms"] = stats[name].p50_ms
    return rows


# Text classifiers train a BERT teacher and a DistilBERT-recipe student, export token ids and mask in and quantize their
# own way (the steps above); with distill.mode none the user's save_pretrained folder is shipped as given, its
# tokenizer kept by stage 1. Compile, bench and gate are the generic stages.
TEXT_STEPS = {name: f"edgekd.tasks.text:Text{name.capitalize()}Step" for name in ("teachers", "distill", "export", "quantize")}
TEXT_AS_GIVEN_STEPS = {**TEXT_STEPS, "teachers": "edgekd.tasks.text:TextGivenTokenizerStep",
                       "distill": "edgekd.tasks.text:TextAsGivenStep"}


@dataclass(frozen=True)
class TextClassification(Classification):
    """data.source text: token ids and their mask in (edgekd.tasks.text_data), one label per text, top-1."""

    name: str = "text-classification"
    fp32_from_onnx: ClassVar[bool] = True

    def input_spec(self, dataset: Any, name: str = "input_ids", batch: int | str = "batch") -> dict[str, Any]:
        return {"name": "input_ids", "shape": [batch, "sequence"], "dtype": "int64"}

    def evaluation_set(self, dataset: Any, samples: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
        rows = self.evaluation_rows(dataset, samples)
        return {name: array[rows] for name, array in dataset.test.x.items()}, dataset.test.y[rows]

    def evaluation_rows(self, dataset: Any, samples: int) -> np.ndarray:
        """The test rows bench and gate measure on: all of them, or when the test split is larger than `samples`, a
        stratified draw with a fixed seed (a file sorted by label would otherwise be judged on its first classes only;
        the fixed seed keeps the set, and its sha256, the same run to run). Ascending, in the split's order."""
        from edgekd.lang.corpus import stratified_rows

        return stratified_rows(dataset.test.y.tolist(), samples, EVALUATION_SEED)

    def steps(self, config) -> dict[str, str]:
        return TEXT_AS_GIVEN_STEPS if config.distill.mode == "none" else TEXT_STEPS

    def teacher_outputs(self, ctx, x: dict[str, np.ndarray], samples: int) -> np.ndarray:
        from edgekd.tasks.text_models import teacher_logits

        return teacher_logits(ctx, x)

    def baselines(self, ctx, y: np.ndarray) -> dict[str, dict[str, float]]:
        """TF-IDF + logistic regression, for a labelled run: what word counts alone get on the same test texts."""
        from edgekd.core.metrics import ACCURACY, accuracy_metrics

        if ctx.dataset.measured != ACCURACY:
            return {}
        from edgekd.text.baseline import NAME, tfidf_logreg_logits, why_no_baseline

        data = ctx.dataset
        why = why_no_baseline(data.train.texts)
        if why:  # the run's models are still measured; only the reference row is missing
            warnings.warn(f"report: the {NAME} baseline is left out: {why}", stacklevel=1)
            return {}
        rows = self.evaluation_rows(data, ctx.cfg.bench.eval_samples)  # the texts of the evaluation set's rows
        texts = [data.test.texts[row] for row in rows]
        return {NAME: accuracy_metrics(tfidf_logreg_logits(data.train.texts, data.train.y, texts, data.num_classes, ctx.cfg.seed), y)}

    def load_dataset(self, config, base_dir, layout=None):
        from edgekd.tasks.text_data import given_model, load_text_dataset

        # A given model (save_pretrained folder) brings its tokenizer and label order: the data must be encoded with them.
        return load_text_dataset(config.data, config.seed, base_dir, given_model(config, base_dir))
