"""onnxruntime targets: x86 CPU (`ort`) and ARM CPUs (`ort-arm64`, which also ships an .ort file)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edgekd.core.batch_layout import batch_axes, to_model
from edgekd.core.errors import ArtifactError, ConfigError, clip_words
from edgekd.core.fileio import atomic_path
from edgekd.runtimes.base import Artifact, Backend
from edgekd.runtimes.decoder import CONTEXT_KEY, empty_kv_cache, step_inputs
from edgekd.runtimes.decoder_quantize import METHODS as DECODER_METHODS
from edgekd.runtimes.onnx_graph import copy_onnx

# onnxruntime's own log at errors and worse: its warnings (unused initializers, a model's own graph notes) are not the
# user's to act on, and what edgekd must say it says in its own words.
QUIET = 3


def session_options(threads: int | None, level: str = "ORT_ENABLE_ALL") -> dict:
    """The onnxruntime session settings edgekd uses, as plain data for the bundle manifest."""
    return {"intra_op_num_threads": threads or 0, "inter_op_num_threads": 1 if threads else 0,
            "graph_optimization_level": level, "execution_mode": "ORT_SEQUENTIAL"}


def _ort_options(settings: dict):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = settings["intra_op_num_threads"]
    options.inter_op_num_threads = settings["inter_op_num_threads"]
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, settings["graph_optimization_level"])
    options.execution_mode = getattr(ort.ExecutionMode, settings["execution_mode"])
    options.log_severity_level = QUIET
    return options


def open_session(model: str | Path | bytes, threads: int | None = None, inter_threads: int | None = None,
                 providers: list[str] | None = None):
    """A plain onnxruntime InferenceSession for a file (or serialized model bytes), on the CPU unless `providers`
    says otherwise. Only the thread counts given are set, the rest is onnxruntime's default. The one door by which
    code outside runtimes/ opens a session (tests/test_import_contracts.py): errors are onnxruntime's own, for the
    caller to put in its words."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = QUIET
    if threads:
        options.intra_op_num_threads = int(threads)
    if inter_threads:
        options.inter_op_num_threads = int(inter_threads)
    return ort.InferenceSession(model if isinstance(model, bytes) else str(model), options,
                                providers=providers or ["CPUExecutionProvider"])


def load_failure(model_path: Path, exc: Exception, shown_as: Path | str | None = None) -> str:
    """One line for a file onnxruntime cannot load, naming `shown_as` (the user's own file, when `model_path` is the
    run's copy of it) both in edgekd's words and in onnxruntime's quoted text."""
    reason = str(exc)
    if shown_as is not None:
        reason = reason.replace(str(model_path), str(shown_as))
    return (f"{shown_as or model_path}: onnxruntime cannot load it ({clip_words(reason, 300)}); check that it runs "
            "with onnxruntime.InferenceSession, or export or bundle it again")


