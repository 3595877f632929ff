"""The Python API; the CLI is a thin shell over these functions.

    from edgekd import api
    ctx = api.run("configs/quickstart.yaml")
    verdict = api.gate("runs/quickstart/report.json", max_drop=1.0)
"""
from __future__ import annotations

import re
import warnings
from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from edgekd.core.errors import ArtifactError, ConfigError, EdgeKDError, GateFailed
from edgekd.core.metrics import PERPLEXITY, metric_spec
from edgekd.core.thresholds import THRESHOLD_NAMES, Thresholds, threshold_error
from edgekd.device.config import BENCH_DEFAULTS as _BENCH
from edgekd.device.gate import GateResult, failed_reasons, gate_report
from edgekd.device.lm_bench import Decoding
from edgekd.device.lm_legacy import gate_old_lm_report, lm_report_schema, upgrade_lm_report
from edgekd.device.run_state import refuse_stale
from edgekd.quant.api import Int8Config, quantize  # noqa: F401  (re-exported: edgekd.api.quantize)


def run(config: str | Path | Mapping[str, Any], out: str | Path | None = None, resume: bool = False, force: bool = False,
        only: Sequence[str] | None = None, log=print):
    """Run the pipeline from a YAML file, or from a dict of its contents (validated as the file would be; its relative
    paths are read from the working directory) or the validated config of an earlier run (`ctx.cfg`, taken as the
    keys it was given, as a dict); returns the RunContext (run_dir, manifest, config: the validated config, also as
    `cfg`).

    Like `edgekd run` (exit code 1), a failed gate is an error: raises edgekd.core.errors.GateFailed whose
    message is the verdict line (e.g. `gate: FAIL (1 failed, 2 passed)`) and whose `.context` is the
    RunContext, so the run folder is still at hand. The verdict is only that of a gate stage that ran
    (or was up to date) in this call: with `only` leaving out "gate", nothing is raised, and
    `ctx.gate_verdict()` is None.
    `log` receives the stage lines (`[2/7 distill] done`); None drops them. Notes and warnings the stages write to
    stderr (a given model's measured top-1, a weak teacher) are not stage lines: they reach stderr and RUN/edgekd.log
    whatever `log` is (silence them with warnings filters and contextlib.redirect_stderr).
    """
    from edgekd.pipeline.runner import one_run_per_process, run_from_file

    _one_of_resume_force("run", resume, force)
    config = _config_source(config)
    log = _log_function("run", log)
    with one_run_per_process(out or "runs/<its name>"):
        ctx = run_from_file(config, str(out) if out else None, resume=resume, force=force, only=_stage_list(only), log=log)
    verdict = ctx.gate_verdict()
    if verdict is not None and not verdict["passed"]:
        failure = GateFailed(verdict_line(verdict))
        failure.context = ctx
        raise failure
    return ctx


def ship(model: str | Path, data: str | Path, checkpoint: str | Path | None = None, targets: Sequence[str] | None = None,
         max_drop: float | None = None, out: str | Path | None = None, resume: bool = False, force: bool = False, log=print,
         calibration: str | Path | None = None, labels: bool = True, metric: str | None = None, output: str | None = None,
         color: str | None = None, scale: str | None = None, normalize: str | dict | None = None,
         min_speedup: float | None = None, max_size_kb: float | None = None):
    """Ship a trained model as given (no distillation), like `edgekd ship`: `model` is an .onnx file, or a
    torchvision:NAME / module:function / file.py:function factory with its `checkpoint`; `data` is an image
    folder (labeled by class sub-folders, or unlabeled: judged by fidelity to the model), an .npz file, or
    digits / fashion-mnist; `calibration` an optional folder of unlabeled images for int8 calibration; `labels` False
    ignores the data's class folders or y (judged by fidelity to the model); `metric` a task metric (top1, ctc_accuracy,
    mask_iou, box_f1, speech_f1) for a model that is not a classifier: every output compared with fp32's, scored by it
    (`output`: the one it scores, by name; default the first). `color` (rgb, bgr, gray, gray3: an image folder's
    data.color), `scale` (auto, 255, none: an .npz's data.scale) and `normalize` (dataset, none, imagenet, "MEAN/STD"
    as --normalize takes it, or {"mean": [...], "std": [...]}) set those data keys. `max_drop`, `min_speedup` (over the
    target's fp32 model, which the bundle then carries to be timed beside it) and `max_size_kb` are the gate's limits.
    Writes RUN/edgekd.yaml, then runs it as `run` does (GateFailed when the gate fails)."""
    from edgekd.pipeline.runner import one_run_per_process

    _one_of_resume_force("ship", resume, force)
    log = _log_function("ship", log)
    with one_run_per_process(out or "runs/<its name>"):  # before its edgekd.yaml is written into a folder another run may use
        return _ship(model, data, checkpoint, targets, max_drop, out, resume, force, log, calibration, labels, metric,
                     output, color, scale, normalize, min_speedup, max_size_kb)


