"""Runs the stages in order, skipping fresh ones on --resume, recording each in the manifest."""
from __future__ import annotations

import os
import shlex
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

from edgekd.core.errors import ConfigError, EdgeKDError, StageError
from edgekd.core.fileio import read_json, remove_stray_temporaries, writable_folder, write_text_atomic
from edgekd.core.peak_memory import measure_peak
from edgekd.core.run_log import LOG_NAME, run_log, write_line
from edgekd.device.latency import CV_WARNING
from edgekd.pipeline.config import PipelineConfig, load_config, validate_config
from edgekd.pipeline.context import RunContext
from edgekd.pipeline.manifest import RunManifest
from edgekd.pipeline.registry import STAGE_NAMES, stage_class
from edgekd.pipeline.stale_outputs import mark_gate_outputs_stale
from edgekd.pipeline.task import task_name

Log = Callable[[str], None]


def distributed_barrier() -> None:
    from edgekd.train import distributed

    distributed.barrier()


def prepare_run_dir(run_dir: Path, resume: bool, force: bool, config_path: Optional[Path] = None,
                    name: Optional[str] = None) -> None:
    refuse_existing_run(run_dir, resume, force, config_path, name)
    writable_folder(run_dir, "--out")


# What may sit in a run folder before its manifest: the file `edgekd ship` writes there first, the lock and write
# probe, and the stage folders the input checks fill before the first stage (a run that stopped there left them).
# What a run writes at the top of its folder beside RUN_FOLDER_OWN's (pipeline/layout.py): a user's file of one of these
# names in a folder given to --out is never replaced, --force or not.
RUN_WRITES = ("manifest.json", "report.json", "report.md", "report.html", "gate.json", "gate-junit.xml", "gate-summary.md",
              "bundle")
# The log is only appended to: a run stopped before its manifest left one, which is no reason to refuse the folder.
RUN_FOLDER_OWN = ("edgekd.yaml", ".edgekd", LOG_NAME, *(f"{number:02d}-{stage}" for number, stage in enumerate(STAGE_NAMES, 1)))


def refuse_existing_run(run_dir: Path, resume: bool, force: bool, config_path: Optional[Path] = None,
                        name: Optional[str] = None) -> None:
    """An existing run needs --resume or --force; so does a folder holding other files (a run writes bundle/,
    report.json and stage folders beside them, and a later `edgekd bench` of the folder would read what it finds).
    `name`: this run's; a folder holding a run of another name is not offered --resume, which would refuse it."""
    run_dir = Path(run_dir)
    if (run_dir / "manifest.json").exists():
        if not (resume or force):
            held = read_json(run_dir / "manifest.json").get("name") if name else None
            if isinstance(held, str) and held != name:
                raise ConfigError(f"{run_dir}: holds run '{held}', not '{name}'; give --out (out=) a new folder, or pass "
                                  "--force (force=True) to replace that run")
            raise ConfigError(f"{run_dir}: a run already exists here; pass --resume (resume=True in Python) to continue it, "
                              "--force (force=True) to redo its stages, or --out (out=) for a new folder")
        return
    foreign = sorted(p.name for p in run_dir.iterdir() if not p.name.startswith(RUN_FOLDER_OWN)
                     and (config_path is None or p.resolve() != Path(config_path).resolve())) if run_dir.is_dir() else []
    clashing = [name for name in foreign if name in RUN_WRITES]
    if clashing:  # --force writes beside the user's files, never over them
        raise ConfigError(f"{run_dir}: holds no edgekd run but has {', '.join(clashing)}, which a run writes and would "
                          "replace; give a new or empty folder with --out (or move them)")
    if foreign and not force:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise ConfigError(f"{run_dir}: not empty and holds no edgekd run ({shown}); give a new or empty folder with --out, "
                          "or pass --force to write the run beside those files")


def bundle_names(targets: Sequence[str], base_dir: Path) -> list[str]:
    """The bundle/<name> folders this run's targets ship as: a profile's own name (a file given by path ships under
    its name: ./boards/pi.yaml as bundle/pi-zero), and the target as written."""
    from edgekd.core.errors import EdgeKDError
    from edgekd.runtimes import load_profile

    names = list(targets)
    for target in targets:
        try:
            names.append(load_profile(target, base_dir).name)
        except EdgeKDError:
            continue  # the compile stage's check names the target at fault
    return list(dict.fromkeys(names))


