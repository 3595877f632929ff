"""Stage 5: per target, build every candidate the profile allows, measure them on the validation
split, and bundle the fastest one that passes the gate (never one slower than fp32)."""
from __future__ import annotations

import shutil
import warnings
from pathlib import Path
from typing import Any, get_args

import numpy as np

from edgekd import __version__
from edgekd.core.environment import cpu_info, library_versions
from edgekd.core.errors import ArtifactError, EdgeKDError, StageError, TargetError, clip_words
from edgekd.core.metrics import accuracy_drop, predict, take_rows
from edgekd.core.progress import progress
from edgekd.core.task_metrics import METRICS, drop_bound
from edgekd.device.bundle import SPEED_REFERENCE, SPEED_REFERENCE_FOLDER, bundle_files, write_bundle
from edgekd.device.gate import stricter
from edgekd.device.latency import measure_interleaved
from edgekd.device.measure import output_fidelity
from edgekd.device.sizes import size_on_disk
from edgekd.pipeline.context import RunContext
from edgekd.pipeline.records import INT8_NAMES, CompileRecord, ExportRecord, QuantizeRecord, StudentRecord, TargetBuild, read_record
from edgekd.pipeline.run_models import student_logits, student_outputs
from edgekd.pipeline.selection import (
    accuracy_limit,
    accuracy_rule,
    all_of,
    choose,
    fidelity_limits_rule,
    plan,
    size_rule,
    speedup_rule,
    unconfirmed_drop,
)
from edgekd.pipeline.stage import Stage, StageOutput
from edgekd.pipeline.target_runtime import run_fallback, run_profile
from edgekd.pipeline.validation_split import confirm_indices, part, split_record
from edgekd.runtimes import get_backend, load_profile
from edgekd.runtimes.base import Artifact
from edgekd.runtimes.host_fit import host_warnings, timings_transfer
from edgekd.runtimes.profiles import Precision

# Every name a candidate folder (05-compile/<target>/<name>) can have: the only folders a rerun removes.
CANDIDATE_NAMES = frozenset(get_args(Precision)) | frozenset(INT8_NAMES)


def candidate_sources(ctx: RunContext, profile) -> list[tuple[str, str, Path]]:
    """(name, precision, ONNX file) for every candidate the profile allows and its backend runs."""
    int8 = dict(int8_files(ctx, profile.quantization.name)) if profile.quantization else {}
    return plan(profile, get_backend(profile.backend).float_precisions, ctx.layout.fp32_onnx, int8)


def int8_files(ctx: RunContext, recipe_name: str) -> list[tuple[str, Path]]:
    quantized = read_record(ctx.manifest, QuantizeRecord)
    if quantized.made_none:
        return []  # int8 files in 04-quantize are an earlier run's (before --force with quantize.method: none)
    if quantized.recipes.get(recipe_name, {}).get("dequantize_nodes") == 0:
        return []  # the quantizer left every node in float (said by the quantize stage): not an int8 model
    # The quantize stage makes one int8 model per recipe; its candidate is named by how it was made.
    main = ctx.layout.int8_onnx(recipe_name)
    return [(quantized.int8_label(recipe_name), main)] if main.is_file() else []


def build_candidates(ctx: RunContext, profile) -> list[tuple[str, Artifact]]:
    backend = get_backend(profile.backend)
    input_spec = read_record(ctx.manifest, ExportRecord).input
    folder = ctx.layout.candidates_dir(profile.name)
    sources = candidate_sources(ctx, profile)
    built = []
    for name, precision, source in progress(sources, desc=f"compile {profile.name}", unit="candidate"):
        try:
            built.append((name, backend.compile(source, precision, profile, folder / name, input_spec=input_spec)))
        except ArtifactError as exc:
            if precision != "int8":  # the model itself does not build for this runtime: nothing to ship
                raise
            # An int8 model this runtime cannot take (OpenVINO on NNCF's Q/DQ inside Silero VAD's If branches) is
            # no reason to ship nothing: the target's float candidates still compete, and the reason is said.
            warnings.warn(f"compile: {profile.name}: its int8 model ({name}) does not build for {profile.backend} "
                          f"({clip_words(exc, 200)}); its float candidates compete without it", stacklevel=2)
    return built


