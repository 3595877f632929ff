"""The `edgekd` command: parse, call edgekd.api, print, exit.

Exit codes: 0 success, 1 a failed gate, 2 bad input (one line, no traceback; --debug shows it),
3 an internal error (a bug: one line, --debug shows the traceback), 130 interrupted.
"""
from __future__ import annotations

import math
import os
import shlex
import sys
import textwrap
import traceback
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from edgekd.core.errors import EdgeKDError
from edgekd.core.quiet import silence_cuda_home_warning
from edgekd.core.task_metrics import METRICS as TASK_METRICS
from edgekd.device.config import BENCH_DEFAULTS, MAX_BENCH_SECONDS
from edgekd.pipeline.registry import STAGE_NAMES

INTERNAL_ERROR = 3
# The same bounds as the config's bench section (edgekd/device/config.py), so a flag cannot pass what the YAML
# would refuse; gate flags are checked by the gate's own model (_ThresholdFlag).


class _FiniteRange(click.FloatRange):
    """click.FloatRange lets nan and inf through (every comparison with nan is false); a threshold of nan
    would silently pass or fail everything."""

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


class _OutputFile(click.Path):
    """A file to write. click.Path makes `newdir/` the Path `newdir`, which would then be written as a file named
    newdir; a trailing slash says the user meant a folder, so it is refused with the file name to give instead."""

    def __init__(self, example: str = "out.json"):
        super().__init__(dir_okay=False, path_type=Path)
        self.example = example  # the file name the advice offers: one the command takes (init writes .yaml)

    def convert(self, value, param, ctx):
        if isinstance(value, str) and (value.endswith(("/", os.sep)) or Path(value).is_dir()):  # `init sub` too
            self.fail(f"{value!r} names a folder; give a file path inside it, e.g. {value.rstrip('/' + os.sep)}/{self.example}",
                      param, ctx)
        return super().convert(value, param, ctx)


class _ThresholdFlag(click.ParamType):
    """A gate threshold flag, checked by the one Thresholds validator before any work (exit 2 naming the flag)."""

    name = "number"

    def __init__(self, field: str):
        self.field = field

    def convert(self, value, param, ctx):
        from pydantic import ValidationError

        from edgekd.core.thresholds import Thresholds, threshold_error

        try:
            number = float(value)
            Thresholds.model_validate({self.field: number})
        except ValueError as exc:  # pydantic's ValidationError is a ValueError too
            why = threshold_error(exc) if isinstance(exc, ValidationError) else f"{value!r} is not a number"
            self.fail(why, param, ctx)
        return number


SECONDS = _FiniteRange(min=0, max=MAX_BENCH_SECONDS)