def prune_stale_bundles(run_dir: Path, targets: Sequence[str], log: Log) -> None:
    """bundle/<target> folders of targets this run no longer has (an earlier config of the folder, rerun with other
    targets): removed before the compile stage writes the run's own, so that bundle/ and `edgekd bench RUN` hold only
    this run's models. Only edgekd bundles (a manifest.json) are touched."""
    import shutil

    root = Path(run_dir) / "bundle"
    stale = sorted(d for d in root.iterdir() if d.is_dir() and d.name not in targets and (d / "manifest.json").is_file()) \
        if root.is_dir() else []
    for folder in stale:
        shutil.rmtree(folder)
        log(f"bundle/{folder.name}: removed, {folder.name} is not among this run's targets ({', '.join(targets)}); "
            "it was built by an earlier config of this folder")


def prune_unmade_outputs(run_dir: Path, stage_dir: Path, previous: Sequence[str], made: Sequence[Path], log: Log) -> None:
    """Files in `stage_dir` that the stage's earlier record listed as its outputs (`previous`, paths relative to the
    run folder) and that it did not make this time (`made`): removed once the stage has run. A --force rerun of a
    folder that held another model's run (or other targets) left the old model's int8 beside the new ones, a file no
    stage records that `ls` and a later look at the folder take for this run's. Only the stage's own folder is
    touched (bundle/ is prune_stale_bundles'; the reports at the top are rewritten by their stages), and only files an
    edgekd record names; folders left empty go too."""
    run_dir, stage_dir = Path(run_dir).resolve(), Path(stage_dir).resolve()
    kept = {Path(path).resolve() for path in made}
    for relative in previous:
        path = (run_dir / relative).resolve()
        if path in kept or stage_dir not in path.parents or not path.is_file():
            continue
        path.unlink()
        log(f"{relative}: removed, made by an earlier run of this folder and not by this one")
        for folder in path.parents:  # its folders, up to the stage's own, where nothing else is left in them
            if folder == stage_dir or stage_dir not in folder.parents or any(folder.iterdir()):
                break
            folder.rmdir()


def recorded_outputs(entry: Optional[dict]) -> list[str]:
    """The output paths (relative to the run folder) a stage's manifest entry lists; none for a failed or new stage."""
    return [output["path"] for output in (entry or {}).get("outputs", []) if isinstance(output, dict) and output.get("path")]


def preflight(config: PipelineConfig, base_dir: Path) -> None:
    """Check what later stages will need before the first one trains for an hour: each stage's check()
    (every target profile and its runtime, the calibration recipe, the data path), latest stage first."""
    for name in reversed(STAGE_NAMES):
        stage_class(config, name).check_for(config, base_dir)


# A run swaps sys.stderr for its log's tee (core/run_log.py), records warnings with warnings.catch_warnings, and exports
# with torch.onnx.export and torch's RNG: all process-wide. Two runs in two threads of one process broke each other (one
# failed at export, the other got no edgekd.log), so a second one is refused at once. Re-entrant: api.ship calls
# api.run, which calls run_pipeline, in the same thread.
_ONE_RUN = threading.RLock()
_running: list[str] = []  # the folders of the run holding it (api.run, then run_pipeline), for the refusal to name


@contextmanager
def one_run_per_process(run_dir: Path | str) -> Iterator[None]:
    """Hold the process's run lock while the block runs; another thread's run already holding it: refused in one line."""
    if not _ONE_RUN.acquire(blocking=False):
        running = _running[-1] if _running else "another folder"  # the innermost: run_pipeline's own folder
        raise ConfigError(f"another edgekd run is in progress in this process ({running}); runs share process-wide state "
                          "(stderr, warnings, torch): run them one after another, or in separate processes")
    _running.append(str(run_dir))
    try:
        yield
    finally:
        _running.pop()
        _ONE_RUN.release()


def run_pipeline(config: PipelineConfig, config_path: Path, run_dir: Path, resume: bool = False, force: bool = False,
                 only: Optional[Sequence[str]] = None, log: Log = print) -> RunContext:
    with one_run_per_process(run_dir):
        return _run_pipeline(config, config_path, run_dir, resume, force, only, log)


