"""TensorRT: profile -> builder settings, the trtexec line, the calls made to the builder API
(against a recording stand-in for the tensorrt module), and the on-device rebuild of a bundle.

The real engine build runs only where tensorrt and a CUDA GPU exist (marker `tensorrt`).
"""
from __future__ import annotations

import importlib.machinery
import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edgekd.cli import main as cli
from edgekd.device.bundle import verify_bundle, write_bundle
from edgekd.runtimes import load_profile
from edgekd.runtimes import tensorrt as trt_target
from edgekd.runtimes.tensorrt import BuildSettings, TensorRTBackend, build_engine, settings_from_profile, trtexec_command


def test_jetson_int8_settings_allow_fp16_and_cover_the_batch_range():
    settings = settings_from_profile(load_profile("jetson-orin"), "int8", "input", [3, 224, 224])
    assert (settings.int8, settings.fp16) == (True, True)
    assert settings.flags == ["FP16", "INT8"]
    assert (settings.min_batch, settings.opt_batch, settings.max_batch) == (1, 1, 8)
    assert settings.workspace_mb == 1024 and settings.builder_optimization_level == 3
    assert settings.shape(8) == (8, 3, 224, 224)


@pytest.mark.parametrize(("precision", "flags"), [("fp32", []), ("fp16", ["FP16"]), ("int8", ["FP16", "INT8"])])
def test_precision_to_builder_flags(precision, flags):
    assert settings_from_profile(load_profile("nvidia-gpu"), precision, "input", [3, 32, 32]).flags == flags


def test_int8_without_fp16_in_profile_keeps_float_layers_in_fp32():
    profile = load_profile("nvidia-gpu").model_copy(update={"precisions": ["int8", "fp32"]})
    assert settings_from_profile(profile, "int8", "input", [1, 8, 8]).flags == ["INT8"]


def test_nvidia_gpu_profile_options_reach_the_settings():
    settings = settings_from_profile(load_profile("nvidia-gpu"), "fp16", "input", [3, 32, 32])
    assert (settings.min_batch, settings.opt_batch, settings.max_batch, settings.workspace_mb) == (1, 8, 32, 4096)


def test_fixed_batch_export_pins_the_optimization_profile(tmp_path, monkeypatch):
    monkeypatch.setattr(TensorRTBackend, "can_build_here", lambda self: False)
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"onnx")
    artifact = TensorRTBackend().compile(onnx, "fp16", load_profile("nvidia-gpu"), tmp_path / "out",
                                         {"name": "input", "shape": [2, 3, 32, 32]})
    settings = artifact.runtime_options["build_settings"]
    assert (settings["min_batch"], settings["opt_batch"], settings["max_batch"]) == (2, 2, 2)


def test_trtexec_line_matches_the_settings():
    settings = settings_from_profile(load_profile("jetson-orin"), "int8", "input", [3, 224, 224])
    assert trtexec_command(settings) == (
        "trtexec --onnx=model.onnx --saveEngine=model.engine --minShapes=input:1x3x224x224 "
        "--optShapes=input:1x3x224x224 --maxShapes=input:8x3x224x224 --memPoolSize=workspace:1024M "
        "--builderOptimizationLevel=3 --timingCacheFile=timing.cache --fp16 --int8")


class _Recorder:
    """Stands in for every tensorrt object: records (object, method, args) and returns stand-ins."""

    def __init__(self, log: list, kind: str):
        self._log, self._kind = log, kind
        self.num_errors = 0
        self.builder_optimization_level = None

    def __getattr__(self, method):
        def call(*args, **kwargs):
            self._log.append((self._kind, method, args, kwargs))
            return _RESULTS.get(method, lambda log: _Recorder(log, method))(self._log)
        return call


_RESULTS = {
    "parse": lambda log: True,
    "build_serialized_network": lambda log: b"serialized-engine",
    "serialize": lambda log: b"timing-cache-v%d" % sum(1 for entry in log if entry[1] == "build_serialized_network"),
    "set_timing_cache": lambda log: True,
}


