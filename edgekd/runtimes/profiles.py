"""Device profiles: what a target allows and how to quantize for it. Data, not code."""
from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_serializer, field_validator, model_validator

from edgekd.core.errors import ConfigError, TargetError
from edgekd.core.fileio import resolve_path, searched
from edgekd.core.resources import builtin_dir
from edgekd.core.sections import Integer, OptionalInteger, Strict, load_yaml_model
from edgekd.core.thresholds import Thresholds
from edgekd.runtimes.registry import BACKEND_NAMES

Precision = Literal["fp32", "fp16", "bf16", "int8"]
# The gate limits a target profile sets (its gate section accepts every Thresholds key; these are the ones it has).
PROFILE_LIMITS = ("max_drop", "min_speedup", "max_size_kb")


# The recipe keys only onnxruntime's quantize_static reads; NNCF places and calibrates Q/DQ by its own rules.
ORT_ONLY_KEYS = ("activation_type", "weight_type", "per_channel", "symmetric_activations", "symmetric_weights", "signed_input",
                 "calibrate_method", "op_types", "extra_op_types", "extra_options")

# onnxruntime quantize_static's extra_options keys, as its docstring (and StaticQuantConfig's) lists them in
# onnxruntime 1.32, with the few its code reads besides (CalibPercentile, CalibMaxIntermediateOutputs, BlockSize,
# DefaultTensorType). quantize_static ignores any other key without a word: a typo (WeightSymetric) changed nothing while
# the manifest recorded it as applied. Written out, not read from onnxruntime: profiles load where it is not installed.
ORT_EXTRA_OPTIONS = ("extra.Sigmoid.nnapi", "ActivationSymmetric", "ActivationRestrictedAsymmetric", "WeightSymmetric",
                     "EnableSubgraph", "ForceQuantizeNoInputCheck", "MatMulConstBOnly", "AddQDQPairToWeight",
                     "OpTypesToExcludeOutputQuantization", "DedicatedQDQPair", "QDQOpTypePerChannelSupportToAxis",
                     "CalibTensorRangeSymmetric", "CalibStridedMinMax", "CalibMovingAverage", "CalibMovingAverageConstant",
                     "CalibMaxIntermediateOutputs", "CalibPercentile", "QuantizeBias", "SmoothQuant", "SmoothQuantAlpha",
                     "SmoothQuantFolding", "UseQDQContribOps", "MinimumRealRange", "TensorQuantOverrides",
                     "QDQKeepRemovableActivations", "QDQDisableWeightAdjustForInt32Bias", "BlockSize", "DefaultTensorType")
# The extra_options that runtimes/ptq.quantize_qdq sets itself, from the recipe's own keys (a value given here was
# overwritten): what to set instead.
RECIPE_SETS = {"ActivationSymmetric": "symmetric_activations", "WeightSymmetric": "symmetric_weights",
               "CalibMovingAverage": "calibrate_method: moving-average", "CalibPercentile": "calibrate_method: percentile "
               "(edgekd uses the 99.99th)", "CalibStridedMinMax": "nothing: edgekd calibrates one batch at a time itself"}