def _run_pipeline(config: PipelineConfig, config_path: Path, run_dir: Path, resume: bool, force: bool,
                  only: Optional[Sequence[str]], log: Log) -> RunContext:
    unknown = [s for s in (only or []) if s not in STAGE_NAMES]
    if unknown:
        raise ConfigError(f"--only {unknown[0]}: unknown stage; stages are {', '.join(STAGE_NAMES)}")
    held: list[warnings.WarningMessage] = []
    distributed = _process_group(config)  # before the checks: their failure is logged by rank 0 alone
    continuing = False  # whether the folder holds this very run, which a failure may then be logged into
    try:  # the checks' warnings (a constant column, an ID column, online teachers) are said once the run log is open,
        with warnings.catch_warnings(record=True) as held:  # so it keeps them
            preflight(config, Path(config_path).parent)
            distributed.init_from_env(config.device)
            refuse_existing_run(Path(run_dir), resume, force, config_path, config.name)  # the one-second refusal first
            _refuse_another_task(Path(run_dir), config, config_path, resume and not force)
            if resume and not force:
                refuse_resuming_another_run(Path(run_dir), config.name, Path(config_path))
            _refuse_only_without_a_run(Path(run_dir), only)
            _refuse_only_with_stages_missing(Path(run_dir), only)
            continuing = (resume and not force) or bool(only)  # not another run's folder: the refusals above passed
            checked = _check_inputs_first(config, Path(config_path), Path(run_dir), resume and not force, only)
    except BaseException:
        if distributed.is_main() and continuing and _holds_a_run(Path(run_dir)):
            # The attempt and its error go into the run's log, as a stage's would: a --resume stopped by data that
            # changed since the teachers stage otherwise left no trace in the log of the run it was continuing. Not
            # a refused attempt's (another run's folder, a --resume without --resume): that folder is left alone.
            with run_log(Path(run_dir), _command(config_path, run_dir, resume, force, only)):
                _say(held)
                raise
        _say(held)
        raise
    with distributed.main_first():
        if distributed.is_main():
            prepare_run_dir(run_dir, resume, force, config_path)
    with exclusive(run_dir, distributed.is_main()), run_log(Path(run_dir), _command(config_path, run_dir, resume, force, only),
                                                            enabled=distributed.is_main()):
        _say(held)
        if distributed.is_main():  # under the folder's lock: no writer of this run is mid-write
            for place in (Path(run_dir) / name for name in (*RUN_FOLDER_OWN[3:], "bundle")):  # the run's own folders only
                if place.is_dir():
                    remove_stray_temporaries(place)
        manifest = RunManifest.open(run_dir, config.digest(), str(config_path), task_name(config), config.name)
        manifest.read_only = not distributed.is_main()  # under torchrun rank 0 alone writes the record
        if distributed.is_main():
            manifest.save()  # from now on the folder holds a run: a rerun needs --resume or --force, even after a crash
        ctx = RunContext(config, Path(config_path), Path(run_dir), manifest, resume=resume and not force)
        if checked is not None:  # the dataset is loaded once, and the checks are not repeated by the stage
            ctx.__dict__["dataset"], ctx.checked_teachers = checked
        planned = [stage for stage in STAGE_NAMES if not only or stage in only]
        try:
            for number, stage in enumerate(planned, 1):
                if not distributed.is_main() and not stage_class(config, stage).trains_for(config):
                    continue  # the other ranks help only where there is training to share
                _run_stage(ctx, stage, resume=resume and not force, force=force,
                           log=log if distributed.is_main() else _quiet, label=f"{number}/{len(planned)} {stage}")
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the log says how to go on, as the terminal does
            write_line(f"interrupted: finished stages are kept; continue with: {resume_command(config_path, run_dir)}")
            raise
    distributed.finish()
    return ctx


def resume_command(config_path: Path, run_dir: Path) -> str:
    """The call that continues this run in its folder, keeping the stages done: a command, or the Python call for a
    config given as a mapping (edgekd.api.run(dict))."""
    if Path(config_path).name == MAPPING_SOURCE:
        return f"edgekd.api.run(<the same config dict>, out={str(run_dir)!r}, resume=True)"
    return f"edgekd run {shlex.quote(str(config_path))} --out {shlex.quote(str(run_dir))} --resume"