def _ship(model, data, checkpoint, targets, max_drop, out, resume, force, log, calibration, labels, metric, output, color,
          scale, normalize, min_speedup, max_size_kb):
    """ship()'s work, under the process's run lock."""
    from edgekd.pipeline.config import validate_config
    from edgekd.pipeline.runner import preflight, prepare_run_dir, refuse_resuming_another_run
    from edgekd.pipeline.ship import CONFIG_NAME, refuse_users_config, ship_config, write_ship_config
    from edgekd.pipeline.ship_options import check_model, check_targets, data_options, given, name_gate_limits, target_list

    targets = target_list(targets)
    check_model(str(model))
    check_targets(targets)
    config = ship_config(str(model), str(data), None if checkpoint is None else str(checkpoint), targets, max_drop,
                         calibration=None if calibration is None else str(calibration), labels=labels, metric=metric,
                         output=output, min_speedup=min_speedup, max_size_kb=max_size_kb)
    config = data_options(config, str(data), color=color, scale=scale, normalize=normalize)
    run_dir = Path(out) if out else Path("runs") / config["name"]
    data_folder = config["data"].get("path") if config["data"].get("source") == "imagefolder" else None
    if data_folder and Path(run_dir).resolve().is_relative_to(Path(data_folder).resolve()):
        raise ConfigError(f"{given('--out', run_dir)}: inside {given('--data', data)}, whose sub-folders are read as classes "
                          f"(the run's own folders among them); give {given('--out')} outside the data folder")
    refuse_users_config(run_dir)
    # before anything is written: a mistyped target leaves no folder, or the run's file as it was
    try:
        preflight(validate_config(config, source="edgekd ship"), run_dir)
    except EdgeKDError as exc:  # named as the user typed it: --targets (targets=), not the file's targets[0]
        raise type(exc)(name_gate_limits(re.sub(r"^targets\[\d+\]", given("--targets"), str(exc)))) from None
    if resume:  # a folder holding another run keeps its files: refused before this ship's edgekd.yaml is written there
        refuse_resuming_another_run(run_dir, config["name"], run_dir / CONFIG_NAME)
    # A ship that stopped at its intake checks (a wrong --normalize) shipped nothing: the same command with the fix the
    # refusal gave starts it again, without --force.
    force = force or (not resume and _stopped_before_shipping(run_dir))
    prepare_run_dir(run_dir, resume, force, name=config["name"])  # refused before its edgekd.yaml is replaced
    path = write_ship_config(config, run_dir)
    return run(path, run_dir, resume=resume, force=force, log=log)


def _stopped_before_shipping(run_dir: Path) -> bool:
    """A run folder whose record shows nothing done beyond the teachers stage (a model shipped as given has none):
    edgekd ship stopped at its intake checks there, and nothing in it is worth keeping."""
    from edgekd.core.fileio import read_json
    from edgekd.pipeline.ship import CONFIG_NAME, SHIP_HEADER

    config = Path(run_dir) / CONFIG_NAME
    try:
        manifest = read_json(Path(run_dir) / "manifest.json")
        ships = config.read_text(encoding="utf-8", errors="replace").startswith(SHIP_HEADER)
    except (ArtifactError, OSError):
        return False
    # Only a run edgekd ship made (its pipeline file, which the record names): an `edgekd run` whose teachers trained
    # for an hour before distillation failed is no ship to redo.
    made_by_ship = ships and Path(str(manifest.get("config_path", ""))).resolve() == config.resolve()
    stages = manifest.get("stages", {})
    done = [name for name, entry in stages.items() if isinstance(entry, dict) and entry.get("status") == "done"]
    return made_by_ship and bool(stages) and set(done) <= {"teachers"} and not (Path(run_dir) / "bundle").exists()