def _fake_tensorrt(log: list) -> types.ModuleType:
    module = types.ModuleType("tensorrt")
    module.__spec__ = importlib.machinery.ModuleSpec("tensorrt", None)
    module.__version__ = "10.0-stub"
    module.Logger = type("Logger", (), {"WARNING": 2, "__init__": lambda self, level: None})
    module.Builder = lambda logger: _Recorder(log, "builder")
    module.OnnxParser = lambda network, logger: _Recorder(log, "parser")
    module.BuilderFlag = types.SimpleNamespace(FP16="FP16", INT8="INT8")
    module.MemoryPoolType = types.SimpleNamespace(WORKSPACE="WORKSPACE")
    module.NetworkDefinitionCreationFlag = types.SimpleNamespace(STRONGLY_TYPED=1)
    return module


@pytest.fixture
def fake_trt(monkeypatch):
    log: list = []
    monkeypatch.setitem(sys.modules, "tensorrt", _fake_tensorrt(log))
    monkeypatch.setattr(trt_target, "cuda_available", lambda: True)
    return log


def _calls(log, method):
    return [entry for entry in log if entry[1] == method]


def test_strongly_typed_profile_drops_precision_flags(fake_trt, tmp_path):
    profile = load_profile("nvidia-gpu")
    profile = profile.model_copy(update={"runtime_options": {**profile.runtime_options, "strongly_typed": True}})
    settings = settings_from_profile(profile, "int8", "input", [3, 32, 32])
    assert settings.flags == [] and trtexec_command(settings).endswith("--stronglyTyped")
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"onnx")
    build_engine(onnx, settings, tmp_path / "model.engine", tmp_path / "timing.cache")
    assert _calls(fake_trt, "create_network")[0][2] == (1 << 1,) and not _calls(fake_trt, "set_flag")


def test_build_engine_calls_the_builder_api(fake_trt, tmp_path):
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"onnx")
    settings = settings_from_profile(load_profile("jetson-orin"), "int8", "input", [3, 32, 32])
    build_engine(onnx, settings, tmp_path / "model.engine", tmp_path / "timing.cache")
    assert [c[2] for c in _calls(fake_trt, "set_flag")] == [("FP16",), ("INT8",)]
    assert _calls(fake_trt, "set_shape")[0][2] == ("input", (1, 3, 32, 32), (1, 3, 32, 32), (8, 3, 32, 32))
    assert len(_calls(fake_trt, "add_optimization_profile")) == 1
    assert _calls(fake_trt, "create_network")[0][2] == (0,)  # weakly typed: FP16 and INT8 flags decide
    assert _calls(fake_trt, "set_memory_pool_limit")[0][2] == ("WORKSPACE", 1024 << 20)
    assert _calls(fake_trt, "create_timing_cache")[0][2] == (b"",)  # no cache yet: start empty
    assert _calls(fake_trt, "set_timing_cache")[0][3] == {"ignore_mismatch": False}
    assert (tmp_path / "model.engine").read_bytes() == b"serialized-engine"
    assert (tmp_path / "timing.cache").read_bytes() == b"timing-cache-v1"


def test_second_build_reuses_the_timing_cache(fake_trt, tmp_path):
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"onnx")
    settings = BuildSettings("input", [3, 8, 8], 1, 1, 4, fp16=True, int8=False, flags=["FP16"])
    for _ in range(2):
        build_engine(onnx, settings, tmp_path / "model.engine", tmp_path / "timing.cache")
    assert _calls(fake_trt, "create_timing_cache")[1][2] == (b"timing-cache-v1",)


def test_unparseable_onnx_is_one_clear_error(fake_trt, tmp_path, monkeypatch):
    from edgekd.core.errors import ArtifactError

    monkeypatch.setitem(_RESULTS, "parse", lambda log: False)
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"not onnx")
    with pytest.raises(ArtifactError, match="TensorRT cannot parse it"):
        build_engine(onnx, BuildSettings("input", [1], 1, 1, 1, False, False), tmp_path / "e", tmp_path / "c")


def _tensorrt_bundle(tmp_path: Path, onnx_path: Path) -> Path:
    """Compile for jetson-orin where no GPU is (the engine is left for the device) and bundle it."""
    artifact = TensorRTBackend().compile(onnx_path, "int8", load_profile("jetson-orin"), tmp_path / "compile",
                                         {"name": "input", "shape": ["batch", 1, 8, 8]})
    x = np.zeros((4, 1, 8, 8), np.float32)
    info = {"target": "jetson-orin", "rebuild_on_device": artifact.rebuild_on_device, "input": {"name": "input"}}
    return write_bundle(tmp_path / "bundle", artifact, x, np.zeros(4, np.int64), np.zeros((4, 10), np.float32), info)