def _holds_a_run(run_dir: Path) -> bool:
    """A folder an earlier attempt made (its manifest or its log): one whose log may be written to without leaving a
    trace where there was none."""
    return (run_dir / "manifest.json").is_file() or (run_dir / LOG_NAME).is_file()


def _say_how_to_continue(ctx: RunContext, stage: str, exc: EdgeKDError) -> None:
    """A stage that failed after earlier ones finished: its one-line error (terminal, log, Python) ends with the
    command that continues from them once the cause is fixed, as an interrupt's does; without it users reran from the
    start. Only a message of one plain string is extended: an error carrying other arguments is left as it is."""
    done = [earlier for earlier in STAGE_NAMES[:STAGE_NAMES.index(stage)]
            if (ctx.manifest.stage(earlier) or {}).get("status") == "done"]
    if not done or len(exc.args) != 1 or not isinstance(exc.args[0], str):
        return
    exc.args = (f"{exc.args[0]}; finished stages are kept: once that is fixed, continue with: "
                f"{resume_command(ctx.config_path, ctx.run_dir)}",)


def _command(config_path: Path, run_dir: Path, resume: bool, force: bool, only: Optional[Sequence[str]]) -> str:
    """The run as the log's header names it: the command typed (`edgekd ship ...` writes the file the run reads), and
    the edgekd run command that does it (all there is from the Python API)."""
    import shlex
    import sys

    if Path(config_path).name == MAPPING_SOURCE:  # no file to name: the Python call, with its arguments
        given = [f"out={str(run_dir)!r}", *["resume=True"] * resume, *["force=True"] * force,
                 *([f"only={list(only)!r}"] if only else [])]
        return f"edgekd.api.run(<a config dict>, {', '.join(given)}) in {Path(config_path).parent}"
    flags = ["--resume"] * resume + ["--force"] * force + [f"--only {stage}" for stage in only or []]
    run = " ".join(["edgekd run", str(config_path), "--out", str(run_dir), *flags])
    main = getattr(sys.modules.get("__main__"), "__spec__", None)  # `python -m edgekd`, or the edgekd script
    cli = Path(sys.argv[0]).name == "edgekd" or getattr(main, "name", "") == "edgekd.__main__"
    typed = cli and sys.argv[1:2] != ["run"]
    return f"{shlex.join(['edgekd', *sys.argv[1:]])} (as {run})" if typed else run


def _say(held: list[warnings.WarningMessage]) -> None:
    """Warnings recorded while they could not be logged, shown now as they would have been then."""
    for warning in held:
        warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)


def _refuse_another_task(run_dir: Path, config: PipelineConfig, config_path: Path, resume: bool) -> None:
    """--resume of a folder that holds another kind of model (a text classifier's run resumed with a language model's
    file) would replace its bundle and report and mix two runs' files in the stage folders: refused, --force aside."""
    recorded = read_json(run_dir / "manifest.json").get("task") if resume and (run_dir / "manifest.json").is_file() else None
    asked = task_name(config)
    if recorded is not None and recorded != asked:
        raise ConfigError(f"{run_dir}: holds a run of task {recorded}, and {config_path} is for {asked}; give --out a new "
                          "folder for it (or --force to replace that run)")


def refuse_resuming_another_run(run_dir: Path, name: str, config_path: Path) -> None:
    """--resume into a folder that holds another run (another name) went on as a changed config: it retrained
    everything, or (edgekd ship into a pipeline run's folder) replaced the run and deleted its trained models.
    Refused, naming the run it holds; a config edited in place, or saved under another file with the run's name
    (qat.yaml beside ptq.yaml, both `name: tiny`), still resumes. Manifests from before the name was recorded are
    judged by their file alone."""
    path = Path(run_dir) / "manifest.json"
    if not path.is_file():
        return
    manifest = read_json(path)
    recorded_name, recorded_path = manifest.get("name"), str(manifest.get("config_path") or "")
    other_name = recorded_name is not None and recorded_name != name
    # The recorded path is as it was given (maybe relative to another working directory): only a file that is still
    # there and is not this one is another config. A config given as a dict (MAPPING_SOURCE: the file's contents, or
    # ctx.cfg of the run) has no file to compare: its name says which run it is.
    other_file = recorded_name is None and bool(recorded_path) and Path(config_path).name != MAPPING_SOURCE and Path(recorded_path).is_file() \
        and Path(recorded_path).resolve() != Path(config_path).resolve()
    if other_name or other_file:
        held = f"run '{recorded_name}' of {recorded_path}" if recorded_name else f"the run of {recorded_path}"
        raise ConfigError(f"{run_dir}: holds {held}; --resume (resume=True) continues the same run: give its file, or "
                          "--force (force=True) to replace it, or another --out (out=)")


