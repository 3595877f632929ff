"""TensorRT target (NVIDIA GPUs, Jetson) through the tensorrt Python API, explicit quantization.

Engines are tied to the GPU and TensorRT version that built them. So a bundle always carries the
(QDQ) ONNX, the build settings as JSON, and the equivalent `trtexec` line; the engine is built on
the device by `edgekd compile --target <profile> BUNDLE` (or here, when tensorrt and CUDA exist).
"""
from __future__ import annotations

import json
import shlex
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edgekd.core.errors import ArtifactError, TargetError
from edgekd.core.fileio import atomic_path, write_json_atomic, write_text_atomic
from edgekd.runtimes.base import Artifact, Backend
from edgekd.runtimes.onnx_graph import copy_onnx


@dataclass
class BuildSettings:
    """Everything the builder needs, derived from a profile; JSON-serialisable for the bundle."""

    input_name: str
    input_shape: list[int]  # without the batch dimension
    min_batch: int
    opt_batch: int
    max_batch: int
    fp16: bool
    int8: bool
    workspace_mb: int = 1024
    builder_optimization_level: int = 3
    timing_cache: str = "timing.cache"
    strongly_typed: bool = False
    flags: list[str] = field(default_factory=list)

    def shape(self, batch: int) -> tuple[int, ...]:
        return (batch, *self.input_shape)


def settings_from_profile(profile, precision: str, input_name: str, input_shape: list[int],
                          fixed_batch: int | None = None) -> BuildSettings:
    """`fixed_batch`: the ONNX file was exported without a dynamic batch, so that is the only shape."""
    batches = [fixed_batch] if fixed_batch else sorted(profile.batch_sizes)
    options = profile.runtime_options
    # int8 here means explicit quantization: the QDQ nodes carry the scales, TensorRT fuses them.
    # fp16 stays allowed alongside so layers left in float run in half precision.
    fp16 = precision in ("fp16", "int8") and "fp16" in profile.precisions
    settings = BuildSettings(
        input_name=input_name, input_shape=list(input_shape), min_batch=batches[0],
        opt_batch=fixed_batch or int(options.get("opt_batch", batches[0])), max_batch=batches[-1],
        fp16=fp16, int8=precision == "int8", workspace_mb=int(options.get("workspace_mb", 1024)),
        builder_optimization_level=int(options.get("builder_optimization_level", 3)),
        strongly_typed=bool(options.get("strongly_typed", False)),
    )
    # A strongly typed network takes every tensor's type from the ONNX file (TensorRT's recommended
    # mode for explicit quantization); precision flags are then not allowed.
    if not settings.strongly_typed:
        settings.flags = [name for name, on in (("FP16", settings.fp16), ("INT8", settings.int8)) if on]
    return settings


def trtexec_command(settings: BuildSettings, onnx: str = "model.onnx", engine: str = "model.engine") -> str:
    dims = lambda b: "x".join(str(d) for d in settings.shape(b))  # noqa: E731
    parts = ["trtexec", f"--onnx={onnx}", f"--saveEngine={engine}",
             f"--minShapes={settings.input_name}:{dims(settings.min_batch)}",
             f"--optShapes={settings.input_name}:{dims(settings.opt_batch)}",
             f"--maxShapes={settings.input_name}:{dims(settings.max_batch)}",
             f"--memPoolSize=workspace:{settings.workspace_mb}M",
             f"--builderOptimizationLevel={settings.builder_optimization_level}",
             f"--timingCacheFile={settings.timing_cache}"]
    parts += ["--stronglyTyped"] if settings.strongly_typed else [f"--{flag.lower()}" for flag in settings.flags]
    return " ".join(shlex.quote(p) for p in parts)


def cuda_available() -> bool:
    try:
        from cuda.bindings import runtime as cudart  # cuda-python
    except ImportError:
        return False
    err, count = cudart.cudaGetDeviceCount()
    return int(err) == 0 and count > 0