def _config_source(config: Any) -> Any:
    """A pipeline file, a mapping of its contents, or a validated config (ctx.cfg of an earlier run) as the mapping of
    the keys it was given: all of its fields dumped carry the defaults of keys that apply to other data sources
    (data.image_size), which validation then refuses, and the object itself was a raw TypeError from pathlib."""
    from pydantic import BaseModel

    if isinstance(config, BaseModel):
        return config.model_dump(exclude_unset=True)
    if not isinstance(config, (str, PathLike, Mapping)):
        raise ConfigError(f"run(config=<{type(config).__name__}>): expected a pipeline file's path, a dict of its "
                          "contents, or the config of a run (ctx.cfg)")
    return config


def _log_function(function: str, log: Any) -> Any:
    """`log` as the runner calls it: None is silence (it crashed in the first stage with a TypeError and left a half-made
    run folder that the rerun then refused); anything else not callable is refused before anything is written."""
    if log is None:
        return _silent
    if not callable(log):
        raise ConfigError(f"{function}(log={log!r}): expected a function taking one line (print, the default), or None "
                          "for no stage lines (notes and warnings still go to stderr and RUN/edgekd.log)")
    return log


def _silent(_line: str) -> None:
    pass


def _one_of_resume_force(function: str, resume: bool, force: bool) -> None:
    """`edgekd run/ship --resume --force` and the API's resume=True, force=True: refused, as --relative --absolute are."""
    if resume and force:
        raise ConfigError(f"{function}(): resume=True and force=True contradict each other (--resume keeps finished stages, "
                          "--force redoes them); give one of them")


def _stage_list(only: str | Sequence[str] | None) -> list[str] | None:
    """`only` as a list of stage names: a single name given as a string is one stage, not its letters."""
    if only is None:
        return None
    if isinstance(only, str):
        _refuse_unknown_stages(only)
        return [only]
    if not isinstance(only, Sequence) and not isinstance(only, (set, frozenset)) \
            or not all(isinstance(stage, str) for stage in only):
        raise ConfigError(f"run(only={only!r}): expected a stage name or a list of them (--only)")
    _refuse_unknown_stages(only)
    return list(only) or None


def _refuse_unknown_stages(only: str | Sequence[str]) -> None:
    """Said here, naming run()'s argument: the runner's own check speaks of the CLI's --only flag."""
    from edgekd.pipeline.registry import STAGE_NAMES

    unknown = [stage for stage in ([only] if isinstance(only, str) else only) if stage not in STAGE_NAMES]
    if unknown:
        raise ConfigError(f"run(only={only!r}): unknown stage '{unknown[0]}'; stages are {', '.join(STAGE_NAMES)}")


def verdict_line(verdict: dict[str, Any]) -> str:
    """The one-line verdict of a gate.json (older ones carry no summary line)."""
    return verdict.get("summary") or f"gate: {'PASS' if verdict['passed'] else 'FAIL'}"


def bench(path: str | Path, threads: int | None = None, runs: int = _BENCH.runs, min_seconds: float = _BENCH.min_seconds,
          batch_sizes: Sequence[int] | None = None, warmup_runs: int = _BENCH.warmup_runs,
          warmup_seconds: float = _BENCH.warmup_seconds, rounds: int = _BENCH.rounds, memory: bool = _BENCH.memory,
          images: str | Path | None = None, texts: str | Path | None = None, decoding: Decoding | None = None,
          out: str | Path | None = None) -> dict[str, Any]:
    """Benchmark one bundle, or every bundle of a run folder, on this machine; returns a report
    (schema edgekd.report/1, the same as the pipeline's). Needs no torch.
    Defaults are those of `edgekd bench` (batch sizes: those of the bundles' profiles, 1 and 4 for arm64-cpu, 1 and 8
    for x86-cpu). `images`: a folder of raw image files to measure
    on instead of eval.npz, decoded with the manifest's preprocessing (class sub-folders named as its labels give
    top-1; without them, fidelity to the fp32 bundle). `texts`: a .jsonl or .csv of text,label to measure a text
    model's bundle on, tokenized with the bundle's tokenizer.json.
    A language model's bundle (or run folder of them) is measured its own way, in the same report schema
    (task_metric perplexity): perplexity on its held-out blocks, generation speed at batch 1 and the bundle's gate
    (`report["verdict"]["passed"]`: None when no bundle could be gated); prompts from `texts`, one per line, else the
    bundle's held-out blocks. `decoding=Decoding(top_k=None, temperature=1.0, seed=0, new_tokens=None, prompts=None)`
    (`from edgekd.api import Decoding`) holds what `edgekd bench`'s --top-k, --temperature, --seed, --new-tokens and
    --prompts set: greedy unless top_k; new_tokens and prompts None take the bundle's bench settings. Errors name these
    arguments (decoding.new_tokens=70, texts=FILE), where the CLI's name its flags.
    `out`: also write report.json, report.md and report.html there (`--out`; the same folders are refused)."""
    from edgekd.device.bench import bench_bundles
    from edgekd.device.config import check_bench_arguments
    from edgekd.device.latency import LatencySpec
    from edgekd.device.report.build import refuse_replacing_a_runs_reports, refuse_replacing_other_files, write_reports

    if images is not None and texts is not None:  # as `edgekd bench --images --texts` says it
        raise ConfigError("images and texts (--images and --texts): give one of them")
    # the bounds of `edgekd bench`'s flags and of the config's bench section, from the one BenchConfig model
    a = check_bench_arguments(threads=threads, runs=runs, min_seconds=min_seconds, batch_sizes=batch_sizes,
                              warmup_runs=warmup_runs, warmup_seconds=warmup_seconds, rounds=rounds, memory=memory)
    spec = LatencySpec(warmup_runs=a["warmup_runs"], warmup_seconds=a["warmup_seconds"], runs=a["runs"],
                       min_seconds=a["min_seconds"], rounds=a["rounds"])
    if out is not None:  # before minutes of measuring, not after
        refuse_replacing_a_runs_reports(Path(out))
        refuse_replacing_other_files(Path(out))
    report = bench_bundles(Path(path), spec, a["threads"], a["batch_sizes"], a["memory"], None if images is None else Path(images),
                           None if texts is None else Path(texts), decoding)
    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
        verdict = report.get("verdict") or {}
        write_reports(Path(out), report, verdict.get("artifacts"), failed_reasons(verdict.get("checks")))
    return report


