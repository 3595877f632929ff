"""onnxruntime targets: x86 CPU (`ort`) and ARM CPUs (`ort-arm64`, which also ships an .ort file)."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from ..errors import ArtifactError
from .base import Artifact, Backend


class OrtSession:
    def __init__(self, model_path: Path, threads: int | None, providers: list[str] | None = None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self._session = ort.InferenceSession(str(model_path), options, providers=providers or ["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for corrupt files
            raise ArtifactError(f"{model_path}: onnxruntime cannot load it ({str(exc).splitlines()[0][:160]}); "
                                "the file is corrupt or not ONNX: export or bundle it again") from None
        self._input = self._session.get_inputs()[0].name
        self.options = {"intra_op_num_threads": threads, "graph_optimization_level": "ORT_ENABLE_ALL",
                        "providers": self._session.get_providers()}

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self._session.run(None, {self._input: batch})[0]


class OrtBackend(Backend):
    name = "ort"
    runtime_module = "onnxruntime"
    extra = "ort"

    def compile(self, onnx_path: Path, precision: str, profile, out_dir: Path, input_spec: dict | None = None) -> Artifact:
        self.require()
        out_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(onnx_path, out_dir / "model.onnx")
        return Artifact(self.name, precision, out_dir, "model.onnx", ["model.onnx"],
                        runtime_options={"graph_optimization_level": "ORT_ENABLE_ALL", "threads": profile.threads})

    def session(self, artifact: Artifact, threads: int | None = None) -> OrtSession:
        self.require()
        return OrtSession(artifact.root / artifact.main, threads or artifact.runtime_options.get("threads"))


class OrtArm64Backend(OrtBackend):
    """Same QDQ model plus an ORT-format file for mobile and minimal onnxruntime builds.

    The .ort file is saved at the basic optimisation level: higher levels bake in kernels
    specific to the build machine's CPU, and the file would no longer be portable to ARM.
    """

    name = "ort-arm64"

    def compile(self, onnx_path: Path, precision: str, profile, out_dir: Path, input_spec: dict | None = None) -> Artifact:
        artifact = super().compile(onnx_path, precision, profile, out_dir, input_spec)
        save_ort_format(out_dir / "model.onnx", out_dir / "model.ort")
        artifact.files.append("model.ort")
        artifact.notes["ort_format"] = {"file": "model.ort", "optimization_level": "ORT_ENABLE_BASIC"}
        return artifact


def save_ort_format(onnx_path: Path, ort_path: Path) -> Path:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(ort_path)
    options.add_session_config_entry("session.save_model_format", "ORT")
    ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    return ort_path