def test_bundle_without_gpu_carries_onnx_settings_and_both_build_commands(tmp_path, monkeypatch):
    monkeypatch.setattr(TensorRTBackend, "can_build_here", lambda self: False)
    onnx = tmp_path / "qdq.onnx"
    onnx.write_bytes(b"onnx")
    bundle = _tensorrt_bundle(tmp_path, onnx)
    manifest = verify_bundle(bundle)
    assert manifest["rebuild_on_device"] is True
    assert {"model.onnx", "build_settings.json", "build_engine.sh"} <= {f["path"] for f in manifest["files"]}
    assert json.loads((bundle / "build_settings.json").read_text())["flags"] == ["FP16", "INT8"]
    script = (bundle / "build_engine.sh").read_text()
    assert "edgekd compile . --target jetson-orin" in script and "trtexec --onnx=model.onnx" in script
    assert manifest["artifact"]["runtime_options"]["edgekd_compile"] == "edgekd compile . --target jetson-orin"
    assert "edgekd compile ." in (bundle / "README.md").read_text()


def test_edgekd_compile_builds_the_engine_and_rehashes_the_manifest(tmp_path, monkeypatch):
    monkeypatch.setattr(TensorRTBackend, "can_build_here", lambda self: False)
    onnx = tmp_path / "qdq.onnx"
    onnx.write_bytes(b"onnx")
    bundle = _tensorrt_bundle(tmp_path, onnx)
    monkeypatch.undo()
    log: list = []
    monkeypatch.setitem(sys.modules, "tensorrt", _fake_tensorrt(log))
    monkeypatch.setattr(trt_target, "cuda_available", lambda: True)
    result = CliRunner().invoke(cli, ["compile", str(bundle), "--target", "nvidia-gpu"])
    assert result.exit_code == 0, result.output
    manifest = verify_bundle(bundle)  # every file, the new engine included, matches its sha256
    assert {"model.engine", "timing.cache"} <= {f["path"] for f in manifest["files"]}
    assert manifest["rebuild_on_device"] is False and manifest["artifact"]["main"] == "model.engine"
    assert manifest["artifact"]["runtime_options"]["build_settings"]["max_batch"] == 32  # nvidia-gpu's range
    assert "--maxShapes=input:32x1x8x8" in (bundle / "build_engine.sh").read_text()
    assert _calls(log, "set_shape")[0][2][3] == (32, 1, 8, 8)


def test_edgekd_compile_without_gpu_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr(TensorRTBackend, "can_build_here", lambda self: False)
    onnx = tmp_path / "qdq.onnx"
    onnx.write_bytes(b"onnx")
    bundle = _tensorrt_bundle(tmp_path, onnx)
    result = CliRunner().invoke(cli, ["compile", str(bundle)])
    assert result.exit_code == 2
    assert "needs tensorrt and a CUDA GPU" in result.output


def test_edgekd_compile_refuses_a_profile_of_another_backend(tmp_path, monkeypatch):
    monkeypatch.setattr(TensorRTBackend, "can_build_here", lambda self: False)
    onnx = tmp_path / "qdq.onnx"
    onnx.write_bytes(b"onnx")
    result = CliRunner().invoke(cli, ["compile", str(_tensorrt_bundle(tmp_path, onnx)), "--target", "intel-cpu"])
    assert result.exit_code == 2 and "pick a profile with backend tensorrt" in result.output


@pytest.mark.tensorrt
def test_engine_built_here_matches_onnxruntime(tiny_model, reference, tmp_path):
    backend = TensorRTBackend()
    if not backend.can_build_here():
        pytest.skip("needs tensorrt and a CUDA GPU" if backend.available() else backend.unavailable_reason())
    artifact = backend.compile(tiny_model.int8, "int8", load_profile("nvidia-gpu"), tmp_path, tiny_model.input_spec)
    assert (tmp_path / "model.engine").is_file() and (tmp_path / "timing.cache").is_file()
    got = backend.session(artifact).run(np.ascontiguousarray(tiny_model.eval_x[:32]))
    assert (got.argmax(1) == reference[:32].argmax(1)).mean() >= 0.95