def gate(report: str | Path | dict[str, Any], thresholds: Thresholds | None = None,
         baseline: str | Path | dict[str, Any] | None = None,
         junit: str | Path | None = None, summary: str | Path | None = None, **overrides) -> GateResult:
    """Check a report.json (or the report dict bench() returns) against thresholds (the report's own gate section
    unless given).

    overrides: any Thresholds field (reference, max_drop, drop_type, min_speedup, max_size_kb,
    allow_empty); None leaves it as is. The caller's `thresholds` object is never modified.
    A language model's report (task_metric perplexity; or an old lm-report.json, read by device/lm_legacy.py) is gated
    on perplexity instead: the overrides max_increase, min_greedy_agreement (else the limits it was benched under)
    and allow_empty only.
    baseline: another report.json (or report dict) to take the reference accuracy from (refused unless both were
    measured on the same evaluation set).
    junit, summary: write JUnit XML / a Markdown summary of the checks there (`--junit`, `--summary`); a path that is
    the report or the baseline, or both the same, is refused before anything is read.
    Returns the list of checks; its `.passed` and `.summary` are the CLI's verdict (skipped checks are
    not passes, and a gate with no check evaluated fails unless allow_empty).
    """
    from edgekd.core.fileio import refuse_overwriting_inputs
    from edgekd.device.ci_outputs import refuse_replacing_other_files

    in_memory = isinstance(report, dict)  # what bench() returns, gated as it is
    _report_argument("report", report, "gate()")
    _report_argument("baseline", baseline, "gate()")
    baseline_path = None if isinstance(baseline, dict) else baseline
    refuse_overwriting_inputs("gate()", {"junit": junit, "summary": summary},
                              {"report (the report being gated)": None if in_memory else report, "baseline": baseline_path})
    refuse_replacing_other_files(junit, summary)
    check_report_paths({"report": None if in_memory else report, "baseline": baseline_path})
    if in_memory:
        raw, report = report, "the report given to gate() (a dict)"
    else:
        raw = _read_json(report)
        if Path(report).name == "report.json":  # a run folder's own report: still what its run ships?
            refuse_stale(Path(report).parent, "bench", str(report))
    old_lm = lm_report_schema(raw)  # an lm-report.json from before language models' reports were edgekd.report/1
    data = upgrade_lm_report(raw, report) if old_lm else _checked_report(raw, report)
    given_thresholds = thresholds is not None
    thresholds = _effective_thresholds(report, data, thresholds, overrides)
    if baseline is not None and data.get("task_metric") == "perplexity":
        raise ConfigError(f"baseline: a classifier's gate setting; {report} is a language model's report, gated on perplexity "
                          "against its own reference (--max-increase)")
    other = _report_data(baseline, "baseline", "gate()") if baseline is not None else None
    from edgekd.device.bundle import changed_since_benched

    for folder in changed_since_benched(data):
        warnings.warn(f"{report}: bundle {folder} has changed since this report measured it (its model files differ): the "
                      f"verdict is about the model that was benched; bench it again (edgekd bench {folder})", stacklevel=2)
    try:
        if old_lm:  # each row by the limit it was benched under, unless one is given
            checks = gate_old_lm_report(data, thresholds, given=given_thresholds or overrides.get("max_increase") is not None)
        else:
            checks = gate_report(data, thresholds, other)
    except ArtifactError as exc:
        given = (f" (baseline: {_label(baseline, 'baseline', 'gate()')})" if isinstance(baseline, dict)
                 else f" (--baseline {baseline})" if baseline else "")  # a path: as `edgekd gate --baseline` took it
        raise ArtifactError(f"{report}{given}"
                            + f": {exc}") from None
    except (KeyError, TypeError, AttributeError) as exc:  # a report edited by hand or cut short
        raise ArtifactError(f"{report}: malformed report ({type(exc).__name__}: {exc}); regenerate it with edgekd bench") from None
    if junit or summary:
        from edgekd.device.ci_outputs import write_ci_outputs

        write_ci_outputs(checks, str(report), None if junit is None else Path(junit),
                         None if summary is None else Path(summary), step_summary=False)
    return checks