def selection_rule(ctx: RunContext, profile):
    """The rule this target's candidates must pass: the accuracy limit (pipeline.selection.accuracy_limit, the same
    limit the quantize stage's int8 budget uses), the fidelity limits, and the size and speed-up limits the gate will
    apply to the shipped artifact (the pipeline's, or the profile's own where stricter: device.gate.stricter)."""
    limit = accuracy_limit(ctx.cfg.gate, profile, ctx.task.metric)
    limits = stricter(ctx.cfg.gate, profile.gate.given())

    def source(key: str) -> str:
        return f"target {profile.name}'s gate" if getattr(limits, key) != getattr(ctx.cfg.gate, key) else "gate"
    return all_of(accuracy_rule(limit.max_drop, source=limit.source), fidelity_limits_rule(ctx.cfg.gate),
                  size_rule(limits.max_size_kb, source("max_size_kb")), speedup_rule(limits.min_speedup, source("min_speedup")))


def judged_split(ctx: RunContext, profile) -> tuple[Any, bool]:
    """The validation samples a target's candidates are judged on, and whether they are the part held back from the
    int8 search: those when a search chose the target's int8 model (pipeline/validation_split.py), else all."""
    val = model_split(ctx.dataset, ctx.dataset.val)
    held_back = confirm_indices(ctx)
    recipe = profile.quantization.name if profile.quantization else None
    if held_back is None or recipe is None or not read_record(ctx.manifest, QuantizeRecord).searched(recipe):
        return val, False
    return part(val, held_back), True


def evaluate(ctx: RunContext, profile, candidates: list[tuple[str, Artifact]], val, reference: np.ndarray,
             reference_outputs: dict[str, np.ndarray] | None = None) -> list[dict[str, Any]]:
    """Accuracy on `val` (judged_split), agreement with the fp32 student there (`reference` logits; a fidelity task's
    every output, `reference_outputs`) and, where meaningful here, latency of each candidate."""
    backend = get_backend(profile.backend)
    metric = METRICS.get(ctx.task.metric)
    reference_parts = metric.parts(reference, val.y) if metric else None
    rows, runners = [], {}
    for name, artifact in progress(candidates, desc=f"{profile.name} validation accuracy", unit="candidate"):
        row: dict[str, Any] = {"name": name, "precision": artifact.precision, "artifact": artifact.to_json(),
                               "bytes": size_on_disk(artifact),
                               "path": str(artifact.root.relative_to(ctx.run_dir)),
                               "measured": backend.available() and not artifact.rebuild_on_device}
        if not row["measured"] and artifact.precision == "int8":  # the quantize stage's score of the same Q/DQ file
            row["proxy_val_drop"] = _quantize_stage_drop(ctx, profile)
        if row["measured"]:
            session = backend.session(artifact, ctx.cfg.bench.threads or profile.threads)
            logits = predict(session.run, val.x)
            row["val_top1"], row["val_samples"] = ctx.task.score(logits, val.y), len(val.y)
            row["val_drop"] = accuracy_drop(ctx.task.score(reference, val.y), row["val_top1"], ctx.cfg.gate.drop_type, len(val.y))
            if metric:
                row["val_drop_bound"] = drop_bound(metric, reference_parts, metric.parts(logits, val.y), ctx.cfg.gate.drop_type)
            agreement = output_fidelity(session, val.x, logits, reference, reference_outputs, ctx.task.metric == "top1")
            row["val_cosine"], row["val_sqnr_db"] = agreement["cosine"], agreement["sqnr_db"]
            if "top1_agreement" in agreement:  # a classifier's logits
                row["val_agreement"] = agreement["top1_agreement"]
            if timings_transfer(profile):  # timed on a fresh session, as device/measure.measure_rows
                session = None
                runners[name] = backend.session(artifact, ctx.cfg.bench.threads or profile.threads).run
        rows.append(row)
    if runners:
        batch = take_rows(val.x, slice(0, 1))  # one sample of every input (text models take two)
        stats = measure_interleaved(runners, batch, ctx.cfg.bench.latency_spec(), desc=f"{profile.name} candidates")
        for row in rows:
            if row["name"] in stats:
                row["p50_ms"], row["round_p50_ms"] = stats[row["name"]].p50_ms, stats[row["name"]].round_p50_ms
    return rows