class OrtSession:
    def __init__(self, model_path: Path, threads: int | None, providers: list[str] | None = None,
                 shown_as: Path | str | None = None):
        """`shown_as`: the file to name in a load error, when `model_path` is the run's copy of the user's file."""
        import onnxruntime as ort

        self.options = session_options(threads)
        providers = providers or ["CPUExecutionProvider"]
        try:
            self._session = ort.InferenceSession(str(model_path), _ort_options(self.options), providers=providers)
            if FLOAT_NODES_KEY in self._session.get_modelmeta().custom_metadata_map:
                # Read only once the file is open (the device has no onnx package to read it before): open it again
                # without the transformer that would quantize the nodes the fallback kept in float.
                self._session = ort.InferenceSession(str(model_path), _ort_options(self.options), providers=providers,
                                                     disabled_optimizers=KEEP_FLOAT_OFF)
                self.options["disabled_optimizers"] = list(KEEP_FLOAT_OFF)
        except Exception as exc:  # onnxruntime raises its own exception types for corrupt files
            raise ArtifactError(load_failure(model_path, exc, shown_as)) from None
        self._input = self._session.get_inputs()[0].name
        # samples first inside edgekd, each input's own batch axis here (a recurrent state's, a 0-d shared input)
        self._axes = batch_axes({i.name: i.shape for i in self._session.get_inputs()})
        self.options["providers"] = self._session.get_providers()

    def run(self, batch: np.ndarray | dict[str, np.ndarray]) -> np.ndarray:
        """Logits for one batch: an array for the model's one input, or {input name: array} for several."""
        return self._session.run(None, self._feed(batch))[0]

    def run_outputs(self, batch: np.ndarray | dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Every output of one batch, by name: a fidelity task compares each with the fp32 model's."""
        names = [output.name for output in self._session.get_outputs()]
        return dict(zip(names, self._session.run(None, self._feed(batch))))

    def _feed(self, batch) -> dict[str, np.ndarray]:
        return to_model(batch, self._axes) if isinstance(batch, dict) else {self._input: batch}

    def output_batch_axes(self) -> dict[str, int]:
        """Per output, the axis that holds the samples: where the first input's named batch dimension appears in the
        output's shape (a recurrent state [2, batch, H] has it at 1); 0 where the graph does not say."""
        shape = self._session.get_inputs()[0].shape
        batch = shape[0] if shape and isinstance(shape[0], str) else None
        return {output.name: output.shape.index(batch) if batch in (output.shape or []) else 0
                for output in self._session.get_outputs()}

    def threads_used(self) -> int | None:
        try:
            return int(self._session.get_session_options().intra_op_num_threads)
        except Exception:  # a build without the property: unknown, not an error
            return None

    def runtime_latency_ms(self) -> float | None:
        return None


class OrtBackend(Backend):
    name = "ort"
    runtime_module = "onnxruntime"
    # dynamic int8 (MatMulInteger) or weight-only MatMulNBits, 8 or 4 bits (decoder_quantize.py)
    decoder_methods = DECODER_METHODS
    extra = "ort"
    pip_packages = "onnxruntime"
    # The CPU provider has no fast fp16/bf16 kernels: such models only add casts.
    float_precisions = ("fp32",)

    def compile(self, onnx_path: Path, precision: str, profile, out_dir: Path, input_spec: dict | None = None) -> Artifact:
        self.require()
        out_dir.mkdir(parents=True, exist_ok=True)
        # A model saved with external data brings its .data file(s): the bundle lists and hashes them with the model.
        written = copy_onnx(Path(onnx_path), out_dir / "model.onnx")
        return Artifact(self.name, precision, out_dir, "model.onnx", [p.relative_to(out_dir).as_posix() for p in written],
                        runtime_options={"threads": profile.threads, "providers": ["CPUExecutionProvider"],
                                         "session_options": session_options(profile.threads)})

    def decoder(self, path: Path, threads: int | None = None):
        return OnnxDecoder(path, threads)

    def retarget(self, artifact: Artifact, profile) -> Artifact:
        artifact.runtime_options.update(threads=profile.threads, session_options=session_options(profile.threads))
        return artifact

    def quantize_decoder(self, fp32_onnx: Path, folder: Path, method: str, options, made: dict[Path, list[Path]]) -> dict:
        from edgekd.runtimes.decoder_quantize import quantize_decoder

        if method == "none":
            return {"method": "none", "runtime": self.runtime_module}
        reduce_range = options.reduce_range and method == "dynamic"
        path = folder / f"student-{method}{'-7bit' if reduce_range else ''}.onnx"
        if path not in made:
            made[path] = [quantize_decoder(fp32_onnx, path, method, reduce_range=reduce_range, block_size=options.block_size)]
        # the weights' bits and grouping, which the reports show beside the candidate's name (int8 whatever its bits)
        grouping = {"block_size": options.block_size} if method.startswith("nbits") else {}
        return {"method": method, "runtime": self.runtime_module, "reduce_range": reduce_range, "file": path.name,
                "bytes": path.stat().st_size, "weight_bits": 4 if method == "nbits4" else 7 if reduce_range else 8, **grouping}

    def loaded_files(self, artifact: Artifact) -> list[Path]:
        """The model and its external-data file(s), if any (an .ort file is another way to load the same model)."""
        return [artifact.root / name for name in artifact.files if name not in self.built_files]

    def session(self, artifact: Artifact, threads: int | None = None) -> OrtSession:
        self.require()
        return OrtSession(artifact.root / artifact.main, threads or artifact.runtime_options.get("threads"))


class OrtArm64Backend(OrtBackend):
    """Same QDQ model plus an ORT-format file for mobile and minimal onnxruntime builds.

    The .ort file is saved the way onnxruntime's own converter does it for the "runtime" style:
    the graph at the basic optimisation level (portable), plus recorded runtime optimisations
    (the QDQ -> int8 kernel fusions) that a minimal build replays on the device. Without them a
    minimal build would run an int8 model as DequantizeLinear + float kernels. The NCHWc layout
    transformer is x86-specific and stays off.
    """

    name = "ort-arm64"
    built_files = ("model.ort",)
    file_roles = {".onnx": "ONNX model", ".ort": "ORT-format model (minimal onnxruntime builds)"}

    def compile(self, onnx_path: Path, precision: str, profile, out_dir: Path, input_spec: dict | None = None) -> Artifact:
        return self.build(super().compile(onnx_path, precision, profile, out_dir, input_spec))

    def build(self, artifact: Artifact, profile=None) -> Artifact:
        """(Re)write model.ort from model.onnx with this machine's onnxruntime, whose version it must match."""
        self.require()
        save_ort_format(artifact.root / "model.onnx", artifact.root / "model.ort")
        if "model.ort" not in artifact.files:
            artifact.files.append("model.ort")
        import onnxruntime

        artifact.notes["ort_format"] = {"file": "model.ort", "optimization_style": "runtime",
                                        "saved_level": "ORT_ENABLE_BASIC", "runtime_optimizations": "ORT_ENABLE_ALL",
                                        "target_platform": "arm", "onnxruntime": onnxruntime.__version__,
                                        # onnxruntime replays the recorded fusions only when asked (trusted models)
                                        "session_config": {"session.load_model_format": "ORT",
                                                           "session.enable_saved_runtime_optimizations": "1"}}
        return artifact


def save_ort_format(onnx_path: Path, ort_path: Path) -> Path:
    import onnxruntime as ort

    with atomic_path(ort_path) as tmp:
        _save_ort(ort, onnx_path, tmp)
    return ort_path


def _save_ort(ort, onnx_path: Path, ort_path: Path) -> None:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.optimized_model_filepath = str(ort_path)
    options.add_session_config_entry("session.save_model_format", "ORT")
    # "save": apply basic optimisations, record the higher-level ones for the device to replay.
    options.add_session_config_entry("optimization.minimal_build_optimizations", "save")
    # Record the int8 (S8) QDQ fusions as on ARM, as onnxruntime's converter does for --target_platform arm:
    # on an x86 build machine they are off by default, and the .ort file then replays only QGemm; its
    # convolutions run as DequantizeLinear + float Conv on the device (seen on aarch64, make arm64-check).
    options.add_session_config_entry("session.qdqisint8allowed", "1")
    ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"], disabled_optimizers=ORT_FORMAT_OFF)


# Graph transformers left out of the .ort file. NchwcTransformer: x86-specific layout. WeightBiasQuantization: it
# quantizes the float weight and bias of a Conv/Gemm that sits between Q/DQ pairs, i.e. a node that quantize_static
# kept in float (nodes_to_exclude: the accuracy-aware fallback's choice). In the "save" mode of minimal-build
# optimizations it writes a bias DequantizeLinear whose input count onnxruntime's own loader rejects ("The sum of input
# arg count is not equal to size of input defs in node (Conv@16_bias_dq)", onnxruntime 1.32, PP-OCR's mobile cls), and
# on the device the node would run in int8 with per-tensor weights anyway, not in the float the fallback chose.
ORT_FORMAT_OFF = ["NchwcTransformer", "WeightBiasQuantization"]
# In a session too, WeightBiasQuantization turns a Conv that the fallback kept in float back into an int8 QLinearConv
# with per-tensor weights: the fallback's measured accuracy was then that of a model it did not mean to build, and
# "kept N nodes in float" was not true on onnxruntime. runtimes/ptq.py marks such a model (FLOAT_NODES_KEY in the
# model's metadata); its sessions leave the transformer out. Not for every model: NNCF's leave biases in float and
# rely on it to fuse QLinearConv.
FLOAT_NODES_KEY = "edgekd.float_nodes"
KEEP_FLOAT_OFF = ["WeightBiasQuantization"]


class OnnxDecoder:
    """One step of an exported decoder (edgekd.lm.export) on onnxruntime."""

    def __init__(self, path: str | Path, threads: int | None = None):
        self.path = Path(path)
        if not self.path.is_file():
            raise ArtifactError(f"{self.path}: decoder ONNX file not found; export one with edgekd.lm.export.export_decoder")
        try:
            self.session = open_session(self.path, threads)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types for damaged files
            raise ArtifactError(f"{self.path}: onnxruntime cannot load it ({str(exc).splitlines()[0][:160]})") from None
        inputs = {item.name: item for item in self.session.get_inputs()}
        past = sorted(name for name in inputs if name.startswith("past_key_values."))
        if "input_ids" not in inputs or not past:
            raise ArtifactError(f"{self.path}: not a decoder with a KV cache (needs input_ids and past_key_values.N.key/value inputs)")
        self.past_names = [f"past_key_values.{i}.{kv}" for i in range(len(past) // 2) for kv in ("key", "value")]
        _, self.heads, _, self.head_size = inputs[self.past_names[0]].shape
        self.output_names = [item.name for item in self.session.get_outputs()]
        context = self.session.get_modelmeta().custom_metadata_map.get(CONTEXT_KEY)
        self.context = int(context) if context else None

    def empty_cache(self) -> list[np.ndarray]:
        return empty_kv_cache(len(self.past_names), self.heads, self.head_size)

    def step(self, new_ids: np.ndarray, cache: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        """Logits for each new token (batch 1) and the cache grown by them."""
        logits, *present = self.session.run(self.output_names, step_inputs(new_ids, cache, self.past_names))
        return logits[0], present


# The number types a model's inputs may declare, as onnxruntime names them: skl2onnx's to_onnx(model, DataFrame)
# types a float64 column as double and an integer one as int64, where edgekd holds a table's numbers as float32.
ORT_NUMBERS = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(int64)": np.int64, "tensor(int32)": np.int32}


def as_declared(values, ort_type: str, name: str, where: str) -> np.ndarray:
    """`values` in the number type the model's input declares (as they are for strings and other types); an integer
    input refuses a missing or fractional value in one line rather than casting it to a wrong number."""
    values, kind = np.asarray(values), ORT_NUMBERS.get(ort_type)
    if kind is None or values.dtype == kind:
        return values
    if np.issubdtype(kind, np.integer) and values.dtype.kind == "f":
        bad = ~np.isfinite(values) | (np.mod(np.nan_to_num(values), 1) != 0)
        if bad.any():
            raise ConfigError(f"{where}: the model's input '{name}' takes {np.dtype(kind).name}, but the column holds "
                              f"{values.reshape(-1)[np.flatnonzero(bad.reshape(-1))[0]]} (missing or fractional); convert the "
                              "model with a float input for it (skl2onnx: initial_types with FloatTensorType)")
    return values.astype(kind)