def build_engine(onnx_path: Path, settings: BuildSettings, engine_path: Path, cache_path: Path) -> Path:
    """Build a serialized engine with the tensorrt API, reusing and updating the timing cache."""
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    # TensorRT 10: explicit batch is the only mode; strong typing is the one creation flag left.
    creation = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if settings.strongly_typed else 0
    network = builder.create_network(creation)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ArtifactError(f"{onnx_path}: TensorRT cannot parse it ({errors[:200]})")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, settings.workspace_mb << 20)
    config.builder_optimization_level = settings.builder_optimization_level
    for flag in settings.flags:
        config.set_flag(getattr(trt.BuilderFlag, flag))
    profile = builder.create_optimization_profile()
    profile.set_shape(settings.input_name, settings.shape(settings.min_batch),
                      settings.shape(settings.opt_batch), settings.shape(settings.max_batch))
    config.add_optimization_profile(profile)
    cache = config.create_timing_cache(cache_path.read_bytes() if cache_path.is_file() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ArtifactError(f"{onnx_path}: TensorRT failed to build an engine with flags {settings.flags}")
    with atomic_path(engine_path) as tmp:
        tmp.write_bytes(bytes(serialized))
    with atomic_path(cache_path) as tmp:
        tmp.write_bytes(bytes(config.get_timing_cache().serialize()))
    return engine_path


class TensorRTSession:
    """Runs an engine with device buffers from cuda-python; no torch needed on the device.

    Device buffers are allocated once per input shape and reused, so latency measures inference,
    not cudaMalloc.
    """

    def __init__(self, engine_path: Path):
        import tensorrt as trt
        from cuda.bindings import runtime as cudart

        self._cudart = cudart
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self._engine = runtime.deserialize_cuda_engine(Path(engine_path).read_bytes())
        if self._engine is None:
            raise ArtifactError(f"{engine_path}: TensorRT cannot load this engine; rebuild it on this device with edgekd compile")
        self._context = self._engine.create_execution_context()
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        self._input = next(n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT)
        self._output = next(n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT)
        self._stream = self._call(cudart.cudaStreamCreate())
        self._buffers: dict[tuple, tuple[int, int, tuple]] = {}

    def _call(self, result):
        """cuda-python returns (error, *values); turn an error into one clear line."""
        err, *values = result
        if int(err) != 0:
            raise ArtifactError(f"CUDA call failed: {self._cudart.cudaGetErrorString(err)[1]!r}")
        return values[0] if len(values) == 1 else values

    def _buffers_for(self, batch: np.ndarray) -> tuple[int, int, tuple]:
        if batch.shape not in self._buffers:
            self._context.set_input_shape(self._input, batch.shape)
            out_shape = tuple(self._context.get_tensor_shape(self._output))
            d_in = self._call(self._cudart.cudaMalloc(batch.nbytes))
            d_out = self._call(self._cudart.cudaMalloc(int(np.prod(out_shape)) * 4))
            self._buffers[batch.shape] = (int(d_in), int(d_out), out_shape)
        return self._buffers[batch.shape]

    def run(self, batch: np.ndarray) -> np.ndarray:
        cudart, kind = self._cudart, self._cudart.cudaMemcpyKind
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        d_in, d_out, out_shape = self._buffers_for(batch)
        out = np.empty(out_shape, dtype=np.float32)
        self._context.set_input_shape(self._input, batch.shape)
        self._context.set_tensor_address(self._input, d_in)
        self._context.set_tensor_address(self._output, d_out)
        self._call(cudart.cudaMemcpyAsync(d_in, batch.ctypes.data, batch.nbytes, kind.cudaMemcpyHostToDevice, self._stream))
        if not self._context.execute_async_v3(int(self._stream)):
            raise ArtifactError("TensorRT failed to run the engine on this batch")
        self._call(cudart.cudaMemcpyAsync(out.ctypes.data, d_out, out.nbytes, kind.cudaMemcpyDeviceToHost, self._stream))
        self._call(cudart.cudaStreamSynchronize(self._stream))
        return out

    def threads_used(self) -> int | None:
        return None  # a GPU engine: no CPU thread setting

    def runtime_latency_ms(self) -> float | None:
        return None

    def __del__(self):
        for d_in, d_out, _ in getattr(self, "_buffers", {}).values():
            self._cudart.cudaFree(d_in)
            self._cudart.cudaFree(d_out)


class TensorRTBackend(Backend):
    name = "tensorrt"
    runtime_module = "tensorrt"
    profile_options = ("workspace_mb", "builder_optimization_level", "opt_batch", "strongly_typed")
    symmetric_int8_only = True
    extra = "tensorrt"
    pip_packages = "tensorrt cuda-python"
    rebuild_note = "The TensorRT engine must be built on the device first: `edgekd compile .` (or the trtexec line in `build_engine.sh`)"
    # Before the engine is built on the device, the bundle's model is its QDQ ONNX.
    file_roles = {".onnx": "ONNX model", ".engine": "TensorRT engine", ".plan": "TensorRT engine"}
    build_needs_runtime = False  # without tensorrt here, the bundle carries the ONNX and builds on the device
    float_precisions = ("fp32", "fp16")
    built_files = ("model.engine", "timing.cache")

    def can_build_here(self) -> bool:
        return self.available() and cuda_available()

    def compile(self, onnx_path: Path, precision: str, profile, out_dir: Path, input_spec: dict | None = None) -> Artifact:
        if input_spec is None:
            raise TargetError("tensorrt compile needs the model's input spec (name and shape)")
        out_dir.mkdir(parents=True, exist_ok=True)
        written = copy_onnx(Path(onnx_path), out_dir / "model.onnx")  # with its external-data file(s), if any
        batch = input_spec["shape"][0]
        settings = settings_from_profile(profile, precision, input_spec["name"], input_spec["shape"][1:],
                                         fixed_batch=batch if isinstance(batch, int) else None)
        self._write_recipe(out_dir, settings, profile.name)
        files = [*(p.relative_to(out_dir).as_posix() for p in written), "build_settings.json", "build_engine.sh"]
        artifact = Artifact(self.name, precision, out_dir, "model.onnx", files, rebuild_on_device=True,
                            runtime_options={"build_settings": asdict(settings), "trtexec": trtexec_command(settings),
                                             "edgekd_compile": f"edgekd compile . --target {profile.name}"})
        if self.can_build_here():
            self.build(artifact)
        return artifact

    def build(self, artifact: Artifact, profile=None) -> Artifact:
        """Build (or rebuild) the engine next to the ONNX file, on this machine.

        With `profile`, the build settings are derived afresh from it (another batch range or
        workspace for this device); otherwise the settings recorded at compile time are used.
        """
        if not self.can_build_here():
            raise TargetError("building a TensorRT engine needs tensorrt and a CUDA GPU: "
                              "pip install 'edgekd[tensorrt]' on the device")
        settings = BuildSettings(**artifact.runtime_options["build_settings"])
        if profile is not None:
            settings = settings_from_profile(profile, artifact.precision, settings.input_name, settings.input_shape)
            self._write_recipe(artifact.root, settings, profile.name)
        root = artifact.root
        build_engine(root / "model.onnx", settings, root / "model.engine", root / settings.timing_cache)
        for name in ("model.engine", settings.timing_cache):
            if name not in artifact.files:
                artifact.files.append(name)
        artifact.runtime_options.update(build_settings=asdict(settings), trtexec=trtexec_command(settings))
        artifact.notes["engine_built_with"] = {"tensorrt": _trt_version()}
        artifact.main, artifact.rebuild_on_device = "model.engine", False
        return artifact

    @staticmethod
    def _write_recipe(folder: Path, settings: BuildSettings, profile_name: str) -> None:
        """build_settings.json and build_engine.sh: how to (re)build the engine on the device."""
        write_json_atomic(folder / "build_settings.json", asdict(settings))
        write_text_atomic(folder / "build_engine.sh", "#!/bin/sh\n# Build the engine on the device (either line):\n"
                          f"# edgekd compile . --target {profile_name}\n{trtexec_command(settings)}\n")

    def session(self, artifact: Artifact, threads: int | None = None) -> TensorRTSession:
        # Only an engine the artifact records (and a bundle's manifest hashes) is loaded, never one dropped beside it.
        if "model.engine" not in artifact.files or not (artifact.root / "model.engine").is_file():
            raise TargetError(f"{artifact.root}: no TensorRT engine yet; build it on the device: edgekd compile {artifact.root}")
        self.require()
        return TensorRTSession(artifact.root / "model.engine")


def _trt_version() -> str:
    import tensorrt as trt

    return getattr(trt, "__version__", "unknown")


def load_settings(path: Path) -> BuildSettings:
    return BuildSettings(**json.loads(Path(path).read_text()))
