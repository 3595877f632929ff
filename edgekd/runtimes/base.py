"""The contract every backend keeps: compile an ONNX model into an artifact, open a session on it."""
from __future__ import annotations

import importlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from edgekd.core.errors import ArtifactError, TargetError


@dataclass
class Artifact:
    """A compiled model in a folder: `files` are relative to `root`, `main` is the file to load."""

    backend: str
    precision: str
    root: Path
    main: str
    files: list[str]
    runtime_options: dict[str, Any] = field(default_factory=dict)
    rebuild_on_device: bool = False
    notes: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("root")
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any], root: Path) -> Artifact:
        """The artifact recorded in a manifest; its files must be relative paths that stay inside `root`."""
        missing = [k for k in ("backend", "precision", "main", "files") if k not in data]
        if missing:
            raise ArtifactError(f"{root}: the recorded artifact lacks {', '.join(missing)}; build it again")
        for name in [data["main"], *data["files"]]:
            if not isinstance(name, str) or Path(name).is_absolute() or ".." in Path(name).parts:
                raise ArtifactError(f"{root}: artifact file '{name}' is not a path inside the artifact folder; refused")
        from edgekd.runtimes.runtime_options import checked_runtime_options

        options = checked_runtime_options(data["backend"], data.get("runtime_options", {}), f"{Path(root) / 'manifest.json'}")
        return cls(root=Path(root), runtime_options=options,
                   rebuild_on_device=data.get("rebuild_on_device", False), notes=data.get("notes", {}),
                   **{k: data[k] for k in ("backend", "precision", "main", "files")})


class Session(Protocol):
    """An open model. The bench asks it, never the runtime objects inside it."""

    def run(self, batch: np.ndarray) -> np.ndarray: ...

    def threads_used(self) -> int | None:
        """The thread count the runtime reports for this session (0: onnxruntime's default); None: unknown."""
        ...

    def runtime_latency_ms(self) -> float | None:
        """The runtime's own timing of the last run(), for backends whose class sets runtime_clock; else None."""
        ...


class Backend:
    """Base class for backends. Subclasses set the class vars and implement compile() and session()."""

    name: ClassVar[str]
    runtime_module: ClassVar[str]
    extra: ClassVar[str]
    # The keys a target profile's runtime_options may set for this backend (others are refused, naming them)
    profile_options: ClassVar[tuple[str, ...]] = ()
    # int8 as signed and symmetric only (zero point 0), activations and weights: TensorRT's explicit quantization
    symmetric_int8_only: ClassVar[bool] = False
    # What a device installs to run the artifacts (the bundle README's pip line).
    pip_packages: ClassVar[str]
    # The model files the backend's artifacts hold, by suffix, with what each is (the report's file-set column);
    # other files (README, build scripts, timing caches) are not the model.
    file_roles: ClassVar[dict[str, str]] = {".onnx": "ONNX model"}
    # What the bundle README says when an artifact must be finished on the device (rebuild_on_device).
    rebuild_note: ClassVar[str] = "Finish the model on the device first: `edgekd compile .`"
    # Sessions time their own runs (Session.runtime_latency_ms), recorded beside the wall clock.
    runtime_clock: ClassVar[bool] = False
    # False where compile() can package the model without the runtime (TensorRT builds on the device).
    build_needs_runtime: ClassVar[bool] = True
    # Float precisions the runtime has real kernels for; others are not worth building as candidates.
    float_precisions: ClassVar[tuple[str, ...]] = ("fp32",)
    # Files build() makes on the device; `edgekd compile` does not require them to be intact beforehand.
    built_files: ClassVar[tuple[str, ...]] = ()
    # A language model's decoder (edgekd.lm) on this backend: the weight quantization methods it owns, its default
    # first (what quantize.method may name for such a target); empty: the backend does not run the decoder.
    decoder_methods: ClassVar[tuple[str, ...]] = ()

    def available(self) -> bool:
        return _import_problem(self.runtime_module) is None

    def unavailable_reason(self) -> str:
        problem = _import_problem(self.runtime_module)
        detail = f" ({problem})" if problem else ""
        return f"the {self.name} backend needs '{self.runtime_module}'{detail}: pip install 'edgekd[{self.extra}]'"

    def require(self) -> None:
        if not self.available():
            raise TargetError(self.unavailable_reason())

    def compile(self, onnx_path: Path, precision: str, profile, out_dir: Path, input_spec: dict | None = None) -> Artifact:
        raise NotImplementedError

    def session(self, artifact: Artifact, threads: int | None = None) -> Session:
        raise NotImplementedError

    def conversion_refusal(self, onnx_path: Path) -> str | None:
        """Why this runtime cannot read or convert the float ONNX file at all (a short reason), else None. Only such
        a refusal lets a target ship its profile's `fallback` runtime instead (pipeline/target_runtime.py), never a
        slower or less accurate result. None here: onnxruntime runs every file edgekd accepts (given_check.py)."""
        return None

    def decoder(self, path: Path, threads: int | None = None):
        """A language model's decoder session on `path` (runtimes/decoder.py), stepped token by token with its KV
        cache; only backends with decoder_methods run one."""
        raise TargetError(f"{path}: the {self.name} backend runs no language model decoder; use one of the onnxruntime "
                          "or OpenVINO targets")

    def decoder_files(self, model_file: Path) -> list[Path]:
        """The files a decoder session on `model_file` loads (what a bundle copies and a size counts): the file itself."""
        return [Path(model_file)]

    def quantize_decoder(self, fp32_onnx: Path, folder: Path, method: str, options, made: dict[Path, list[Path]]) -> dict:
        """A language model's exported decoder quantized by `method` (one of decoder_methods, or none) for a target on
        this backend (options: runtimes.decoder.DecoderOptions), written into `folder` once whichever targets share the
        file (`made`: main file -> its files): the target's entry of the quantize record (method, runtime, file, bytes,
        the settings; OpenVINO: its fp32 IR, fp32_file)."""
        raise TargetError(f"the {self.name} backend runs no language model decoder; use one of the onnxruntime or "
                          "OpenVINO targets")

    def loaded_files(self, artifact: Artifact) -> list[Path]:
        """The files a session opens on the device: the size compared across targets."""
        return [artifact.root / artifact.main]

    def parameter_count(self, model_file: Path) -> int | None:
        """Stored weights and biases in a model file, where the format is readable without torch; None: unknown.
        Raises ImportError when the reader (the onnx package, the runtime) is not installed."""
        if model_file.suffix == ".onnx":
            from edgekd.runtimes.onnx_graph import onnx_parameters

            return onnx_parameters(model_file)
        return None

    def retarget(self, artifact: Artifact, profile) -> Artifact:
        """The session settings another profile of this backend gives (`edgekd compile BUNDLE --target T`): its
        threads and runtime options; the model files stay as they are."""
        return artifact

    def build(self, artifact: Artifact, profile=None) -> Artifact:
        """Finish the artifact on the machine that will run it (`edgekd compile BUNDLE`).

        Most artifacts are portable and need nothing; backends whose output is tied to the
        device (TensorRT engines, ORT-format files) override this.
        """
        return artifact


def _import_problem(module: str) -> str | None:
    """Why `module` cannot be imported, or None. A real import, not find_spec: a broken install or a
    missing shared library is found but fails to import, and must get the install hint too."""
    try:
        importlib.import_module(module)
    except (ImportError, OSError) as exc:
        return str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
    return None