class _Group(click.Group):
    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # --debug after the command (`edgekd gate r.json --debug`, where the error's advice sends people) is the group's
        if "--debug" in args[1:] and args[:1] != ["--debug"]:
            args = ["--debug", *(a for a in args if a != "--debug")]
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except EdgeKDError as exc:
            if ctx.obj and ctx.obj.get("debug"):
                traceback.print_exc()
            click.echo(f"edgekd: error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("edgekd: interrupted", err=True)
            ctx.exit(130)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise  # click's own exits and usage errors keep their codes and messages
        except Exception as exc:  # a bug in edgekd: exit 3, never 1, which CI reads as a failed gate
            if ctx.obj and ctx.obj.get("debug"):
                traceback.print_exc()
            detail = str(exc).splitlines()[0][:200] if str(exc) else ""
            click.echo(f"edgekd: internal error: {type(exc).__name__}: {detail} (a bug in edgekd; "
                       "rerun with --debug for the traceback and report it)", err=True)
            ctx.exit(INTERNAL_ERROR)


def _one_of_resume_force(command: str, resume: bool, force: bool) -> None:
    if resume and force:
        from edgekd.core.errors import ConfigError

        raise ConfigError(f"edgekd {command}: --resume and --force contradict each other (--resume keeps finished stages, "
                          "--force redoes them); give one of them")


def _show_edgekd_warnings_as_one_line() -> None:
    """edgekd's own warnings (a calibration recipe larger than its split...) as `edgekd: warning: ...` on
    stderr, like its errors; other libraries' warnings keep Python's format, which names their source."""
    if getattr(warnings.showwarning, "edgekd_hook", False):
        return  # main() can run more than once in a process (tests); wrap only once
    package_dir = str(Path(__file__).resolve().parent)
    default = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if str(Path(filename).resolve()).startswith(package_dir):
            click.echo(warning_lines(str(message)), err=True)
        else:
            default(message, category, filename, lineno, file, line)

    show.edgekd_hook = True
    warnings.showwarning = show


WARNING_WIDTH = 120  # a log's width: edgekd's warnings wrap within it, continued on indented lines


def warning_lines(message: str, width: int = WARNING_WIDTH, prefix: str = "edgekd: warning: ") -> str:
    """`edgekd: warning: ...` wrapped at `width` columns (a log has no terminal to wrap it), long words and paths
    kept whole."""
    return textwrap.fill(f"{prefix}{message}", width, subsequent_indent="  ", break_long_words=False,
                         break_on_hyphens=False)


def _check_outputs(folders: dict[str, Path | None] | None = None, files: dict[str, Path | None] | None = None) -> None:
    """Create and probe every output destination given on the command line before any work is done."""
    from edgekd.core.fileio import writable_file, writable_folder

    for option, folder in (folders or {}).items():
        if folder is not None:
            writable_folder(folder, option)
    for option, path in (files or {}).items():
        if path is not None:
            writable_file(path, option)


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM (a scheduler's time limit, `kill`) like Ctrl-C: the stage is marked interrupted
    in the manifest and the resume command is printed, instead of dying mid-write. Both are raised only where
    the interpreter can unwind cleanly (edgekd/core/interrupts.py): never inside an import or exec'd code."""
    from edgekd.core.interrupts import interrupts_raised_safely

    with interrupts_raised_safely():
        yield


def _release(interrupted: KeyboardInterrupt) -> None:
    """Close the runtime sessions the interrupted stage left in its frames before exiting, not at shutdown."""
    from edgekd.core.interrupts import release

    release(interrupted)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show full tracebacks for errors.")
@click.version_option(package_name="edgekd")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """edgekd: distill a teacher ensemble into a small student, quantize it to int8, and ship
    checked, benchmarked, gated bundles for onnxruntime, OpenVINO and TensorRT devices.

    \b
    Typical use:
      edgekd run configs/quickstart.yaml        # the whole pipeline
      edgekd bench runs/quickstart/bundle/x86-cpu   # on the device
      edgekd gate runs/quickstart/report.json --max-drop 1.0
      edgekd keys quantize                      # what a config can say, with defaults
    """
    ctx.obj = {"debug": debug}
    _show_edgekd_warnings_as_one_line()
    silence_cuda_home_warning()  # torch's CUDA_HOME note, logged when NNCF or transformers import its C++ extension builder


@main.command("run")
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Run folder (default runs/<name>).")
@click.option("--resume", is_flag=True, help="Skip stages whose inputs and config are unchanged; continue training from the last epoch.")
@click.option("--force", is_flag=True, help="Redo every stage in an existing run folder.")
@click.option("--only", multiple=True, type=click.Choice(list(STAGE_NAMES)), help="Run only this stage (repeatable); earlier stages must be done.")
def run_cmd(config: Path, out: Path | None, resume: bool, force: bool, only: tuple[str, ...]) -> None:
    """Run the pipeline in CONFIG: teachers, distill, export, quantize, compile, bench, gate.

    Writes runs/<name>/ with manifest.json, report.json, report.md and bundle/<target>/.
    Exits 1 when the gate fails.
    """
    from edgekd import api
    from edgekd.core.errors import GateFailed

    _one_of_resume_force("run", resume, force)
    resume_cmd = " ".join(["edgekd run", shlex.quote(str(config)), *(["--out", shlex.quote(str(out))] if out else []), "--resume"])
    try:
        with _sigterm_as_interrupt():
            ctx = api.run(config, out, resume=resume, force=force, only=list(only) or None,
                          log=lambda m: click.echo(m, err=True))
    except GateFailed as failure:  # the table and the verdict are still the output; only the exit code differs
        ctx = failure.context
    except KeyboardInterrupt as interrupted:
        _release(interrupted)
        click.echo("edgekd: interrupted; finished stages and the last finished epoch are kept. "
                   f"Continue with: {resume_cmd}", err=True)
        sys.exit(130)
    verdict = _print_run_result(ctx)
    if verdict is not None and not verdict["passed"]:
        sys.exit(1)


@main.command("ship")
@click.argument("model")
@click.option("--checkpoint", type=click.Path(dir_okay=False, path_type=Path),
              help="state_dict of a PyTorch MODEL (torch.load(weights_only=True)); not with an .onnx MODEL.")
@click.option("--data", required=True, help="Image folder (one sub-folder per class; without them: no labels, judged by "
              "fidelity to the model), .npz file (x, y; x alone: no labels; or one array per model input, named as it), digits or fashion-mnist.")
@click.option("--calibration", type=click.Path(file_okay=False, path_type=Path),
              help="Folder of images (any depth, no labels) to calibrate int8 on, decoded like --data.")
@click.option("--no-labels", is_flag=True, help="Read --data as images without labels (sub-folders at any depth are not "
              "classes; an npz's y is ignored): judged by fidelity to the model.")
@click.option("--targets", help="Comma-separated device profiles (default x86-cpu; see `edgekd targets`).")
@click.option("--max-drop", type=click.FloatRange(min=0), help="Largest top-1 (or --metric) drop allowed against the model, in "
              "points (default 1.0).")
@click.option("--min-speedup", type=_ThresholdFlag("min_speedup"), help="Smallest allowed speed-up of the shipped model over "
              "the target's fp32 one (1.5: 1.5x); the bundle then carries the fp32 model, so the device can time both.")
@click.option("--max-size-kb", type=_ThresholdFlag("max_size_kb"), help="Largest allowed size of the shipped model, in KB "
              "(selection ships the fastest candidate within it).")
@click.option("--color", type=click.Choice(["rgb", "bgr", "gray", "gray3"]), help="Image folder --data: channel order, "
              "or grayscale as one channel (gray) or repeated to three (gray3), as the model takes it (default rgb).")
@click.option("--scale", type=click.Choice(["auto", "255", "none"]), help=".npz --data: divide x by 255 when its values "
              "are 0..255 (auto, the default), always (255), or feed them as given (none).")
@click.option("--normalize", metavar="dataset|none|imagenet|MEAN/STD", help="Then (x - mean) / std per channel with the "
              "data's own statistics (dataset, the default), none, ImageNet's, or the model's own: MEAN/STD, one value for "
              "every channel or one per channel (0.5/0.5 for pixels in [-1, 1]; 0.485,0.456,0.406/0.229,0.224,0.225).")
@click.option("--metric", type=click.Choice(list(TASK_METRICS)),
              help="A model that is not a classifier (.onnx MODEL, .npz --data of its input x and optional labels y): every "
              "output compared with the fp32 model's (cosine, SQNR) and judged by this task metric.")
@click.option("--output", "output_name", metavar="NAME", help="With --metric: the model output it scores (default the first).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Run folder (default runs/<model name>).")
@click.option("--resume", is_flag=True, help="Continue a run of the same command in --out.")
@click.option("--force", is_flag=True, help="Redo every stage in an existing run folder.")
def ship_cmd(model: str, checkpoint: Path | None, data: str, calibration: Path | None, no_labels: bool, targets: str | None,
             max_drop: float | None, min_speedup: float | None, max_size_kb: float | None, color: str | None,
             scale: str | None, normalize: str | None, metric: str | None, output_name: str | None, out: Path | None,
             resume: bool, force: bool) -> None:
    """Ship a model you already trained: int8 per target, compile, bench and gate, no distillation.

    \b
    MODEL is an .onnx file (runs without torch), or a PyTorch factory with --checkpoint:
      edgekd ship model.onnx --data images/ --targets x86-cpu,intel-cpu
      edgekd ship torchvision:resnet18 --checkpoint resnet18.pt --data test.npz --max-drop 0.5
      edgekd ship models.py:build --checkpoint best.pt --data digits
      edgekd ship model.onnx --data unlabeled/ --calibration more-unlabeled/
      edgekd ship det.onnx --data pages.npz --metric mask_iou      # a text detector: x, y masks
    Without labels, every top-1 is agreement with the model's own fp32 top-1 and --max-drop limits
    the disagreement in points (0.5: at least 99.5% agreement); the report says fidelity was measured.
    Writes RUN/edgekd.yaml (the equivalent pipeline: rerun or edit it with `edgekd run`) and runs it.
    Exits like `edgekd run`: 1 when the gate fails, 2 for bad input.
    """
    from edgekd import api
    from edgekd.core.errors import GateFailed

    _one_of_resume_force("ship", resume, force)
    # `--targets ""` is a list naming nothing (refused), not the default
    target_list = [t.strip() for t in targets.split(",") if t.strip()] if targets is not None else None
    from edgekd.pipeline.ship_options import typed_on_the_command_line

    try:
        with _sigterm_as_interrupt(), typed_on_the_command_line():  # messages name --data, not api.ship's data=
            ctx = api.ship(model, data, checkpoint, target_list, max_drop, out, resume=resume, force=force,
                           log=lambda m: click.echo(m, err=True), calibration=calibration, labels=not no_labels,
                           metric=metric, output=output_name, color=color, scale=scale, normalize=normalize,
                           min_speedup=min_speedup, max_size_kb=max_size_kb)
    except GateFailed as failure:
        ctx = failure.context
    except KeyboardInterrupt as interrupted:
        _release(interrupted)
        click.echo("edgekd: interrupted; finished stages are kept. Continue with the same command and --resume", err=True)
        sys.exit(130)
    verdict = _print_run_result(ctx)
    click.echo(f"pipeline file: {ctx.config_path} (rerun or edit: edgekd run {ctx.config_path} --out {ctx.run_dir} --force)")
    if verdict is not None and not verdict["passed"]:
        sys.exit(1)


def _print_run_result(ctx):
    """The report table and the gate verdict of this invocation; a gate.json left by an earlier run
    (say `--only bench --force` after a full run) is not shown as this run's verdict."""
    from edgekd.api import verdict_line
    from edgekd.core import run_log
    from edgekd.core.fileio import read_json
    from edgekd.device.gate import Check, failed_reasons, verdicts
    from edgekd.device.report.terminal import terminal_table

    verdict, shown = ctx.gate_verdict(), []
    report_path = ctx.run_dir / "report.json"
    if report_path.is_file() and ({"bench", "gate"} & set(ctx.outcomes)):
        marks = verdicts([Check(**c) for c in verdict["checks"]]) if verdict else None
        shown.append(terminal_table(read_json(report_path), marks))
    # the command that finishes the run, whatever --only left undone (a bare --only gate is refused without --resume)
    line = verdict_line(verdict) if verdict else \
        f"gate: not run (finish the run: edgekd run {shlex.quote(str(ctx.config_path))} --out {shlex.quote(str(ctx.run_dir))} --resume)"
    # the table says FAIL; these say why
    shown += [f"FAIL {artifact}: {why}" for artifact, why in failed_reasons((verdict or {}).get("checks"))]
    shown.append(f"\nrun folder: {ctx.run_dir}   {line}")
    click.echo("\n".join(shown))
    if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0's verdict alone closes the run's log
        run_log.append(ctx.run_dir, "\n".join(shown))  # the table and the verdict (RUN/edgekd.log)
    return verdict


@main.command("bench")
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--threads", type=click.IntRange(min=1), help="Inference threads (default: the bundle's profile).")
@click.option("--runs", type=click.IntRange(min=1), default=BENCH_DEFAULTS.runs, show_default=True, help="At least this many timed runs...")
@click.option("--min-seconds", type=SECONDS, default=BENCH_DEFAULTS.min_seconds, show_default=True, help="...and at least this long.")
@click.option("--warmup-runs", type=click.IntRange(min=0), default=BENCH_DEFAULTS.warmup_runs, show_default=True, help="Warm-up: at least this many runs...")
@click.option("--warmup-seconds", type=SECONDS, default=BENCH_DEFAULTS.warmup_seconds, show_default=True, help="...and at least this long.")
@click.option("--rounds", type=click.IntRange(min=1), default=BENCH_DEFAULTS.rounds, show_default=True,
              help="Timed runs are split into rounds, artifacts interleaved.")
@click.option("--batch", "batch_sizes", type=click.IntRange(min=1), multiple=True,
              help="Batch sizes (repeatable; default: the bundle's profile's, e.g. 1 and 4 for arm64-cpu, 1 and 8 for x86-cpu); "
                   "batch 1 is always measured.")
@click.option("--no-memory", is_flag=True, help="Skip the peak-memory subprocess per artifact.")
@click.option("--images", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Measure on this folder of raw image files instead of eval.npz, decoded with the manifest's preprocessing "
                   "(Pillow + numpy): sub-folders named as the bundle's labels give top-1, else fidelity to the fp32 bundle.")
@click.option("--texts", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A text model's bundle: measure on this .jsonl or .csv of text,label instead of eval.npz, tokenized with "
                   "the bundle's tokenizer.json (tokenizers + numpy), labels as the bundle names them. A language model's "
                   "bundle: generate from these prompts, one per line, instead of its held-out blocks.")
@click.option("--top-k", type=click.IntRange(min=1), help="Language models: sample among the K most likely tokens (default: greedy).")
@click.option("--temperature", type=_FiniteRange(min=0, min_open=True), help="Language models: sampling temperature, with --top-k (default 1).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Language models: the sampling seed, with --top-k.")
@click.option("--new-tokens", type=click.IntRange(min=1), help="Language models: tokens generated per prompt (default: the bundle's bench setting).")
@click.option("--prompts", "prompt_count", type=click.IntRange(min=1),
              help="Language models: at most this many prompts (default: the bundle's bench setting, or every line of --texts).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Write report.json, report.md and report.html into this folder.")
@click.option("--json", "--json-out", "json_out", type=_OutputFile(), help="Write only the JSON report here.")
def bench_cmd(path: Path, threads, runs, min_seconds, warmup_runs, warmup_seconds, rounds, batch_sizes, no_memory,
              images, texts, top_k, temperature, seed, new_tokens, prompt_count, out, json_out) -> None:
    """Benchmark a bundle (or every bundle in a run folder) on this machine.

    Verifies every file's sha256 first, then measures size, top-1 and fidelity on the bundled eval.npz,
    latency (warm-up, interleaved rounds, p50/p90/p99), session creation, first inference and peak memory.
    Needs only numpy and the bundle's runtime: no torch. Gate the result with `edgekd gate OUT/report.json`.

    A language model's bundle: perplexity on its held-out blocks, generation at batch 1 (time to first token,
    per-token p50/p99, tokens/s; greedy, or --top-k sampling) and the bundle's perplexity gate: exit 1 when it fails
    (after the reports are written).
    """
    from edgekd import api
    from edgekd.core.fileio import refuse_overwriting_inputs
    from edgekd.device.report.build import refuse_replacing_a_runs_reports, refuse_replacing_other_files, refuse_replacing_other_json

    refuse_replacing_a_runs_reports(out, json_out)  # a run folder's own reports are the pipeline's, not a bench's
    refuse_replacing_other_files(out)  # nor a user's own report.md, nor a bundle's folder
    refuse_overwriting_inputs("bench", {"--json": json_out}, {"--texts": texts})
    refuse_replacing_other_json(json_out)  # nor any other file of the user's: a bundle's manifest.json
    _check_outputs(folders={"--out": out}, files={"--json": json_out})  # before minutes of measuring, not after
    if images and texts:
        raise click.UsageError("--images and --texts: give one of them")
    if temperature is not None and top_k is None:
        raise click.UsageError("--temperature: applies to sampling; give --top-k K too (greedy has no temperature)")
    if top_k is None and click.get_current_context().get_parameter_source("seed") != click.core.ParameterSource.DEFAULT:
        raise click.UsageError("--seed: applies to sampling; give --top-k K too (greedy decoding draws nothing)")
    decoding = _decoding(top_k, temperature, seed, new_tokens, prompt_count)
    from edgekd.core.option_names import typed_on_the_command_line

    with typed_on_the_command_line():  # messages name --new-tokens, not api.bench's decoding.new_tokens
        report = api.bench(path, threads=threads, runs=runs, min_seconds=min_seconds, batch_sizes=batch_sizes or None,
                           warmup_runs=warmup_runs, warmup_seconds=warmup_seconds, rounds=rounds, memory=not no_memory,
                           images=images, texts=texts, decoding=decoding)
    from edgekd.device.gate import failed_reasons
    from edgekd.device.report.terminal import terminal_table

    verdict = report.get("verdict") or {}  # bundles gated as they are benched (a language model's: gate_on_bench)
    from edgekd.device.report.table import other_warnings

    click.echo(terminal_table(report, verdict.get("artifacts")))
    in_table = set(other_warnings(report))
    for warning in (w for w in report["warnings"] if w not in in_table):  # the table says the others already
        click.echo(warning_lines(warning, prefix="warning: "), err=True)
    if verdict:
        for artifact, why in failed_reasons(verdict.get("checks")):
            click.echo(f"FAIL {artifact}: {why}")
        click.echo(verdict["summary"])
    if out:
        from edgekd.device.report.build import write_reports

        paths = write_reports(out, report, verdict.get("artifacts"), failed_reasons(verdict.get("checks")))
        click.echo(f"wrote {', '.join(str(p) for p in paths)}")
    if json_out:
        from edgekd.core.fileio import write_json_atomic

        write_json_atomic(json_out, report)
        click.echo(f"wrote {json_out}")
    if verdict.get("passed") is False:  # after everything is written
        sys.exit(1)


def _decoding(top_k, temperature, seed, new_tokens, prompt_count):
    """The language-model options as one Decoding, or None when none was given (an image bundle then runs as ever,
    and one given with an image bundle is refused)."""
    from edgekd.device.lm_bench import Decoding

    source = click.get_current_context().get_parameter_source("seed")
    if top_k is None and temperature is None and new_tokens is None and prompt_count is None \
            and source == click.core.ParameterSource.DEFAULT:
        return None
    return Decoding(top_k=top_k, temperature=temperature or 1.0, seed=seed, new_tokens=new_tokens, prompts=prompt_count)


@main.command("gate")
@click.argument("report", type=click.Path(path_type=Path))  # a folder: api.check_report_paths names its report.json
@click.option("--max-drop", type=_ThresholdFlag("max_drop"), help="Largest allowed top-1 drop (points, or percent with --relative).")
@click.option("--relative", is_flag=True, help="Measure the drop relative to the reference: (1 - value/reference) * 100.")
@click.option("--absolute", is_flag=True, help="Measure the drop in top-1 points: (reference - value) * 100, "
              "whatever drop type the report recorded.")
@click.option("--reference", help="What the drop is measured against: teacher, student_fp32 or an artifact such as x86-cpu/fp32.")
@click.option("--baseline", type=click.Path(path_type=Path),
              help="Take the reference accuracy from this report.json (must use the same evaluation set).")
@click.option("--min-speedup", type=_ThresholdFlag("min_speedup"), help="Smallest allowed speedup over the target's fp32 baseline.")
@click.option("--max-size-kb", type=_ThresholdFlag("max_size_kb"), help="Largest allowed model size.")
@click.option("--max-metric-drop", type=_ThresholdFlag("max_metric_drop"),
              help="Largest allowed drop of the report's task metric (e.g. mask_iou), in its points (default: --max-drop).")
@click.option("--min-cosine", type=_ThresholdFlag("min_cosine"), help="Lowest allowed cosine of any output with fp32's.")
@click.option("--min-sqnr-db", type=_ThresholdFlag("min_sqnr_db"), help="Lowest allowed SQNR (dB) of any output against fp32's.")
@click.option("--max-increase", type=_ThresholdFlag("max_increase"),
              help="A language model's report: largest allowed perplexity increase over the reference (0.03: 3%); "
                   "default: the limit each bundle was benched under.")
@click.option("--min-greedy-agreement", type=_ThresholdFlag("min_greedy_agreement"),
              help="A language model's report: smallest allowed share of greedy tokens equal to the fp32 model's (0 to 1); "
                   "rows without a measured agreement are skipped.")
@click.option("--junit", type=_OutputFile("junit.xml"),
              help="Write JUnit XML: one test case per artifact and threshold.")
@click.option("--summary", type=_OutputFile("summary.md"),
              help="Write a Markdown summary (also appended to $GITHUB_STEP_SUMMARY when set).")
@click.option("--allow-empty", is_flag=True,
              help="Pass even when no check could be evaluated (every shipped artifact skipped as not measured here).")
def gate_cmd(report: Path, max_drop, relative, absolute, reference, baseline, min_speedup, max_size_kb, max_metric_drop,
             min_cosine, min_sqnr_db, max_increase, min_greedy_agreement, junit, summary, allow_empty) -> None:
    """Check REPORT (report.json) against thresholds; exit 0 on PASS, 1 on FAIL, 2 on bad input.

    A language model's report is gated on perplexity: --max-increase, else the limit it was benched under (an
    old lm-report.json too).

    Thresholds default to the gate section of the config that produced the report; flags override them.
    Skipped checks (artifacts without a measured top-1 here) are counted apart, not as passes; a gate
    that evaluated no check at all fails, unless --allow-empty.
    """
    import os

    from edgekd import api
    from edgekd.core.fileio import refuse_overwriting_inputs
    from edgekd.device.ci_outputs import append_step_summary, refuse_replacing_other_files

    if relative and absolute:
        from edgekd.core.errors import ConfigError

        raise ConfigError("edgekd gate: --relative and --absolute contradict each other; give one of them")
    api.check_report_paths({"REPORT": report, "--baseline": baseline}, caller="edgekd gate")
    inputs = {"REPORT (the report being gated)": report, "--baseline": baseline}
    refuse_overwriting_inputs("edgekd gate", {"--junit": junit, "--summary": summary}, inputs)
    refuse_replacing_other_files(junit, summary, ("--junit", "--summary"))
    refuse_overwriting_inputs("edgekd gate", {"$GITHUB_STEP_SUMMARY": os.environ.get("GITHUB_STEP_SUMMARY") or None}, inputs)
    _check_outputs(files={"--junit": junit, "--summary": summary})
    drop_type = "relative" if relative else ("absolute" if absolute else None)  # None: the report's own
    checks = api.gate(report, baseline=baseline, max_drop=max_drop, drop_type=drop_type,
                      reference=reference, min_speedup=min_speedup, max_size_kb=max_size_kb,
                      max_metric_drop=max_metric_drop, min_cosine=min_cosine, min_sqnr_db=min_sqnr_db, max_increase=max_increase,
                      min_greedy_agreement=min_greedy_agreement, allow_empty=True if allow_empty else None, junit=junit, summary=summary)
    for check in checks:
        status = "FAIL" if not check.passed else ("SKIP" if check.skipped else "PASS")
        click.echo(f"{status}  {check.artifact:<24} {check.threshold:<12} {check.reason}")
    append_step_summary(checks, str(report))
    click.echo(checks.summary)
    sys.exit(0 if checks.passed else 1)


@main.command("compile")
@click.argument("bundle", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--target", help="Profile name or .yaml path to derive the build settings from "
              "(default: those recorded in the bundle).")
def compile_cmd(bundle: Path, target: str | None) -> None:
    """Build BUNDLE's model on this machine and update its manifest.

    Run it on the device: a TensorRT engine is built from the bundled ONNX with the recorded
    build settings (or those of --target); an arm64 bundle gets a fresh .ort file. The new files
    and their sha256 sums are written to manifest.json.
    """
    from edgekd import api

    manifest = api.compile(bundle, target)
    artifact = manifest["artifact"]
    click.echo(f"{bundle}: {artifact['backend']} {artifact['precision']} -> {artifact['main']} "
               f"({len(manifest['files'])} files hashed in manifest.json)")
    if target:
        click.echo(f"{bundle}: now target {manifest['target']} (its threads, batch sizes and session settings); the int8 "
                   "recipe, precisions and gate limits stay those the bundle was built and selected with")


@main.command("compare")
@click.argument("report_a", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("report_b", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--markdown", "markdown_out", type=_OutputFile("comparison.md"),
              help="Also write the table as Markdown.")
@click.option("--json", "json_out", type=_OutputFile(), help="Also write the comparison as JSON.")
def compare_cmd(report_a: Path, report_b: Path, markdown_out, json_out) -> None:
    """Compare the same artifacts in two reports (two machines or two versions): latency, size and top-1, B/A
    (language models: perplexity and generation speed)."""
    from edgekd import api
    from edgekd.core.fileio import refuse_overwriting_inputs, write_json_atomic, write_text_atomic
    from edgekd.device.report.compare import refuse_replacing_other_files, render_markdown, render_text

    refuse_overwriting_inputs("edgekd compare", {"--markdown": markdown_out, "--json": json_out},
                              {"REPORT_A": report_a, "REPORT_B": report_b})
    refuse_replacing_other_files(markdown_out, json_out)  # nor a user's notes, a pipeline file, a bundle's manifest
    _check_outputs(files={"--markdown": markdown_out, "--json": json_out})
    # report.md for its report.json: named here as the command takes them (api.compare's own check names compare())
    api.check_report_paths({"REPORT_A": report_a, "REPORT_B": report_b}, caller="edgekd compare")
    comparison = api.compare(report_a, report_b)
    click.echo(render_text(comparison))
    if markdown_out:
        write_text_atomic(markdown_out, render_markdown(comparison))
    if json_out:
        write_json_atomic(json_out, comparison)


# Config keys differ by task: `keys` and `schema` describe an image pipeline's file or a language model's.
_task_option = click.option("--task", type=click.Choice(["image", "language-model"]), default="image", show_default=True,
                            help="Which file: an image pipeline's, or a `task: language-model` one's.")


@main.command("keys")
@click.argument("section", required=False)
@_task_option
def keys_cmd(section: str | None, task: str) -> None:
    """Every config key with its default and what it does; SECTION narrows it (e.g. distill, quantize.qat).

    \b
    edgekd keys               # the whole config
    edgekd keys distill       # one section; list items show as teachers[].arch
    edgekd keys distill.sequence --task language-model   # sequence-level KD of a language model
    """
    from edgekd.pipeline.config_help import key_lines

    click.echo("\n".join(key_lines(section, task)))


@main.command("schema")
@click.option("--out", type=_OutputFile(), help="Write the schema to this file (default: stdout).")
@_task_option
def schema_cmd(out: Path | None, task: str) -> None:
    """The JSON Schema of a pipeline file, for completion and checks in editors.

    \b
    edgekd schema --out edgekd.schema.json
    edgekd schema --task language-model --out edgekd-lm.schema.json
    # then, first line of the YAML file:  # yaml-language-server: $schema=edgekd.schema.json
    """
    import json

    from edgekd.pipeline.config_help import json_schema

    text = json.dumps(json_schema(task), indent=2) + "\n"
    if out is None:
        click.echo(text, nl=False)
        return
    from edgekd.core.fileio import write_text_atomic

    if out.exists() and not _a_json_schema(out):  # a rerun replaces its schema; never a pipeline file or other file
        raise click.UsageError(f"--out {out}: exists and is not a JSON Schema, which it would replace; give another path")
    _check_outputs(files={"--out": out})
    write_text_atomic(out, text)
    click.echo(f"wrote {out}")


def _a_json_schema(path: Path) -> bool:
    import json

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and "properties" in data and "type" in data


# Files edgekd init reads with --data, never writes.
DATA_SUFFIXES = (".csv", ".parquet", ".npz", ".jsonl", ".tsv", ".txt")


@main.command("init")
@click.argument("path", type=_OutputFile("edgekd.yaml"), default=Path("edgekd.yaml"))
@click.option("--data", help="digits (default), fashion-mnist, module:function, a .npz file, an image folder, or a "
                             ".csv/.parquet table (a pipeline that distils an ensemble of scikit-learn teachers).")
@click.option("--force", is_flag=True, help="Overwrite PATH (a .yaml file) if it exists.")
def init_cmd(path: Path, data: str | None, force: bool) -> None:
    """Write a commented starter pipeline file to PATH (default edgekd.yaml)."""
    from edgekd.core.errors import ConfigError
    from edgekd.core.fileio import write_text_atomic
    from edgekd.pipeline.config_help import starter_config

    if path.suffix.lower() not in (".yaml", ".yml"):  # a data file given where the pipeline file goes: never replaced
        hint = f"; did you mean: edgekd init --data {shlex.quote(str(path))}" if path.suffix.lower() in DATA_SUFFIXES else ""
        raise ConfigError(f"{path}: edgekd init writes a pipeline file, which ends in .yaml{hint}")
    if path.exists() and not force:
        raise ConfigError(f"{path}: already exists; pass --force to overwrite it, or give another path")
    _check_outputs(files={"PATH": path})
    write_text_atomic(path, starter_config(path.stem if path.stem != "edgekd" else "my-model", data, path.name, path.parent))
    click.echo(f"wrote {path}; run it with: edgekd run {shlex.quote(str(path))}")


@main.command("targets")
def targets_cmd() -> None:
    """List the device profiles (targets/*.yaml). Add your own by passing a .yaml path in the config.

    The `here` column says whether the profile's runtime is installed on this machine.
    """
    from edgekd import api
    from edgekd.runtimes import get_backend

    click.echo(f"{'profile':<16} {'backend':<10} {'precisions':<16} {'int8 recipe':<26} {'batch':<7} {'threads':<8} "
               f"{'here':<5} description")
    for p in api.targets():
        recipe = p.quantization.name if p.quantization else "-"
        batches = ",".join(str(b) for b in p.batch_sizes)
        here = "yes" if get_backend(p.backend).available() else "no"
        click.echo(f"{p.name:<16} {p.backend:<10} {','.join(p.precisions):<16} {recipe:<26} {batches:<7} "
                   f"{p.threads or '-'!s:<8} {here:<5} {p.description}")


if __name__ == "__main__":
    main()