def _refuse_only_without_a_run(run_dir: Path, only: Optional[Sequence[str]]) -> None:
    """--only a later stage where no run exists yet: refused before the folder is made (it left a run folder with no
    stage in it, which the next plain run then refused as an existing run)."""
    if not only or STAGE_NAMES[0] in only or (run_dir / "manifest.json").is_file():
        return
    first = next(stage for stage in STAGE_NAMES if stage in only)
    before = STAGE_NAMES[:STAGE_NAMES.index(first)]
    raise StageError(f"--only {first}: {run_dir} holds no run yet, and '{first}' needs '{before[0]}' and the stages up to "
                     f"it first: leave out --only (or add {' '.join(f'--only {s}' for s in before)}), or give --out a "
                     "run folder that has them")


def _refuse_only_with_stages_missing(run_dir: Path, only: Optional[Sequence[str]]) -> None:
    """--only on a run folder where stages it needs never finished: all of them named at once, before anything runs
    (the check at each stage named only the first, and adding it to --only ran that stage for minutes, then stopped
    at the next). Stale stages are left to _require_earlier, which says what made them stale."""
    if not only or not (run_dir / "manifest.json").is_file():
        return
    stages = read_json(run_dir / "manifest.json").get("stages", {})
    last = max(STAGE_NAMES.index(stage) for stage in only)
    missing = [stage for stage in STAGE_NAMES[:last] if stage not in only
               and stages.get(stage, {}).get("status") not in ("done", "stale")]
    if not missing:
        return
    needs = STAGE_NAMES[last]  # the last stage asked for needs every one before it
    names = ", ".join(f"'{stage}'" for stage in missing)
    raise StageError(f"--only {needs}: {run_dir} has not done {names}, which '{needs}' needs first; run with --resume "
                     f"and without --only (the stages done are skipped), or add {' '.join(f'--only {s}' for s in missing)}")


def _check_inputs_first(config: PipelineConfig, config_path: Path, run_dir: Path, resume: bool,
                        only: Optional[Sequence[str]]) -> Optional[tuple]:
    """The data and model checks of the teachers stage (teachers.check_inputs), made before the run folder is
    created or its manifest touched, so bad data or a wrong checkpoint leaves no trace. Skipped when the teachers
    stage will not run (--only without it, or --resume with it up to date): (dataset, checked teachers) or None."""
    if only and "teachers" not in only:
        return None
    preview = RunContext(config, config_path, run_dir, RunManifest.open(run_dir, config.digest(), str(config_path)))
    if resume and preview.manifest.is_fresh("teachers", preview.stage_key("teachers")):
        return None
    checked = stage_class(config, "teachers")(preview).work().check_inputs()
    _warn_evaluation_set_short(config, preview.dataset)
    if not only or "quantize" in only:  # a pinned calibration set, drawn now that the data is loaded
        stage_class(config, "quantize").check_data(preview)
    return preview.dataset, checked


def _warn_evaluation_set_short(config, dataset) -> None:
    """bench.eval_samples beyond the test split, said once the data is loaded, before any training (the bench stage
    says it again in the report, after it). A language model's bench section has no eval_samples."""
    bench = getattr(config, "bench", None)
    asked = getattr(bench, "eval_samples", None)
    test = getattr(dataset, "test", None)
    if asked is None or test is None or len(test) >= asked or "eval_samples" not in bench.model_fields_set:
        return  # the default unasked (edgekd ship writes none): the report says how many samples it measured
    warnings.warn(f"bench.eval_samples {asked}: the test split has only {len(test)} samples, so bench and gate will "
                  f"measure on those {len(test)}; set bench.eval_samples to {len(test)} or less to say so", stacklevel=2)