def check_extra_options(options: dict[str, Any]) -> None:
    """Refuse an extra_options key the recipe has its own key for, or one onnxruntime does not read."""
    import difflib

    for key in options:
        if key in RECIPE_SETS:
            raise ValueError(f"{key}: edgekd sets it from the recipe; remove it and set {RECIPE_SETS[key]}")
        if key not in ORT_EXTRA_OPTIONS:
            close = difflib.get_close_matches(str(key), ORT_EXTRA_OPTIONS, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            if close and close[0] in RECIPE_SETS:
                hint = f"did you mean '{close[0]}'? edgekd sets it from the recipe: set {RECIPE_SETS[close[0]]}; "
            raise ValueError(f"{key}: not an onnxruntime quantize_static extra option; {hint}its keys are listed in "
                             "quantize_static's docstring (onnxruntime/quantization/quantize.py)")


class QuantRecipe(Strict):
    """How to make the int8 QDQ model for a target: onnxruntime quantize_static settings, or NNCF's defaults."""

    name: str
    why: str = Field("", description="why these formats suit the target (the runtime's guidance, measurements); "
                     "recorded with the recipe in the quantize stage's metrics and the bundle manifest")
    tool: Literal["onnxruntime", "nncf"] = Field(
        "onnxruntime", description="onnxruntime: quantize_static with the keys below; nncf: nncf.quantize on the ONNX "
        "model (OpenVINO's own placement of Q/DQ, for OpenVINO targets), with preset, bias_correction and reduce_range only")
    preset: Literal["performance", "mixed"] = Field("performance", description="nncf only: symmetric activations "
                                                    "(performance) or asymmetric (mixed)")
    # NNCF's default, fast bias correction, is what results/targets_architectures.md measured passing on both
    # CNNs; a run with none (commit 3211204, stopped, results not kept) put resnet18's intel-cpu int8 below
    # NNCF's own. Small models may fare better with none: a recipe may choose.
    bias_correction: Literal["fast", "full", "none"] = Field("fast", description="nncf only: NNCF's bias correction "
                                                             "after quantizing (fast, its default; full) or none")
    activation_type: Literal["uint8", "int8"] = "uint8"
    weight_type: Literal["int8", "uint8"] = "int8"
    per_channel: bool = True
    reduce_range: bool = Field(False, description="7-bit weights: for x86 CPUs without VNNI")
    symmetric_activations: bool = False
    symmetric_weights: bool = True
    signed_input: bool = Field(False, description="the model input as symmetric int8 (zero point 0) whatever "
                               "activation_type: normalized inputs are signed, and a zero point costs the first layer")
    calibrate_method: Literal["minmax", "moving-average", "entropy", "percentile"] = "minmax"
    op_types: list[str] | None = Field(None, description="restrict quantization to these op types")
    extra_op_types: list[str] = Field(default_factory=list, description="op types to quantize on top of op_types "
                                      "(or of onnxruntime's defaults), e.g. ReduceMean, which onnxruntime leaves in float")
    extra_options: dict[str, Any] = Field(default_factory=dict, description="more onnxruntime quantize_static extra_options "
                                         "(its documented keys; not those this recipe's own keys set, e.g. ActivationSymmetric)")

    @field_validator("extra_options")
    @classmethod
    def _known_extra_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        check_extra_options(options)
        return options

    @model_validator(mode="after")
    def _keys_for_the_tool(self) -> QuantRecipe:
        if self.tool == "nncf":
            given = [key for key in ORT_ONLY_KEYS if key in self.model_fields_set]
            if given:
                raise ValueError(f"recipe '{self.name}': tool nncf ignores onnxruntime's keys ({', '.join(given)}); "
                                 "remove them, or use tool: onnxruntime")
        elif {"preset", "bias_correction"} & self.model_fields_set:
            given = ", ".join(sorted({"preset", "bias_correction"} & self.model_fields_set))
            raise ValueError(f"recipe '{self.name}': {given}: NNCF's keys; add tool: nncf or remove them")
        return self


@cache
def _operator_names() -> list[str] | None:
    """Every ONNX operator and onnxruntime kernel name, read once a process (profiles load many times a run)."""
    try:
        from onnx import defs
    except ImportError:
        return None
    known = {schema.name for schema in defs.get_all_schemas_with_history()}
    try:  # onnxruntime's own kernels too (com.microsoft: EmbedLayerNormalization, QGemm, ...)
        from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

        known |= {kernel.op_name for kernel in ort_state.get_all_opkernel_def()}
    except (ImportError, AttributeError):
        pass
    return sorted(known)


def unknown_op_type(op_types: list[str]) -> str | None:
    """What to say of the first name that is no ONNX operator ('Convolution', 'Relu6x'), with the nearest one; None
    when all are, or when the onnx package is not here to tell (a device)."""
    import difflib

    known = _operator_names()
    if known is None:
        return None
    for name in op_types:
        if name not in known:
            prefixes = sorted((k for k in known if len(k) >= 3 and name.lower().startswith(k.lower())), key=len)
            close = difflib.get_close_matches(name, known, n=1) or prefixes[-1:]  # 'Convolution': Conv
            return f"'{name}' is not an ONNX operator" + (f"; did you mean '{close[0]}'?" if close else "")
    return None


class TargetProfile(Strict):
    name: str
    description: str = ""
    backend: Literal[BACKEND_NAMES]  # type: ignore[valid-type]  # the registry's table
    device: Literal["cpu", "gpu"] = "cpu"
    arch: Literal["x86_64", "aarch64", "any"] = "any"
    precisions: list[Precision] = Field(default_factory=lambda: ["fp32", "int8"], min_length=1)
    quantization: QuantRecipe | None = None
    batch_sizes: list[Integer] = Field(default_factory=lambda: [1, 8], min_length=1)
    threads: OptionalInteger = Field(None, ge=1)
    cpu_features: list[Literal["vnni", "amx", "bf16", "dotprod", "i8mm"]] = Field(
        default_factory=list, description="instruction sets the device has and its latency depends on; "
        "a machine without them gets a warning that its timings are not the device's")
    cpu_lacks: list[Literal["vnni", "amx", "bf16", "dotprod", "i8mm"]] = Field(
        default_factory=list, exclude_if=lambda lacks: not lacks,  # unset: dumped as before (stage keys, --resume)
        description="instruction sets the device does not have: a machine with them gets a warning that its int8 (or "
        "bf16) timings are faster than the device's")
    latency_measurable_off_device: bool = Field(
        True, description="false when timings on the build machine say nothing about the device")
    runtime_options: dict = Field(default_factory=dict, description="backend-specific options (hints, workspace, ...)")

    @field_validator("precisions", "batch_sizes")
    @classmethod
    def _each_once(cls, values: list, info) -> list:
        twice = sorted({str(v) for v in values if values.count(v) > 1})
        if twice:  # two rows of one candidate, one of them "within noise of" itself
            raise ValueError(f"{info.field_name}: {twice[0]} is listed twice; list each once")
        if info.field_name == "batch_sizes" and min(values) < 1:
            raise ValueError(f"batch_sizes: {min(values)} is no batch size; give sizes of 1 or more")
        return values

    fallback: str | None = Field(None, description="the target (name or profile path) whose runtime, precisions and "
                                 "int8 recipe this one ships with when its own runtime cannot read or convert the model "
                                 "(OpenVINO on Silero VAD's nested If); said in one line and recorded in the bundle")
    gate: Thresholds = Field(default_factory=Thresholds, description="only the keys set here count (Thresholds.given): "
                            "max_drop stricter than the pipeline's, min_speedup, max_size_kb")
    source: str = Field("", exclude=True)

    @field_validator("gate")
    @classmethod
    def _only_the_limits_a_profile_applies(cls, gate: Thresholds) -> Thresholds:
        """A profile's gate applies max_drop, min_speedup and max_size_kb where stricter (device.gate.stricter,
        pipeline.selection.accuracy_limit); another key (min_cosine, drop_type, reference) would be recorded in every
        bundle and checked nowhere."""
        ignored = sorted(set(gate.given()) - set(PROFILE_LIMITS))
        if ignored:
            raise ValueError(f"{', '.join(ignored)}: a target profile's gate sets {', '.join(PROFILE_LIMITS)} only; put "
                             "the others in the pipeline file's gate section")
        return gate

    @field_serializer("gate")
    def _gate_as_written(self, gate: Thresholds) -> dict[str, Any]:
        """What the profile sets, never edgekd's defaults presented as the target's, in the form profiles were
        always dumped in (the three limits, null when unset): the dump is part of the stage keys (--resume) and
        of the bundle manifests."""
        return {**dict.fromkeys(PROFILE_LIMITS), **gate.given()}


# What a target keeps of its own when it ships its fallback's runtime (TargetProfile.fallback): the device's name,
# threads, batch sizes and accuracy limits; the runtime, precisions, recipe and runtime options are the fallback's.
DEVICE_KEYS = ("name", "threads", "batch_sizes", "gate", "latency_measurable_off_device")


def on_fallback(profile: TargetProfile, fallback: TargetProfile, note: str = "") -> TargetProfile:
    """`profile`'s device on `fallback`'s runtime (pipeline/target_runtime.py; device/bundle.shipped_profile)."""
    own = {key: getattr(profile, key) for key in DEVICE_KEYS}
    built = fallback.model_copy(update={**own, "description": f"{profile.description} ({note})" if note else profile.description})
    built.source = fallback.source
    return built


def _profile_paths() -> dict[str, Path]:
    return {p.stem: p for p in sorted(builtin_dir("targets").glob("*.yaml"))}


def list_profiles() -> list[TargetProfile]:
    return [load_profile(name) for name in _profile_paths()]


def load_profile(name_or_path: str, base_dir: Path | None = None) -> TargetProfile:
    path = _find(name_or_path, base_dir)
    profile = load_yaml_model(path, TargetProfile, "target profile")
    profile.source = str(path)
    if "int8" in profile.precisions and profile.quantization is None:
        raise ConfigError(f"{path}: precisions include int8 but no 'quantization' recipe is given")
    _known_runtime_options(profile, path)
    recipe = profile.quantization
    problem = recipe and unknown_op_type([*(recipe.op_types or []), *recipe.extra_op_types])
    if problem:  # an op type nothing has is quantized nowhere, without a word
        raise ConfigError(f"{path}: quantization '{recipe.name}': {problem} (op_types / extra_op_types name ONNX node types)")
    return profile


def _known_runtime_options(profile: TargetProfile, path: Path) -> None:
    """Every runtime_options key one its backend reads (a typo such as performance_hnt was ignored, and the manifest
    recorded it as if applied)."""
    import difflib

    from edgekd.runtimes.registry import get_backend

    backend = get_backend(profile.backend)
    recipe = profile.quantization
    if backend.symmetric_int8_only and recipe is not None and recipe.tool == "onnxruntime" and (
            "uint8" in (recipe.activation_type, recipe.weight_type) or not (recipe.symmetric_activations and recipe.symmetric_weights)):
        raise ConfigError(f"{path}: quantization '{recipe.name}': backend {profile.backend} builds int8 as signed and symmetric "
                          "only (zero point 0); set activation_type: int8, weight_type: int8, symmetric_activations: true, "
                          "symmetric_weights: true")
    _float_precisions_built(profile, backend, path)
    known = backend.profile_options
    for key in profile.runtime_options:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise ConfigError(f"{path}: runtime_options.{key}: not an option of backend {profile.backend}; {hint}"
                              f"it takes {', '.join(known) or 'none'}")


def _float_precisions_built(profile: TargetProfile, backend, path: Path) -> None:
    """Every float precision listed is one the backend builds (Backend.float_precisions): the compile stage passes over
    any other, so fp16 on onnxruntime was dropped without a word, and `precisions: [fp16]` alone failed at compile
    with 'no candidate to build', sending the user to the quantize stage that had run."""
    from edgekd.runtimes.registry import get_backend

    for precision in profile.precisions:
        if precision != "int8" and precision not in backend.float_precisions:
            others = [name for name in BACKEND_NAMES if precision in get_backend(name).float_precisions]
            raise ConfigError(f"{path}: precisions: {precision} is not built by backend {profile.backend} (its float "
                              f"precisions: {', '.join(backend.float_precisions)}); remove it, or use a backend that "
                              f"builds {precision} ({', '.join(others)})")


def _find(name_or_path: str, base_dir: Path | None) -> Path:
    as_path = Path(name_or_path)
    # a file: beside the config first, as every path of a config (core.fileio.resolve_path), then as given
    candidates = [resolve_path(as_path, base_dir)] if as_path.suffix in (".yaml", ".yml") else []
    candidates.append(builtin_dir("targets") / f"{name_or_path}.yaml")
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    if as_path.suffix in (".yaml", ".yml"):
        raise TargetError(f"target profile '{name_or_path}': file not found ({searched(name_or_path, base_dir)}); "
                          "give its path, absolute or relative to the config file, or a built-in target name")
    import difflib

    known = list(_profile_paths())
    close = difflib.get_close_matches(name_or_path, known, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise TargetError(f"unknown target '{name_or_path}'; {hint}known targets: {', '.join(known)} (or a path to a profile .yaml)")