def _say_judged_on(ctx: RunContext, profile, rows: list[dict[str, Any]], samples: int, held_back: bool) -> None:
    """Per measured int8 row, the validation samples it is judged on and what the quantize stage measured on its own
    (search) samples, for the reason an accuracy rule gives (selection.accuracy_rule). A model the search did not
    choose among others is judged on the whole split, of which the search saw only a part; it can pass there and
    miss here, and "accuracy drop 0.93 > max_drop 0.3" read as if the quantize stage had not checked it."""
    made = read_record(ctx.manifest, QuantizeRecord).recipes.get(profile.quantization.name if profile.quantization else None, {})
    fallback = made.get("fallback") or {}
    split = split_record(ctx)
    measured = (f"; the quantize stage measured {fallback['val_drop']:.2f} on its {split['search_samples']} search samples"
                if split and isinstance(fallback.get("val_drop"), (int, float)) else "")
    where = (f"the {samples} held-back validation samples the int8 search did not see" if held_back
             else f"all {samples} validation samples")
    for row in rows:
        if row["precision"] == "int8" and row.get("measured"):
            row["judged_on"] = where + measured


def _quantize_stage_drop(ctx: RunContext, profile) -> float | None:
    """The validation drop the quantize stage measured, with onnxruntime, for the target's int8 recipe (its fallback
    search's record): what is known of an int8 candidate this machine cannot run (a TensorRT engine). None: unknown."""
    recipe = profile.quantization.name if profile.quantization else None
    made = read_record(ctx.manifest, QuantizeRecord).recipes.get(recipe, {})
    drop = made.get("over_budget_drop") if "over_budget" in made else (made.get("fallback") or {}).get("val_drop")
    if "over_budget" in made and not isinstance(drop, (int, float)):
        return float("inf")  # over the budget, by an amount not recorded (a run folder from before it was)
    return float(drop) if isinstance(drop, (int, float)) else None


def remove_stale_candidates(stage_dir: Path, built: dict[str, set[str]]) -> list[Path]:
    """Remove candidate folders an earlier run of this stage left behind (a target or precision since dropped, a
    PTQ model that became int8-fallback, a --force rerun): only this run's candidates are in the manifest, and a
    stale folder beside them misleads. Called once every target is built, so a failed rerun removes nothing; only
    folders named like a candidate are removed (CANDIDATE_NAMES), anything else in the stage folder stays."""
    removed = []
    for target_dir in sorted(p for p in stage_dir.iterdir() if p.is_dir()):
        keep = built.get(target_dir.name, set())
        for folder in sorted(p for p in target_dir.iterdir() if p.is_dir() and p.name in CANDIDATE_NAMES - keep):
            shutil.rmtree(folder)
            removed.append(folder)
        if target_dir.name not in built and not any(target_dir.iterdir()):
            target_dir.rmdir()
    return removed


def model_split(dataset, split):
    """A table's split in its model's input layout (data.inputs: per column or per type); other data as it is."""
    as_model_takes = getattr(dataset, "model_x", None)
    return type(split)(as_model_takes(split.x), split.y) if as_model_takes else split


def _output_spec(ctx: RunContext, reference: np.ndarray) -> dict[str, Any]:
    """The model's output as the manifest records it: a classifier's logits, or a fidelity task's output and metric,
    under the name the ONNX file gives it (a given model's scored output is its first: pipeline/onnx_intake.py), which
    a device app reads it by."""
    from edgekd.pipeline.onnx_intake import output_names

    return {**ctx.task.output_spec(ctx.dataset, reference), "name": output_names(ctx.layout.fp32_onnx)[0]}