def _quiet(_message: str) -> None:
    pass


class _SingleProcess:
    """The distributed helpers' single-process behaviour, for runs that never import torch (an ONNX student)."""

    init_from_env = finish = barrier = staticmethod(lambda *_args: None)
    is_main = staticmethod(lambda: True)

    @staticmethod
    @contextmanager
    def main_first() -> Iterator[None]:
        yield


def _process_group(config: PipelineConfig):
    if config.ships_onnx:
        return _SingleProcess
    from edgekd.train import distributed  # torch: only now that a run needs it

    return distributed


@contextmanager
def exclusive(run_dir: Path, main_process: bool = True) -> Iterator[None]:
    """Hold an advisory lock on the run folder, so two runs cannot write into the same one at once.

    The kernel drops a flock when its process dies, even by SIGKILL: a crash never leaves a stale lock.
    Under torchrun only rank 0 takes it: the other ranks belong to the same run.
    """
    try:
        import fcntl
    except ImportError:  # Windows: no flock; runs into one folder are then the user's to keep apart
        fcntl = None
    if fcntl is None or not main_process:
        yield
        return
    with open(run_dir / ".edgekd.lock", "a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise ConfigError(f"{run_dir}: another edgekd run is writing into this folder; wait for it to finish, "
                              "or choose another --out") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run_stage(ctx: RunContext, stage: str, resume: bool, force: bool, log: Log, label: str = "") -> None:
    """`label` ("3/7 quantize") heads every line this stage logs, so a log says how far the run is."""
    label = label or stage
    key = ctx.stage_key(stage)
    if resume and ctx.manifest.is_fresh(stage, key):
        log(f"[{label}] up to date, skipped (--resume)")
        ctx.outcomes[stage] = "up to date"
        return
    _require_earlier(ctx, stage)
    if stage == "compile" and not ctx.manifest.read_only:  # now that it runs, not before a refusal: nothing else lost
        prune_stale_bundles(ctx.run_dir, bundle_names(ctx.cfg.targets, ctx.base_dir), log)
    parts = ctx.stage_parts(stage)
    previous = recorded_outputs(ctx.manifest.stage(stage))  # before record() replaces them: pruned once it has run
    again = f" again: {ctx.manifest.why_not_fresh(stage, key, parts)}" if resume and ctx.manifest.stage(stage) else ""
    runner = stage_class(ctx.cfg, stage)(ctx).work()
    trains = runner.trains and not ctx.cfg.ships_onnx
    if not ctx.manifest.read_only:  # rank 0 (or the only process) manages the files
        _keep_progress_only_for(ctx.stage_dir(stage), key, start_over=force)
    ran_at = time.strftime('%Y-%m-%d %H:%M:%S')
    if trains:
        distributed_barrier()  # stale progress is gone before any rank looks for it
    log(f"[{label}] running{again}")
    started = time.perf_counter()
    try:
        with measure_peak() as memory:
            result = runner.run()
    except EdgeKDError as exc:
        _mark_later_stale_unless_kept(ctx, stage, f"'{stage}' ran again at {ran_at} and failed")
        ctx.manifest.mark_failed(stage, str(exc))
        _say_how_to_continue(ctx, stage, exc)
        raise
    except BaseException:  # Ctrl-C, SIGTERM, a bug: the stage may have replaced some of its files on the way
        _mark_later_stale_unless_kept(ctx, stage, f"'{stage}' ran again at {ran_at} and was interrupted")
        ctx.manifest.mark_failed(stage, "interrupted")
        raise
    seconds = time.perf_counter() - started
    if trains:
        distributed_barrier()  # rank 0's outputs exist before any rank hashes them into its record
    metrics = result.manifest_metrics()
    _mark_later_stale(ctx, stage, f"'{stage}' ran again at {ran_at}")
    ctx.manifest.record(stage, key, result.inputs, result.outputs, metrics, seconds, memory=memory, parts=parts)
    ctx.outcomes[stage] = "ran"
    if not ctx.manifest.read_only:
        _clear_progress(ctx.stage_dir(stage))
        prune_unmade_outputs(ctx.run_dir, ctx.stage_dir(stage), previous, result.outputs, log)
    warnings = metrics.get("warnings")
    noted = (f"; {warnings} latency measurements were noisy (coefficient of variation > {CV_WARNING:.0%}), see report.md"
             if warnings else "")
    log(f"[{label}] {seconds:.1f} s, done{noted}")


