"""OpenVINO target: IR (.xml + .bin) from openvino.convert_model, run on the CPU plugin.

INFERENCE_PRECISION_HINT is always set explicitly and recorded: on CPUs with AMX or AVX512-BF16,
OpenVINO otherwise silently runs "fp32" models in bf16.
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from edgekd.core.batch_layout import batch_axes, to_model
from edgekd.core.errors import ArtifactError, openvino_reason
from edgekd.core.fileio import atomic_files
from edgekd.runtimes.base import Artifact, Backend
from edgekd.runtimes.decoder import CONTEXT_INFO, empty_kv_cache, step_inputs
from edgekd.runtimes.openvino_convert import OV_METHODS

_HINTS = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}


def _session_config(precision: str, profile) -> dict:
    """The compiled model's settings a profile gives: precision hint, performance hint and threads."""
    config = {"INFERENCE_PRECISION_HINT": precision_hint(precision, profile),
              "PERFORMANCE_HINT": profile.runtime_options.get("performance_hint", "LATENCY")}
    if profile.threads:
        config["INFERENCE_NUM_THREADS"] = profile.threads
    return config


def precision_hint(precision: str, profile) -> str:
    if precision == "int8":
        # Layers left in float inside a QDQ model run at this precision.
        return profile.runtime_options.get("int8_inference_precision", "f32")
    return _HINTS[precision]


def openvino_core():
    """A new openvino.Core: the one door by which code outside runtimes/ reaches OpenVINO's runtime
    (tests/test_import_contracts.py)."""
    import openvino as ov

    return ov.Core()