def _bundle_info(ctx: RunContext, profile, rows: list[dict[str, Any]], best: int, reference: np.ndarray) -> dict[str, Any]:
    data, row = ctx.dataset, rows[best]
    quant, exported = read_record(ctx.manifest, QuantizeRecord), read_record(ctx.manifest, ExportRecord)
    recipe = quant.recipes.get(profile.quantization.name) if row["precision"] == "int8" else None
    return {"target": profile.name, "profile": profile.model_dump(mode="json"), "edgekd_version": __version__,
            # The thresholds the pipeline's gate stage applies, so `edgekd bench` on the device writes a report
            # that `edgekd gate` judges by the same limits and both verdicts agree.
            "gate": ctx.cfg.gate.model_dump(mode="json"),
            "built_on": cpu_info()["model"], "input": exported.input,
            # Every input of the ONNX file as it is: names, dtypes, shapes and dynamic axes.
            "inputs": exported.inputs,
            "output": _output_spec(ctx, reference),
            # What eval.npz's y is scored by (core/task_metrics.py), so edgekd bench on the device scores the same way.
            "task": ctx.task.name, "task_metric": ctx.task.metric,
            "preprocessing": data.preprocessing(), "labels": list(data.classes),
            # Without labels, eval.npz's y is the fp32 model's top-1 and every top-1 measured on it is fidelity.
            "measured": data.measured,
            "quantization": {"recipe": recipe, "variant": row["name"], "calibration": quant.calibration}
            if recipe else None,
            "runtime_options": row["artifact"]["runtime_options"], "library_versions": library_versions(),
            "build_machine_metrics": {k: row.get(k) for k in ("val_top1", "val_drop", "val_drop_bound", "val_cosine",
                                                               "val_sqnr_db", "p50_ms", "val_samples")},
            "selection": [{k: r.get(k) for k in ("name", "precision", "val_top1", "val_drop", "val_drop_bound", "val_agreement",
                                                 "val_cosine", "val_sqnr_db", "p50_ms", "round_p50_ms", "verdict")}
                          for r in rows],
            "rebuild_on_device": row["artifact"]["rebuild_on_device"], "dataset_fingerprint": data.fingerprint,
            **_given_model_notes(ctx)}


def _given_model_notes(ctx: RunContext) -> dict[str, Any]:
    """What became of an ONNX file shipped as given: its opset upgrade (onnx.version_converter, checked on the data)
    and its own external-data files (sha256 as the user has them); nothing for a model made by the run."""
    notes = read_record(ctx.manifest, StudentRecord).given_onnx
    return {"given_onnx": notes} if notes is not None else {}


def _speed_reference(ctx: RunContext, profile, candidates: list[tuple[str, Artifact]], best: int,
                     info: dict[str, Any]) -> dict[str, Path]:
    """The fp32 candidate's files, carried in the bundle when the gate asks a speed-up over fp32 (min_speedup, the
    pipeline's or the target profile's) of a shipped model that is not fp32: a speed-up is only shown by timing both on
    the same device, and a bundle otherwise holds the shipped model alone. Its manifest entry goes into `info`.
    Not for a model built on the device (a TensorRT engine): the fp32 one would need building there too."""
    shipped = candidates[best][1]
    fp32 = next((artifact for name, artifact in candidates if name == "fp32"), None)
    if stricter(ctx.cfg.gate, profile.gate.given()).min_speedup is None or shipped.precision == "fp32" or fp32 is None \
            or fp32.rebuild_on_device:
        return {}
    built = get_backend(fp32.backend).built_files
    files = [name for name in fp32.files if name not in built]
    info[SPEED_REFERENCE] = {**fp32.to_json(), "files": files, "folder": SPEED_REFERENCE_FOLDER}
    return {f"{SPEED_REFERENCE_FOLDER}/{name}": fp32.root / name for name in files}


def _preprocessing_files(ctx: RunContext) -> dict[str, Path]:
    """Files the device needs to feed the model, which travel in every bundle: a text model's tokenizer.json."""
    text = ctx.dataset.preprocessing().get("text")
    return {text["tokenizer"]: ctx.stage_dir("teachers") / text["tokenizer"]} if text else {}