def _report_argument(argument: str, value: Any, caller: str) -> None:
    """A report argument is a report.json path or the dict bench() returns (None: not given). JSON text passed as the
    path reached the file system as a raw OSError ("File name too long"), and another type a raw TypeError from pathlib."""
    if value is None or isinstance(value, dict):
        return
    if not isinstance(value, (str, Path)):
        raise ConfigError(f"{caller}: {argument} must be a report.json path or the dict bench() returns, not "
                          f"{type(value).__name__}")
    if isinstance(value, str) and value.lstrip().startswith(("{", "[")):
        raise ConfigError(f"{caller}: {argument} is JSON text, not a path; give the report.json's path, or the report "
                          "as a dict (json.loads it first)")


def _report_data(report: str | Path | dict[str, Any], argument: str, caller: str) -> dict[str, Any]:
    """A report argument read and checked: a path (refused if it is a folder or a report page), or a dict as it is."""
    _report_argument(argument, report, caller)
    if isinstance(report, dict):
        return _checked_report(report, _label(report, argument, caller))
    check_report_paths({argument: report}, caller)
    return _read_report(report)


def _label(report: Any, argument: str, caller: str) -> str:
    """How messages name a report argument: its path, or the dict given as `argument`."""
    return f"the {argument} given to {caller} (a dict)" if isinstance(report, dict) else str(report)


def check_report_paths(paths: dict[str, str | Path | None], caller: str = "gate()") -> None:
    """The report and baseline paths gate() reads, {argument: path} (None: not given), each refused if it is a folder
    or a report page, naming the caller and the argument as the user wrote them: `edgekd gate` checks its REPORT and
    --baseline here before calling gate(), so a CLI user is not told about gate() and its keywords."""
    for argument, path in paths.items():
        if path is not None:
            _not_a_folder(argument, path, caller)
            _not_a_page(argument, path, caller)


def _not_a_page(argument: str, path: str | Path, caller: str = "gate()") -> None:
    """report.md or report.html given where its report.json belongs: one line naming the file to give."""
    if Path(path).suffix.lower() in (".md", ".html"):
        raise ConfigError(f"{caller}: {argument} {path} is the report for people; give the report.json beside it: "
                          f"{Path(path).with_suffix('.json')}")


def _not_a_folder(argument: str, path: str | Path, caller: str = "gate()") -> None:
    """A run folder given where its report.json belongs: one line naming the file to give."""
    if Path(path).is_dir():
        inside = Path(path) / "report.json"
        fix = f"give its report.json: {inside}" if inside.is_file() else "give a report.json file"
        raise ConfigError(f"{caller}: {argument} {path} is a folder; {fix}")


