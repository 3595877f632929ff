"""Stage 6: measure every candidate of every target on the test evaluation subset, interleaved.

Writes report.json, report.md and report.html (edgekd.device.report.build) with the same measurement
code `edgekd bench BUNDLE` runs on a device (edgekd.device.measure).
"""
from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from edgekd.core.environment import cpu_info
from edgekd.core.metrics import accuracy_metrics, eval_set_hash
from edgekd.data.config import TABLE_SOURCES
from edgekd.device.bundle import shipped_profile
from edgekd.device.measure import Candidate, artifact_name, measure_rows, runtime_note
from edgekd.device.report.build import build_report, write_reports
from edgekd.device.report.table import noise_warnings, nonfinite_warnings
from edgekd.pipeline.context import RunContext
from edgekd.pipeline.records import CompileRecord, QuantizeRecord, StudentRecord, TeachersRecord, read_record
from edgekd.pipeline.run_models import student_logits as fp32_student_logits
from edgekd.pipeline.run_models import student_outputs
from edgekd.pipeline.selection import unconfirmed_drop
from edgekd.pipeline.stage import Stage, StageOutput
from edgekd.pipeline.target_runtime import profile_named
from edgekd.runtimes.base import Artifact
from edgekd.runtimes.host_fit import host_warnings, timings_transfer

SCRATCH = "student_scratch"  # distill.compare_scratch's reference row (its checkpoint: stages/distill.SCRATCH_CHECKPOINT)
BASELINE_ADVICE = {"tfidf_logreg": "train the teacher longer or on more text, or start from a pretrained model",
                   SCRATCH: "distillation did not help this student: try another distill.temperature / distill.alpha"}
WEAK_TEACHER = ("the teachers are weaker than the student trained on labels alone, so they have little to teach: train "
                "them longer or larger (teachers[].train), or check data.normalize")
# A table's teachers are fitted or given as files, and its columns are not normalised: no epochs or normalize to advise.
WEAK_TABLE_TEACHER = ("the teachers are weaker than the student trained on labels alone, so they have little to teach: "
                      "remove or down-weight the weak ones (teachers[i].weight), or give them other params")
TEACHER_AT_CHANCE = {False: "train the teachers longer (teachers[].train.epochs) or check data.normalize",
                     True: "remove or down-weight the teachers at chance (teachers[i].weight; the teachers stage names "
                           "them), or check data.target and data.features"}
# Text is token ids, never normalised (data.normalize is refused there): what makes text teachers guess is too little
# training, labels that do not match the texts, or texts cut before what tells the classes apart.
TEXT_TEACHER_AT_CHANCE = ("train the teachers longer (teachers[].train.epochs), or check the labels in data.path and "
                          "data.max_length")


def references(ctx: RunContext, x: np.ndarray, y: np.ndarray) -> tuple[dict[str, Any], np.ndarray]:
    student_logits = fp32_student_logits(ctx, x)
    outputs = {"student_fp32": student_logits}
    refs = {"student_fp32": accuracy_metrics(student_logits, y, ctx.task.metric)}
    if ctx.cfg.teachers:  # the teachers as the student learned from them: the task knows how they are run
        outputs["teacher"] = ctx.task.teacher_outputs(ctx, x, len(y))
        refs["teacher"] = accuracy_metrics(outputs["teacher"], y)
        members = ctx.task.teacher_members(ctx, x, len(y))
        if members:  # the row is their ensemble: each member's test top-1 on the same samples beside it
            refs["teacher"]["members"] = [{"name": f"teacher-{i}", "top1": ctx.task.score(z, y)} for i, z in enumerate(members)]
    if _table(ctx) and ctx.task.has_classes and imbalanced(y):
        for name, logits in outputs.items():
            refs[name].update(class_recall(logits, y, ctx.dataset.classes))
    return {**refs, **baselines(ctx, x, y)}, student_logits


def _table(ctx: RunContext) -> bool:
    """A table's run (data.source csv or parquet)."""
    return getattr(getattr(ctx.cfg, "data", None), "source", None) in TABLE_SOURCES