class CompileStage(Stage):
    """Stage 5: per target, every candidate built and measured, the fastest passing one bundled. Depends on the
    whole gate section: the bundles carry it."""

    name = "compile"
    sections = ("targets", "gate")

    @classmethod
    def check(cls, config, base_dir) -> None:
        """Every target profile loads, and its runtime is here where building needs it."""
        named: dict[str, int] = {}  # profile name -> the target that has it: each ships as bundle/<name>
        for index, name in enumerate(config.targets):
            try:
                profile = load_profile(name, base_dir)
            except EdgeKDError as exc:
                raise type(exc)(f"targets[{index}]: {exc}") from None
            if profile.name in named:
                raise TargetError(f"targets[{index}] '{name}': its profile is named '{profile.name}', as targets"
                                  f"[{named[profile.name]}] is; each target ships as bundle/<name>, so one would replace "
                                  "the other: give the profile file its own name: key")
            named[profile.name] = index
            if config.quantize.method == "none" and set(profile.precisions) == {"int8"}:  # said before training, not after
                raise TargetError(f"targets[{index}] '{name}': its profile builds int8 only (precisions: [int8]) and "
                                  "quantize.method is none; use quantize.method: ptq, or add fp32 to its precisions")
            backend = get_backend(profile.backend)
            if backend.build_needs_runtime and not backend.available():
                raise TargetError(f"targets[{index}] '{name}': cannot be built on this machine: {backend.unavailable_reason()}; "
                                  "or remove the target")

    def run(self) -> StageOutput:
        ctx = self.ctx
        val_x = model_split(ctx.dataset, ctx.dataset.val).x
        val_logits = student_logits(ctx, val_x)
        eval_x, eval_y = ctx.task.evaluation_set(ctx.dataset, ctx.cfg.bench.eval_samples)
        reference_logits = student_logits(ctx, eval_x)
        val_outputs, eval_outputs = student_outputs(ctx, val_x), student_outputs(ctx, eval_x)
        targets, outputs, built = {}, [], {}
        for name in ctx.cfg.targets:
            profile, fallback = run_profile(ctx, name), run_fallback(ctx, name)
            for note in host_warnings(profile.model_dump()):  # said before the timings it puts in doubt
                warnings.warn(note, stacklevel=2)
            candidates = build_candidates(ctx, profile)
            built[profile.name] = {candidate for candidate, _ in candidates}
            if not candidates:
                raise StageError(f"compile: target '{profile.name}' has no candidate to build from precisions "
                                 f"{profile.precisions}; run the quantize stage (quantize.method: ptq) for int8")
            judged, held_back = judged_split(ctx, profile)
            if held_back:  # the fp32 reference on the same held-back samples
                rows = evaluate(ctx, profile, candidates, judged, student_logits(ctx, judged.x), student_outputs(ctx, judged.x))
            else:
                rows = evaluate(ctx, profile, candidates, judged, val_logits, val_outputs)
            _say_judged_on(ctx, profile, rows, len(judged.y), held_back)
            best = choose(rows, selection_rule(ctx, profile))
            if unconfirmed := unconfirmed_drop(ctx.cfg.gate, profile, ctx.task.metric, rows[best], len(judged.y)):
                warnings.warn(f"compile: {unconfirmed}", stacklevel=2)
            info = {**_bundle_info(ctx, profile, rows, best, reference_logits), "judged_on_held_back": held_back}
            if fallback is not None:  # why this target ships another runtime than its profile's
                info["runtime_fallback"] = fallback.to_json()
            reference_files = _speed_reference(ctx, profile, candidates, best, info)
            bundle = write_bundle(ctx.layout.bundle_dir(profile.name), candidates[best][1], eval_x, eval_y, reference_logits, info,
                                  extra_files={**_preprocessing_files(ctx), **reference_files}, reference_outputs=eval_outputs)
            outputs += bundle_files(bundle) + [c.root / name for _, c in candidates for name in c.files if (c.root / name).is_file()]
            targets[profile.name] = TargetBuild(profile.backend, rows[best]["name"], rows[best]["precision"], rows,
                                                str(bundle.relative_to(ctx.run_dir)),
                                                fallback.to_json() if fallback is not None else None)
        removed = remove_stale_candidates(ctx.stage_dir("compile"), built)
        return StageOutput(outputs, {"val_reference_top1": ctx.task.score(val_logits, ctx.dataset.val.y),
                                     "removed_stale": [str(path.relative_to(ctx.run_dir)) for path in removed]},
                           record=CompileRecord(targets))