def _effective_thresholds(report: str | Path, data: dict[str, Any], thresholds: Thresholds | None,
                          overrides: dict[str, Any]) -> Thresholds:
    """The report's gate section (or a copy of `thresholds`) with the overrides applied, validated by the one
    Thresholds model and a bad value blamed on where it came from: the argument, or the report file."""
    unknown = [k for k in overrides if k not in THRESHOLD_NAMES]
    if unknown:
        raise ConfigError(f"gate(): unknown keyword '{unknown[0]}'; valid: {', '.join(THRESHOLD_NAMES)}")
    spec = metric_spec(data.get("task_metric"))  # the thresholds that judge the report's metric (allow_empty: any)
    # reference (student_fp32 or teacher) names what either kind of report is judged against: a language model's too
    alien = [k for k, v in overrides.items() if v is not None and k not in (*spec.limits, "allow_empty", "reference")]
    if alien and spec is PERPLEXITY:
        raise ConfigError(f"{alien[0]}: a classifier's gate setting; {report} is a language model's report, gated on "
                          "perplexity (max_increase, --max-increase)")
    if alien:
        raise ConfigError(f"{alien[0]} (--{alien[0].replace('_', '-')}): gates a language model's report on perplexity; "
                          f"{report} is gated on top-1 (--max-drop)")
    if thresholds is None:
        saved = data.get("gate") if isinstance(data.get("gate"), dict) else {}
        try:
            thresholds = Thresholds.model_validate({k: saved[k] for k in THRESHOLD_NAMES if k in saved})
        except ValidationError as exc:
            raise ArtifactError(f"{report}: gate.{threshold_error(exc).replace(':', '', 1)}; "
                                "regenerate the report or pass the threshold") from None
    elif not isinstance(thresholds, Thresholds):
        raise ConfigError(f"gate(thresholds=...): expected edgekd.core.thresholds.Thresholds, got {type(thresholds).__name__}")
    given = {k: v for k, v in overrides.items() if v is not None}
    try:  # a new model, validated as a whole: the caller's object stays as it was
        return Thresholds.model_validate(thresholds.model_dump() | given)
    except ValidationError as exc:
        raise ConfigError(f"gate threshold {threshold_error(exc)}") from None


def _read_report(path: str | Path) -> dict[str, Any]:
    """A report.json, refused (ArtifactError naming the file and the field) unless its numbers can be real."""
    return _checked_report(_read_json(path), path)


def _read_json(path: str | Path) -> Any:
    from edgekd.core.fileio import read_json

    return read_json(path)


def _checked_report(data: Any, path: str | Path) -> dict[str, Any]:
    from edgekd.device.report.schema import check_report

    return check_report(data, path)


def compare(report_a: str | Path | dict[str, Any], report_b: str | Path | dict[str, Any]) -> dict[str, Any]:
    """The same artifacts in two reports (two machines or two versions) side by side, with ratios; each a report.json
    path or the dict bench() returns."""
    from edgekd.device.report.compare import compare_reports

    a, b = _report_data(report_a, "report_a", "compare()"), _report_data(report_b, "report_b", "compare()")
    report_a, report_b = _label(report_a, "report_a", "compare()"), _label(report_b, "report_b", "compare()")
    metrics = [report.get("task_metric") or "top1" for report in (a, b)]
    if metrics[0] != metrics[1]:
        raise ConfigError(f"{report_a} is judged by {metrics[0]} and {report_b} by {metrics[1]}: reports of two kinds of "
                          "model; compare reports of the same model (two machines or two versions)")
    try:
        return compare_reports(a, b)
    except (KeyError, TypeError, AttributeError) as exc:  # a report edited by hand or cut short
        raise ArtifactError(f"{report_a} or {report_b}: malformed report ({type(exc).__name__}: {exc}); "
                            "regenerate it with edgekd bench") from None


def compile(bundle: str | Path, target: str | None = None) -> dict[str, Any]:
    """(Re)build a bundle's model on this machine (the TensorRT engine on the device, the .ort file)
    and update its manifest; `target` (a profile name or .yaml path) re-derives the build settings."""
    from edgekd.device.bundle import rebuild_bundle
    from edgekd.runtimes import load_profile

    profile = load_profile(target) if target else None
    return rebuild_bundle(Path(bundle), profile)


def targets() -> list:
    """The built-in device profiles."""
    from edgekd.runtimes import list_profiles

    return list_profiles()


def keys(section: str | None = None, task: str | None = None) -> list[str]:
    """Every config key as `key = default  # description` (`edgekd keys`), under `section` when given; task
    "language-model" lists that task's keys."""
    from edgekd.pipeline.config_help import key_lines

    return key_lines(section, task)


def schema(task: str | None = None) -> dict:
    """The JSON Schema of a pipeline file (`edgekd schema`); task "language-model" gives that task's."""
    from edgekd.pipeline.config_help import json_schema

    return json_schema(task)