def _mark_later_stale(ctx: RunContext, stage: str, because: str) -> None:
    """What later stages wrote (bundles, report.json) came from this stage's earlier outputs, which it has now replaced:
    they are stale until the run redoes them, also if it is interrupted before (a changed config resumed, then Ctrl-C)."""
    if ctx.manifest.read_only:  # rank 0 (or the only process) manages the files
        return
    later = list(STAGE_NAMES[STAGE_NAMES.index(stage) + 1:])
    ctx.manifest.mark_stale(later, because)
    if "gate" in later:  # its CI files must not keep saying PASS of the model made before
        mark_gate_outputs_stale(ctx.layout, ctx.cfg.name, because)


def _mark_later_stale_unless_kept(ctx: RunContext, stage: str, because: str) -> None:
    """A failed or interrupted attempt: the later stages stay as they were when the stage's earlier result is still on
    record with its files unchanged (a refused config change: the next --resume skips the stage, and must not redo the
    later ones for a run that never happened); else they are stale, as after a run that finished."""
    entry = ctx.manifest.stage(stage)
    if entry and entry.get("status") == "done" and ctx.manifest.is_fresh(stage, entry.get("key")):
        return
    _mark_later_stale(ctx, stage, because)


# Training writes `*.progress.pt` each epoch; a stage continues from them only when they were made
# under the same stage key (same config sections as now). The key they belong to is kept beside them.
_PROGRESS_GLOB, _PROGRESS_KEY = "*.progress.pt", ".progress-key"


def _keep_progress_only_for(stage_dir: Path, key: str, start_over: bool) -> None:
    key_file = stage_dir / _PROGRESS_KEY
    recorded = key_file.read_text(encoding="utf-8").strip() if key_file.is_file() else None
    if start_over or recorded != key:
        _clear_progress(stage_dir)
    write_text_atomic(key_file, key)


def _clear_progress(stage_dir: Path) -> None:
    for path in [*stage_dir.glob(_PROGRESS_GLOB), stage_dir / _PROGRESS_KEY]:
        path.unlink(missing_ok=True)


def _require_earlier(ctx: RunContext, stage: str) -> None:
    for earlier in STAGE_NAMES[:STAGE_NAMES.index(stage)]:
        entry = ctx.manifest.stage(earlier)
        if entry and entry.get("status") == "stale":
            raise StageError(f"stage '{stage}' needs '{earlier}' redone: {entry.get('stale_because', 'an earlier stage ran again')} "
                             f"since it ran; run with --resume (without --only) to redo what that changed")
        if not entry or entry.get("status") != "done":
            raise StageError(f"stage '{stage}' needs '{earlier}' first; run without --only, or add --only {earlier}")
        if not ctx.manifest.is_fresh(earlier, ctx.stage_key(earlier)):
            raise StageError(f"stage '{stage}' needs '{earlier}' redone: its config changed or its files were modified "
                             f"since it ran; run with --resume and without --only (or add --only {earlier})")


# A config given as a mapping (edgekd.api.run) has no file: its relative paths are read from the working directory, as
# a file's are from its folder, and the manifest and the log name it by this stand-in file name there.
MAPPING_SOURCE = "run(config)"


def run_from_file(config_path: str | os.PathLike | Mapping, out: Optional[str] = None, **kwargs) -> RunContext:
    """Run a pipeline file, or a config mapping validated as a file's contents would be (base folder: the cwd)."""
    if isinstance(config_path, Mapping):
        config, config_path = validate_config(dict(config_path), MAPPING_SOURCE), Path.cwd() / MAPPING_SOURCE
    else:
        config = load_config(config_path)
    run_dir = Path(out) if out else Path("runs") / config.name
    return run_pipeline(config, Path(config_path), run_dir, **kwargs)