class _FakeCudaRuntime(types.ModuleType):
    """cuda.bindings.runtime on host memory: 'device' buffers are ctypes buffers, copies are memmove."""

    class cudaMemcpyKind:  # noqa: N801 - mirrors the cuda-python name
        cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost = 1, 2

    def __init__(self):
        super().__init__("cuda.bindings.runtime")
        self.buffers, self.mallocs, self.freed = {}, 0, 0

    def cudaStreamCreate(self):  # noqa: N802
        return 0, 77

    def cudaMalloc(self, size):  # noqa: N802
        import ctypes

        buffer = ctypes.create_string_buffer(size)
        self.buffers[ctypes.addressof(buffer)] = buffer
        self.mallocs += 1
        return 0, ctypes.addressof(buffer)

    def cudaMemcpyAsync(self, dst, src, size, kind, stream):  # noqa: N802
        import ctypes

        ctypes.memmove(dst, src, size)
        return (0,)

    def cudaStreamSynchronize(self, stream):  # noqa: N802
        return (0,)

    def cudaFree(self, ptr):  # noqa: N802
        self.freed += 1
        return (0,)


class _FakeContext:
    """An 'engine' that sums each sample's inputs into 3 logits: out[b, k] = (k + 1) * sum(x[b])."""

    def __init__(self):
        self.shapes, self.addresses = {}, {}

    def set_input_shape(self, name, shape):
        self.shapes[name] = tuple(shape)

    def get_tensor_shape(self, name):
        return (self.shapes["input"][0], 3)

    def set_tensor_address(self, name, address):
        self.addresses[name] = address

    def execute_async_v3(self, stream):
        import ctypes

        batch = self.shapes["input"]
        count = int(np.prod(batch))
        x = np.ctypeslib.as_array((ctypes.c_float * count).from_address(self.addresses["input"])).reshape(batch)
        out = np.ctypeslib.as_array((ctypes.c_float * (batch[0] * 3)).from_address(self.addresses["logits"]))
        out[:] = (x.reshape(batch[0], -1).sum(1)[:, None] * np.arange(1, 4)).ravel()
        return stream == 77


def test_session_moves_data_through_reused_device_buffers(monkeypatch, tmp_path):
    from edgekd.runtimes.tensorrt import TensorRTSession

    cudart = _FakeCudaRuntime()
    cuda, bindings = types.ModuleType("cuda"), types.ModuleType("cuda.bindings")
    cuda.bindings, bindings.runtime = bindings, cudart
    monkeypatch.setitem(sys.modules, "cuda", cuda)
    monkeypatch.setitem(sys.modules, "cuda.bindings", bindings)
    monkeypatch.setitem(sys.modules, "cuda.bindings.runtime", cudart)
    trt = _fake_tensorrt([])
    context = _FakeContext()
    engine = types.SimpleNamespace(num_io_tensors=2, get_tensor_name=["input", "logits"].__getitem__,
                                   get_tensor_mode=lambda n: "IN" if n == "input" else "OUT",
                                   create_execution_context=lambda: context)
    trt.Runtime = lambda logger: types.SimpleNamespace(deserialize_cuda_engine=lambda data: engine)
    trt.TensorIOMode = types.SimpleNamespace(INPUT="IN", OUTPUT="OUT")
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    (tmp_path / "model.engine").write_bytes(b"engine")
    session = TensorRTSession(tmp_path / "model.engine")
    x = np.arange(2 * 1 * 2 * 2, dtype=np.float32).reshape(2, 1, 2, 2)
    for _ in range(3):
        np.testing.assert_allclose(session.run(x), [[6, 12, 18], [22, 44, 66]])
    assert cudart.mallocs == 2  # one input and one output buffer, reused across runs
    session.run(x[:1])
    assert cudart.mallocs == 4  # a new batch size gets its own buffers
    del session
    assert cudart.freed == 4


def test_session_ignores_an_engine_the_artifact_does_not_record(tmp_path):
    """An engine dropped beside a bundle built for the device is not in the hashed file list: never loaded."""
    (tmp_path / "model.engine").write_bytes(b"someone else's engine")
    artifact = trt_target.Artifact("tensorrt", "int8", tmp_path, "model.onnx", ["model.onnx"], rebuild_on_device=True)
    with pytest.raises(trt_target.TargetError, match="no TensorRT engine yet"):
        TensorRTBackend().session(artifact)