class OpenVinoSession:
    def __init__(self, xml_path: Path, config: dict, device: str = "CPU"):
        import openvino as ov

        try:
            compiled = openvino_core().compile_model(str(xml_path), device, config)
        except Exception as exc:  # OpenVINO raises RuntimeError subclasses, for bad IR and for missing kernels alike
            hint = config.get("INFERENCE_PRECISION_HINT", "default")
            raise ArtifactError(f"{xml_path}: OpenVINO cannot compile it for {device} at precision hint {hint} "
                                f"({openvino_reason(exc)}); if the file is corrupt or from another OpenVINO, bundle it "
                                "again, otherwise try another precision") from None
        self._request = compiled.create_infer_request()
        # samples first inside edgekd, each input's own batch axis here (core/batch_layout.py)
        self._axes = batch_axes({i.get_any_name(): [None if d.is_dynamic else d.get_length() for d in i.get_partial_shape()]
                                 for i in compiled.inputs})
        self._tensor = ov.Tensor

    def run(self, batch: np.ndarray) -> np.ndarray:
        # A zero-copy input tensor and a bare infer(): infer({0: batch}) converts its argument on every
        # call, ~35 us on a 2-core Xeon, which is most of a small model's latency (benchmark_app does not
        # pay it either). The output is copied because the request reuses its buffer on the next call.
        if isinstance(batch, dict):  # several named inputs
            for name, array in to_model(batch, self._axes).items():
                # np.require, not ascontiguousarray: that one turns a 0-d input (Silero VAD's sr) into shape (1,)
                self._request.set_tensor(name, self._tensor(np.require(array, requirements="C"), shared_memory=True))
        else:
            self._request.set_input_tensor(0, self._tensor(np.ascontiguousarray(batch), shared_memory=True))
        self._request.infer()
        return self._request.get_output_tensor(0).data.copy()

    def run_outputs(self, batch: np.ndarray | dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Every output of one batch, by the name the ONNX file gave it (a fidelity task compares each)."""
        self.run(batch)
        return {output.get_any_name(): self._request.get_output_tensor(index).data.copy()
                for index, output in enumerate(self._request.model_outputs)}

    def runtime_latency_ms(self) -> float:
        """OpenVINO's own timing of the last infer() (InferRequest.latency, ms): what benchmark_app reports.
        The bench records it beside the wall-clock time, which also counts the Python call and copies."""
        return float(self._request.latency)

    def threads_used(self) -> int | None:
        try:
            return int(self._request.get_compiled_model().get_property("INFERENCE_NUM_THREADS"))
        except Exception:  # a plugin without the property: unknown, not an error
            return None


class OpenVinoBackend(Backend):
    name = "openvino"
    runtime_module = "openvino"
    profile_options = ("performance_hint", "int8_inference_precision", "compress_to_fp16")
    # NNCF weight compression of the decoder's IR (openvino_convert.py)
    decoder_methods = OV_METHODS
    extra = "openvino"
    pip_packages = "openvino"
    file_roles = {".xml": "OpenVINO IR graph", ".bin": "OpenVINO IR weights"}
    runtime_clock = True
    float_precisions = ("fp32", "fp16", "bf16")  # via INFERENCE_PRECISION_HINT

    def decoder(self, path: Path, threads: int | None = None):
        return OpenVinoDecoder(path, threads)

    def decoder_files(self, model_file: Path) -> list[Path]:
        """The IR's graph and its weights beside it under the same name (where OpenVINO looks for them)."""
        return [Path(model_file), Path(model_file).with_suffix(".bin")]

    def quantize_decoder(self, fp32_onnx: Path, folder: Path, method: str, options, made: dict[Path, list[Path]]) -> dict:
        """The decoder as fp32 IR (the target's fp32 candidate, made even with method none) and, unless none, as IR
        with NNCF's weight compression."""
        from edgekd.runtimes.openvino_convert import Compression, convert_decoder, default_group_size

        fp32 = folder / "student-fp32-ov.xml"
        if fp32 not in made:
            made[fp32] = self.decoder_files(convert_decoder(fp32_onnx, fp32))
        entry = {"method": method, "runtime": self.runtime_module, "fp32_file": fp32.name}
        if method == "none":
            return entry
        path = folder / f"student-{method}.xml"
        # the group size used, recorded as such (None would leave the reports without it): the given one or the default
        group_size = (options.group_size or default_group_size(fp32_onnx)) if method == "ov_int4" else None
        if path not in made:
            compression = Compression(options.int4_mode, group_size, options.ratio)
            made[path] = self.decoder_files(convert_decoder(fp32_onnx, path, method, compression))
        settings = {"mode": "int8_asym", "weight_bits": 8} if method == "ov_int8" else \
            {"mode": f"int4_{options.int4_mode}", "group_size": group_size, "ratio": options.ratio, "weight_bits": 4}
        return {**entry, **settings, "file": path.name, "bytes": sum(p.stat().st_size for p in made[path])}

    def compile(self, onnx_path: Path, precision: str, profile, out_dir: Path, input_spec: dict | None = None) -> Artifact:
        self.require()
        import openvino as ov

        out_dir.mkdir(parents=True, exist_ok=True)
        # fp16 weights halve the .bin; an fp16 candidate always has them, others when the profile asks.
        compress = precision == "fp16" or (bool(profile.runtime_options.get("compress_to_fp16", False)) and precision != "int8")
        try:
            model = ov.convert_model(str(onnx_path))
        except Exception as exc:
            raise ArtifactError(f"{onnx_path}: OpenVINO cannot convert it ({openvino_reason(exc)})") from None
        with atomic_files(out_dir) as scratch:
            ov.save_model(model, str(scratch / "model.xml"), compress_to_fp16=compress)
        return Artifact(self.name, precision, out_dir, "model.xml", ["model.xml", "model.bin"],
                        runtime_options={"device": "CPU", "config": _session_config(precision, profile),
                                         "compress_to_fp16": compress})

    def retarget(self, artifact: Artifact, profile) -> Artifact:
        artifact.runtime_options["config"] = _session_config(artifact.precision, profile)
        return artifact

    def conversion_refusal(self, onnx_path: Path) -> str | None:
        """openvino.convert_model's reason for refusing the file (Silero VAD's nested If: "-- Conversion is failed for:
        Conv-16, ReduceMean-16"), or None; None too without OpenVINO here (CompileStage.check says so)."""
        if not self.available():
            return None
        stat = Path(onnx_path).stat()
        return _conversion_refusal(str(onnx_path), stat.st_size, stat.st_mtime_ns)

    def loaded_files(self, artifact: Artifact) -> list[Path]:
        main = artifact.root / artifact.main
        return [main, main.with_suffix(".bin")]  # the IR's graph and its weights

    def parameter_count(self, model_file: Path) -> int | None:
        return _openvino_parameters(model_file) if model_file.suffix == ".xml" else super().parameter_count(model_file)

    def session(self, artifact: Artifact, threads: int | None = None) -> OpenVinoSession:
        self.require()
        config = dict(artifact.runtime_options.get("config", {}))
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        return OpenVinoSession(artifact.root / artifact.main, config, artifact.runtime_options.get("device", "CPU"))


@functools.lru_cache(maxsize=8)
def _conversion_refusal(path: str, size: int, mtime_ns: int) -> str | None:
    """Cached by the file's size and time: every stage asks which runtime a target builds with, and a conversion
    takes seconds on a large model."""
    import openvino as ov

    try:
        ov.convert_model(path)
    except Exception as exc:  # OpenVINO's frontend raises plain RuntimeErrors (GeneralFailure, OpConversionFailure)
        return openvino_reason(exc)
    return None


def _openvino_parameters(path: Path) -> int:
    model = openvino_core().read_model(str(path))
    total = 0
    for op in model.get_ordered_ops():
        if op.get_type_name() == "Constant" and op.get_element_type().get_type_name() != "i64" \
                and not any(_is_quant_param(target) for target in op.output(0).get_target_inputs()):
            total += int(np.prod(list(op.get_output_shape(0)), dtype=np.int64))
    return total


def _is_quant_param(target) -> bool:
    """FakeQuantize ranges, and the scale / zero point of OpenVINO's int8 weight decompression
    pattern: Constant(int) -> Convert -> Subtract(zero point) -> Multiply(scale)."""
    node, index = target.get_node(), target.get_index()
    if node.get_type_name() == "FakeQuantize":
        return index > 0
    if node.get_type_name() in ("Multiply", "Subtract") and index == 1:
        source = node.input_value(0).get_node()
        return source.get_type_name() in ("Convert", "Subtract")
    return False


class OpenVinoDecoder:
    """One step of an IR decoder on OpenVINO's CPU plugin, with OnnxDecoder's interface (decoder.Decoder).

    INFERENCE_PRECISION_HINT f32 is set explicitly: on CPUs with AMX or AVX512-BF16 OpenVINO otherwise runs
    float layers in bf16 (see this module's docstring), and the fp32 candidate would not be fp32."""

    def __init__(self, path: str | Path, threads: int | None = None):
        self.path = Path(path)
        if not self.path.is_file() or not self.path.with_suffix(".bin").is_file():
            raise ArtifactError(f"{self.path}: OpenVINO IR (.xml with its .bin beside it) not found; make one with "
                                "edgekd.runtimes.openvino_convert.convert_decoder")
        config = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        core = openvino_core()
        try:
            model = core.read_model(str(self.path))
            compiled = core.compile_model(model, "CPU", config)
        except Exception as exc:  # OpenVINO raises RuntimeErrors for damaged IR and for missing kernels alike
            raise ArtifactError(f"{self.path}: OpenVINO cannot load it ({openvino_reason(exc)})") from None
        inputs = {port.get_any_name(): port for port in model.inputs}
        past = sorted(name for name in inputs if name.startswith("past_key_values."))
        if "input_ids" not in inputs or not past:
            raise ArtifactError(f"{self.path}: not a decoder with a KV cache (needs input_ids and past_key_values.N.key/value inputs)")
        self.past_names = [f"past_key_values.{i}.{kv}" for i in range(len(past) // 2) for kv in ("key", "value")]
        shape = inputs[self.past_names[0]].get_partial_shape()
        self.heads, self.head_size = shape[1].get_length(), shape[3].get_length()
        self.context = int(model.get_rt_info(CONTEXT_INFO).astype(int)) if model.has_rt_info(CONTEXT_INFO) else None
        self.output_names = [port.get_any_name() for port in compiled.outputs]
        self._request = compiled.create_infer_request()

    def empty_cache(self) -> list[np.ndarray]:
        return empty_kv_cache(len(self.past_names), self.heads, self.head_size)

    def step(self, new_ids: np.ndarray, cache: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        """Logits for each new token (batch 1) and the cache grown by them."""
        feed = step_inputs(new_ids, cache, self.past_names)
        # share_inputs: no copy of the cache going in; outputs are copied (the default), since the request
        # reuses its output buffers on the next step while the caller still holds this step's cache.
        result = self._request.infer(feed, share_inputs=True)
        logits, *present = (result[name] for name in self.output_names)
        return logits[0], present