# Classes this skewed (the largest holding more than this share of the test samples) make top-1 say little: always
# answering the largest class scores that share, so a run whose minority is never predicted passes a gate at top-1 =
# chance (a trial: 1% minority). A table's report then carries each reference's per-class recall and balanced accuracy.
IMBALANCED_SHARE = 0.8


def imbalanced(y: np.ndarray) -> bool:
    return len(y) > 0 and float(np.bincount(y).max() / len(y)) > IMBALANCED_SHARE


def class_recall(logits: np.ndarray, y: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """{balanced_accuracy, recall: {class: share of its samples predicted as it}} over the classes present in `y`
    (a class with no test sample has no recall, and is left out of the mean)."""
    predicted = np.asarray(logits).argmax(1)
    recall = {str(name): float((predicted[y == k] == k).mean()) for k, name in enumerate(classes) if (y == k).any()}
    return {"balanced_accuracy": float(np.mean(list(recall.values()))), "recall": recall}


def imbalance_notes(refs: dict[str, Any], y: np.ndarray, classes: list[str]) -> tuple[list[str], list[str]]:
    """(the report's note on skewed classes: each reference's balanced accuracy and its rarest class's recall, warnings:
    a reference that never predicts a class). Empty where the references carry no recall (balanced classes)."""
    recalls = {name: ref for name, ref in refs.items() if isinstance(ref.get("recall"), dict)}
    if not recalls:
        return [], []
    counts = np.bincount(y, minlength=len(classes))
    largest = int(counts.argmax())
    rarest = str(classes[min((k for k in range(len(classes)) if counts[k]), key=lambda k: counts[k])])
    shown = "; ".join(f"{name} {ref['balanced_accuracy']:.1%} ('{rarest}' recall {ref['recall'][rarest]:.1%})"
                      for name, ref in recalls.items())
    note = (f"classes are imbalanced (the largest, '{classes[largest]}', is {counts[largest] / len(y):.1%} of the {len(y)} "
            f"test samples, so top-1 says little): balanced accuracy (the mean of per-class recall): {shown}; each "
            "class's recall is in report.json (references.<name>.recall)")
    missed = [f"{name} never predicts class '{cls}' ({int(counts[classes.index(cls)])} of the {len(y)} test samples), "
              f"though its top-1 is {ref['top1']:.2%}: the gate judges top-1 only; {NEVER_PREDICTED.get(name, '')}"
              for name, ref in recalls.items() for cls, value in ref["recall"].items() if value == 0.0]
    return [note], missed


NEVER_PREDICTED = {"student_fp32": "train the student longer (distill.train.epochs) or larger (student.width)",
                   "teacher": "give the teachers class weights (params: {class_weight: balanced}, where they take it)"}


def baselines(ctx: RunContext, x, y: np.ndarray) -> dict[str, Any]:
    """The cheap baselines of this run, scored on the same samples: the task's (TF-IDF + logistic regression for a
    labelled text run), the student trained from scratch (labels only) with distill.compare_scratch."""
    out = dict(ctx.task.baselines(ctx, y))
    scratch = ctx.stage_dir("distill") / "student-scratch.pt"  # stages/distill.SCRATCH_CHECKPOINT (a torch module)
    if getattr(ctx.cfg.distill, "compare_scratch", False) and scratch.is_file():
        from edgekd.pipeline.run_models import build_student
        from edgekd.train.trainer import predict_logits

        out[SCRATCH] = accuracy_metrics(predict_logits(build_student(ctx, checkpoint=scratch), x), y)
    return out


def shipped_at_chance(rows: list[dict[str, Any]], samples: int, chance: float | None, mode: str = "offline",
                      table: bool = False) -> list[str]:
    """A shipped model no better than guessing while the fp32 student is (a loose gate.max_drop lets int8 ship at chance
    level, a PASS that says nothing): said beside the verdict, naming the row. `mode` none (a model shipped as given):
    its fp32 row at chance lost nothing to quantization, and the advice is about how the data reaches it."""
    from edgekd.pipeline.teacher_check import not_above_chance

    if chance is None:
        return []
    out = []
    for row in rows:
        low = row.get("shipped") and row.get("top1") is not None and not_above_chance(row["top1"], chance, samples, "test samples")
        if low and mode == "none" and row.get("precision") == "fp32":
            out.append(f"{row['artifact']} ships with {low}; a gate that passes it (gate.max_drop) lets a model that "
                       f"guesses ship: {_given_at_chance(table)}")
        elif low:
            out.append(f"{row['artifact']} ships with {low}; a gate that passes it (gate.max_drop) lets a model that "
                       "guesses ship: tighten gate.max_drop, or look at why it lost its accuracy")
    return out


def _given_at_chance(table: bool) -> str:
    """What to check when a model shipped as given (distill.mode none: nothing here trains it) scores at chance."""
    fed = "data.features and data.target" if table else "data.normalize, data.scale and the labels' order against its outputs"
    return (f"the model is shipped as given (distill.mode none), so check that the data reaches it as it was trained "
            f"({fed}), or retrain it where it was trained")


# A classifier's other outputs (an embedding) closer than this to the fp32 model's pass without a word.
OTHER_OUTPUT_COSINE = 0.99


def other_outputs_drift(rows: list[dict[str, Any]]) -> list[str]:
    """A shipped classifier's outputs beside its logits that moved from the fp32 model's: the gate judges top-1 of the
    first output only, so an embedding int8 damaged would pass unseen unless gate.min_cosine (every output) is set."""
    out = []
    for row in rows:
        per_output = list(((row.get("fidelity") or {}).get("outputs") or {}).items()) if row.get("shipped") else []
        for name, numbers in per_output[1:]:
            if numbers["cosine"] < OTHER_OUTPUT_COSINE:
                out.append(f"{row['artifact']}: output '{name}' has cosine {numbers['cosine']:.4f} with the fp32 model's, "
                           f"while the gate judges top-1 of '{per_output[0][0]}' only; if your application reads '{name}', "
                           "set gate.min_cosine (edgekd gate --min-cosine), which judges every output")
    return out


def baseline_warnings(refs: dict[str, Any], samples: int, chance: float | None = None,
                      reference: str = "student_fp32", mode: str = "offline", table: bool = False,
                      text: bool = False, fell: bool = False) -> list[str]:
    """A teacher or a distilled student that a cheap baseline beats beyond chance on `samples` test samples: the run
    passes its gate and is still worse than what the baseline gets for free, which nobody would guess from a PASS.
    With `chance` (the largest class's share of the samples), also a student far below its teachers. `mode` is
    distill.mode: the advice names the keys that train the student in it; `table`: a table's run (data.source csv or
    parquet), whose advice names the keys a table reads; `text`: a text run's (data.source text), likewise; `fell`: the
    student ended clearly under its student.checkpoint (the distill stage said so), and the advice is a lower learning
    rate, not more training."""
    out = _at_chance(refs, samples, chance, mode, table, text, fell)
    for model, name in (("teacher", "tfidf_logreg"), ("student_fp32", "tfidf_logreg"), ("teacher", SCRATCH),
                        ("student_fp32", SCRATCH)):
        if model in refs and name in refs and _beats(refs[name]["top1"], refs[model]["top1"], samples):
            weak = WEAK_TABLE_TEACHER if table else WEAK_TEACHER
            advice = weak if (model, name) == ("teacher", SCRATCH) else BASELINE_ADVICE[name]
            if (model, name) == ("student_fp32", "tfidf_logreg"):  # the student's own keys, not the teacher's
                advice = f"{_train_student_longer(mode)}, or give the student more layers or width (student)"
            out.append(f"{model} top-1 {refs[model]['top1']:.2%} is under the {name} baseline's {refs[name]['top1']:.2%} "
                       f"on the same test samples: {advice}")
    return out + _student_shortfall(refs, samples, chance, reference, mode, fell)


# Most training texts cut at data.max_length: what a model reads may not hold what decides the label.
TRUNCATED_MOST = 0.5


def truncation_note(notes: list[str], share: float, max_length: int) -> list[str]:
    """When the text baseline (which reads whole texts) beats a model and most training texts were cut at
    data.max_length, the likelier cause: a trial's texts put 200 filler words first, both models stayed at chance at
    32 tokens, and the only advice was to train longer."""
    if share < TRUNCATED_MOST or not any("tfidf_logreg baseline" in note for note in notes):
        return []
    return [f"{share:.1%} of the training texts are longer than data.max_length {max_length} tokens and are cut to "
            "their first tokens, while the tfidf_logreg baseline reads them whole: raise data.max_length if what decides "
            "the label comes later in the texts"]


def _train_student_longer(mode: str) -> str:
    """The keys that give the student more training in this distill.mode: data_free reads none of distill.train."""
    if mode == "data_free":
        return "train the student longer (distill.data_free.steps, distill.data_free.student_steps)"
    return "train the student longer (distill.train.epochs)"


# Where training took the student under its own checkpoint, more of the same training would take it further down.
LOWER_LR = "lower distill.train.lr: training took the student under its student.checkpoint's top-1"


def _at_chance(refs: dict[str, Any], samples: int, chance: float | None, mode: str = "offline",
               table: bool = False, text: bool = False, fell: bool = False) -> list[str]:
    """The teachers or the student no better than guessing (pipeline/teacher_check's bar): a gate against either then
    passes whatever ships, so the report says it first. Checkpoint teachers are refused before training; one trained
    in the run (too few epochs, a wrong data.normalize) reaches the gate."""
    from edgekd.pipeline.teacher_check import not_above_chance

    if chance is None:
        return []
    out = []
    data_key = "data.features" if table else "data.max_length" if text else "data.normalize"
    teacher_fix = TEXT_TEACHER_AT_CHANCE if text else TEACHER_AT_CHANCE[table]
    student_fix = (_given_at_chance(table) if mode == "none" else LOWER_LR if fell
                   else f"{_train_student_longer(mode)} or check {data_key}")
    for model, fix in (("teacher", teacher_fix), ("student_fp32", student_fix)):
        problem = not_above_chance(refs[model]["top1"], chance, samples, "test samples") if model in refs else None
        if problem:
            out.append(f"{model}: {problem}; a gate that compares with it passes whatever ships: {fix}")
    return out


# A distilled student is expected to lose some of its teachers' accuracy (it is far smaller), not most of it: one that
# keeps under half of their lead over chance learnt little from them (too few epochs, too narrow, a bad loss mix). A
# gap in points would not do: 10 points is a sound trade from a 95% teacher to a tiny student on ten classes, and all
# there is from a 60% teacher on two classes of 50%. The gate does not see it: its reference is the student's own fp32.
STUDENT_KEEPS = 0.5


def _student_shortfall(refs: dict[str, Any], samples: int, chance: float | None, reference: str,
                       mode: str = "offline", fell: bool = False) -> list[str]:
    if chance is None or "teacher" not in refs or "student_fp32" not in refs:
        return []
    teacher, student = refs["teacher"]["top1"], refs["student_fp32"]["top1"]
    if teacher <= chance or student - chance >= STUDENT_KEEPS * (teacher - chance) or not _beats(teacher, student, samples):
        return []
    # said of the gate only where it does not see the teachers (gate.reference teacher fails such a student itself)
    gate = ("" if reference == "teacher" else f"the gate compares the shipped model with {reference} (gate.reference), not "
            "with the teachers: ")
    # data_free has no alpha (no labels reach the student): its soft loss is set by the temperature alone
    losses = "distill.temperature" if mode == "data_free" else "distill.alpha and distill.temperature"
    advice = LOWER_LR if fell else f"{_train_student_longer(mode)} or larger (student.width), or check {losses}"
    return [f"student_fp32 top-1 {student:.2%} keeps under half of the teachers' lead over chance (teacher {teacher:.2%}, "
            f"chance {chance:.2%}, on the same {samples} test samples); {gate}{advice}"]


def _beats(a: float, b: float, samples: int) -> bool:
    """Top-1 `a` above `b` by more than two standard errors of their difference (unpaired, so conservative for two
    models scored on the same samples): a 2-point gap on 100 samples is chance, 25 points is not."""
    return a - b > 2 * math.sqrt((a * (1 - a) + b * (1 - b)) / max(samples, 1))


def candidates(ctx: RunContext) -> list[Candidate]:
    out = []
    for target, build in read_record(ctx.manifest, CompileRecord).targets.items():
        profile = built_profile(ctx, target, build)
        for candidate in build.candidates:
            artifact = Artifact.from_json(candidate["artifact"], ctx.run_dir / candidate["path"])
            out.append(Candidate(artifact_name(target, candidate["name"]), target, artifact, ctx.cfg.bench.threads or profile.threads,
                                 shipped=candidate["verdict"].startswith("chosen"), verdict=candidate["verdict"],
                                 time_latency=timings_transfer(profile),
                                 latency_note=_latency_note(profile), runtime_note=runtime_note(build.runtime_fallback),
                                 profile_gate=profile.gate.given()))
    return out


def built_profile(ctx: RunContext, target: str, build):
    """The profile the compile stage built `target` with: its own, or its fallback's where the compile record says the
    target's runtime could not convert the model (pipeline/target_runtime.py)."""
    return shipped_profile(profile_named(ctx, target), build.runtime_fallback, ctx.base_dir)


def _latency_note(profile) -> str:
    if timings_transfer(profile):
        return ""
    if profile.latency_measurable_off_device:  # the profile allows it, the architecture does not
        return (f"the {profile.name} profile is for {profile.arch} CPUs and this machine is {cpu_info()['arch']}: its "
                "timings here say nothing about the device; run edgekd bench on the device")
    return (f"the {profile.name} profile says timings off the device mean nothing for it ({profile.arch} device, "
            f"{cpu_info()['arch']} here); run edgekd bench on the device")


def unconfirmed_choices(ctx: RunContext) -> list[str]:
    """Per target: a shipped candidate whose validation drop met the limit without the samples to confirm it."""
    notes = []
    for target, build in read_record(ctx.manifest, CompileRecord).targets.items():
        chosen = next((row for row in build.candidates if row.get("name") == build.chosen), None)
        note = chosen and unconfirmed_drop(ctx.cfg.gate, profile_named(ctx, target), ctx.task.metric, chosen,
                                           chosen.get("val_samples") or len(ctx.dataset.val.y))
        notes += [note] if note else []
    return notes


def host_notes(ctx: RunContext) -> list[str]:
    """Where this machine differs from the targets' devices, what the quantize stage adapted to it, and a fallback
    search that this machine's time budget (quantize.fallback.max_seconds) cut short."""
    notes = []
    for target, build in read_record(ctx.manifest, CompileRecord).targets.items():
        notes += host_warnings(built_profile(ctx, target, build).model_dump())
    for name, recipe in read_record(ctx.manifest, QuantizeRecord).recipes.items():
        if recipe.get("failed"):
            notes.append(f"{name}: no int8 model ({recipe['failed']}); its targets ship a float candidate")
        if recipe.get("host_note") and recipe["host_note"] not in notes:
            notes.append(recipe["host_note"])
        stopped = (recipe.get("fallback") or {}).get("stopped")
        if stopped:
            notes.append(f"{name}: the int8 fallback search stopped early: {stopped}")
    return notes


def sensitivity(ctx: RunContext) -> dict[str, Any]:
    """Per recipe whose fallback search ran: each quantized node's error with it alone in float, and the nodes kept."""
    out = {}
    for name, recipe in read_record(ctx.manifest, QuantizeRecord).recipes.items():
        fallback = recipe.get("fallback") or {}
        if fallback.get("sensitivity"):
            out[name] = {"sensitivity": fallback["sensitivity"], "nodes_in_float": recipe.get("nodes_in_float", []),
                         "max_drop": fallback.get("max_drop")}
    return out


class BenchStage(Stage):
    """Stage 6: every candidate measured the way `edgekd bench` measures a bundle; report.json."""

    name = "bench"
    sections = ("bench",)

    def run(self) -> StageOutput:
        ctx = self.ctx
        x, y = ctx.task.evaluation_set(ctx.dataset, ctx.cfg.bench.eval_samples)
        refs, student_logits = references(ctx, x, y)
        bench_cfg = ctx.cfg.bench
        batch_sizes = (1, bench_cfg.batch_size)
        rows = measure_rows(candidates(ctx), x, y, student_logits, ctx.cfg.bench.latency_spec(), batch_sizes, memory=bench_cfg.memory,
                            metric=ctx.task.metric, reference_outputs=student_outputs(ctx, x))
        report = build_report(ctx.cfg.name, rows, refs, {"samples": len(y), "sha256": eval_set_hash(x, y)},
                              ctx.cfg.gate.model_dump(), ctx.cfg.bench.latency_spec(), batch_sizes, bench_cfg.memory,
                              host_warnings=host_notes(ctx), quantize={"fallback": sensitivity(ctx)},
                              measured=ctx.dataset.measured, task_metric=ctx.task.metric)
        noisy = len(noise_warnings(rows))
        for note in nonfinite_warnings(rows, len(y)):  # in report["warnings"] already (build_report); said now too
            warnings.warn(note, stacklevel=2)
        report["warnings"] += unconfirmed_choices(ctx)  # said by the compile stage too; the report is what people read
        report["warnings"] += read_record(ctx.manifest, TeachersRecord).member_warnings  # a weak member, said at stage 1
        fell = read_record(ctx.manifest, StudentRecord).student_warnings or []  # under its checkpoint, said at stage 2
        report["warnings"] += fell
        report["warnings"] += getattr(ctx.dataset, "data_warnings", [])  # a class the test split lacks, said when loaded
        chance = float(np.bincount(y).max() / len(y)) if ctx.task.has_classes and len(y) else None
        table = _table(ctx)
        skewed, missed = imbalance_notes(refs, y, ctx.dataset.classes) if table else ([], [])
        report["warnings"] += skewed  # in report.md and report.html; the terminal hears of a class never predicted
        notes = (baseline_warnings(refs, len(y), chance, ctx.cfg.gate.reference, ctx.cfg.distill.mode, table,
                                   text=getattr(getattr(ctx.cfg, "data", None), "source", None) == "text", fell=bool(fell))
                 + shipped_at_chance(rows, len(y), chance, ctx.cfg.distill.mode, table))
        notes += truncation_note(notes, getattr(ctx.dataset, "truncated_share", 0.0), getattr(ctx.dataset, "max_length", 0))
        for note in notes + missed + (other_outputs_drift(rows) if ctx.task.has_classes else []):
            report["warnings"].append(note)
            warnings.warn(note, stacklevel=2)
        # The test split is smaller than the user asked: say so, do not round silently. The default unasked (edgekd
        # ship and init write none) is no request: report.json's eval_set says how many samples were measured.
        if len(y) < bench_cfg.eval_samples and "eval_samples" in bench_cfg.model_fields_set:
            short = (f"evaluation set: {len(y)} samples, fewer than bench.eval_samples {bench_cfg.eval_samples}: "
                     f"the test split has only {len(ctx.dataset.test)}")
            report["warnings"].insert(0, short)
            warnings.warn(short, stacklevel=2)
        # Only report.json is this stage's recorded output: the gate stage rewrites report.md and report.html
        # with its verdicts, and that must not make this stage look stale on --resume.
        outputs = write_reports(ctx.layout.run_dir, report)[:1]
        return StageOutput(outputs, {"rows": len(rows), "eval_set_sha256": report["eval_set"]["sha256"],
                                     "warnings": noisy})
