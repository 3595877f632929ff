"""The runtime options an artifact's manifest may carry, per backend: a fixed list of keys and values.

A bundle's manifest.json is data from wherever the bundle came from. Its `runtime_options` reach the runtime
(OpenVINO's compile_model config, onnxruntime's session options, TensorRT's build settings), and runtimes accept
options that write files (OpenVINO's CACHE_DIR puts a .blob anywhere) or load code. So only the options edgekd
itself records are accepted, with typed values, and no value is a path. pydantic (extra="forbid", strict types)
does the checking; lean enough for the device (no torch).
"""
from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edgekd.core.errors import ArtifactError

_THREADS = Field(None, ge=0, le=4096)


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class _OrtSession(_Options):
    intra_op_num_threads: int = Field(0, ge=0, le=4096)
    inter_op_num_threads: int = Field(0, ge=0, le=4096)
    graph_optimization_level: Literal["ORT_DISABLE_ALL", "ORT_ENABLE_BASIC", "ORT_ENABLE_EXTENDED",
                                      "ORT_ENABLE_ALL"] = "ORT_ENABLE_ALL"
    execution_mode: Literal["ORT_SEQUENTIAL", "ORT_PARALLEL"] = "ORT_SEQUENTIAL"
    providers: Optional[list[Literal["CPUExecutionProvider", "CUDAExecutionProvider"]]] = None


class _Ort(_Options):
    threads: Optional[int] = Field(None, ge=1, le=4096)
    providers: list[Literal["CPUExecutionProvider", "CUDAExecutionProvider"]] = ["CPUExecutionProvider"]
    session_options: Optional[_OrtSession] = None


class _OpenVinoConfig(_Options):
    INFERENCE_PRECISION_HINT: Optional[Literal["f32", "bf16", "f16"]] = None
    PERFORMANCE_HINT: Optional[Literal["LATENCY", "THROUGHPUT", "CUMULATIVE_THROUGHPUT"]] = None
    INFERENCE_NUM_THREADS: Optional[int] = _THREADS


class _OpenVino(_Options):
    device: Literal["CPU", "GPU", "NPU"] = "CPU"
    config: _OpenVinoConfig = Field(default_factory=_OpenVinoConfig)
    compress_to_fp16: bool = False


class _TensorRTBuild(_Options):
    input_name: str = Field(..., pattern=r"^[A-Za-z0-9_.:-]{1,128}$")
    input_shape: list[int] = Field(..., max_length=8)
    min_batch: int = Field(..., ge=1, le=65536)
    opt_batch: int = Field(..., ge=1, le=65536)
    max_batch: int = Field(..., ge=1, le=65536)
    fp16: bool
    int8: bool
    workspace_mb: int = Field(1024, ge=1, le=1 << 20)
    builder_optimization_level: int = Field(3, ge=0, le=5)
    timing_cache: str = Field("timing.cache", pattern=r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$")  # a name in the bundle, not a path
    strongly_typed: bool = False
    flags: list[Literal["FP16", "INT8"]] = []


class _TensorRT(_Options):
    build_settings: _TensorRTBuild
    trtexec: Optional[str] = None  # shown to the user, never run by edgekd
    edgekd_compile: Optional[str] = None


_SCHEMAS: dict[str, type[_Options]] = {"ort": _Ort, "ort-arm64": _Ort, "openvino": _OpenVino, "tensorrt": _TensorRT}


def checked_runtime_options(backend: str, options: Any, where: str) -> dict[str, Any]:
    """`options` if every key and value is one edgekd writes for `backend`; else ArtifactError naming the key."""
    schema = _SCHEMAS.get(backend)
    if schema is None:  # an unknown backend is refused by the registry, with the list of known ones
        return options if isinstance(options, dict) else {}
    try:
        schema.model_validate(options)
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(["runtime_options", *(str(p) for p in error["loc"])])
        shown = repr(error.get("input"))[:80]
        if error["type"] == "extra_forbidden":
            problem = f"'{key}' is not an option edgekd sets for {backend} (options from a manifest are data: a fixed list)"
        else:
            problem = f"'{key}' = {shown}: {error['msg'].lower()}"
        raise ArtifactError(f"{where}: {problem}; refused: bundle it again with edgekd") from None
    return options
