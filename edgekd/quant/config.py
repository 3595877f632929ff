"""The quantize section: PTQ (calibration, fallback, host adaptation) or QAT fine-tuning; and a language model's
(decoder's) quantize section, DecoderQuantizeConfig."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import Field, field_validator, model_validator

from edgekd.core.errors import ConfigError, TargetError
from edgekd.core.sections import Integer, OptionalInteger, Strict
from edgekd.train.config import TrainConfig


class QatConfig(Strict):
    """Quantization-aware fine-tuning of the distilled student (quantize.method: qat)."""

    # Fake-quant ops run in fp32 (no autocast); a low lr keeps the student near its fp32 optimum.
    train: TrainConfig = Field(default_factory=lambda: TrainConfig(epochs=2, lr=0.002, amp="off"))
    temperature: Optional[float] = Field(None, gt=0, le=100, description="distillation temperature (default: distill's)")
    alpha: Optional[float] = Field(None, ge=0, le=1, description="weight of the teacher loss (default: distill.alpha)")

    @field_validator("train")
    @classmethod
    def _trains(cls, train: TrainConfig) -> TrainConfig:
        if train.epochs < 1:  # 0 epochs made a model named int8-qat that no training had made
            raise ValueError("qat.train.epochs: 0 fine-tunes nothing; give 1 or more, or use quantize.method: ptq")
        return train


# quantize.fallback.max_seconds's default. The ranked search (quant/fallback.py) needs one instrumented pass and
# 1 + log2(max_fallback_nodes) quantize-and-evaluate rounds: 34 s with 6 nodes and 162 s with 32 for PP-OCR's 145-node
# text-direction classifier on 2 cores (benchmarks/results/fallback_search.md). Ten minutes leaves room for models
# several times bigger; beyond that the search keeps the best passing candidate found and says so.
FALLBACK_MAX_SECONDS = 600.0


class FallbackConfig(Strict):
    """The accuracy-aware fallback: when int8 breaks max_drop on the validation split, rank the quantized nodes by
    the int8 noise each adds (one instrumented pass), then bisect on how many of the top ones to keep in float."""

    enabled: bool = Field(True, description="false: ship int8 as calibrated, or not at all when it breaks max_drop")
    max_seconds: float = Field(FALLBACK_MAX_SECONDS, gt=0, description="stop the search (ranking and evaluations) after "
                               "this many seconds per recipe and calibration method, keeping the best passing candidate "
                               "found by then (the log and the manifest say so); none passing by then fails the recipe")

    @model_validator(mode="before")
    @classmethod
    def _from_bool(cls, value):
        # `fallback: true/false` was the whole key before the section existed; it still means enabled.
        return {"enabled": value} if isinstance(value, bool) else value


def _fallback_schema_takes_a_boolean(schema: dict[str, Any]) -> None:
    """`fallback: false` (and true) is accepted, as FallbackConfig._from_bool reads it: the JSON schema says so too,
    as anyOf [boolean, FallbackConfig], or an editor would flag a documented setting as wrong."""
    ref = schema.pop("$ref", None) or next((part["$ref"] for part in schema.pop("allOf", []) if "$ref" in part), None)
    if ref is not None:
        schema["anyOf"] = [{"type": "boolean"}, {"$ref": ref}]


class QuantizeConfig(Strict):
    method: Literal["ptq", "qat", "none"] = "ptq"
    calibration: str = Field("train-256", description="recipe name in calibration/ or a path to a recipe YAML")

    @field_validator("calibration", mode="before")
    @classmethod
    def _a_count_is_not_a_recipe(cls, value):
        """`calibration: 64` (YAML reads a number): meant as a count of samples, which a recipe names; quoting it
        would only make the name '64', which no recipe has."""
        if isinstance(value, int) and not isinstance(value, bool):
            raise ValueError(f"{value} is a count, and this key names a calibration recipe: use train-{value} "
                             f"(built in: train-64, train-256, train-1024; for another count, write "
                             f"calibration/train-{value}.yaml beside the pipeline file)")
        return value

    calibration_images: Optional[str] = Field(
        None, description="a folder of images (no labels needed, any depth) to calibrate int8 on instead of the recipe's split: "
                          "the recipe's count and seed pick them, decoded with data's preprocessing (data.source imagefolder)")
    calibrate_method: Optional[Literal["minmax", "moving-average", "entropy", "percentile", "auto"]] = Field(
        None, description="overrides the target recipe's, for onnxruntime recipes (an NNCF one, as intel-cpu's, calibrates "
                    "by its own rules: a warning says so); auto tries each and keeps the one closest to fp32 on the validation split "
                    "(fewest nodes in float, then lowest KL divergence) unless another is significantly more accurate there")
    fallback: FallbackConfig = Field(default_factory=FallbackConfig, description="when int8 breaks max_drop on the "
                                     "validation split, keep the most sensitive nodes in float until it does not "
                                     "(`fallback: false` turns it off)",
                                     json_schema_extra=_fallback_schema_takes_a_boolean)
    max_fallback_nodes: Integer = Field(6, ge=0, le=1000, description="the most nodes the fallback keeps in float (it bisects "
                                    "between 1 and this, 1 + log2 of it evaluations); 0 keeps none, as `fallback: false`")
    max_drop: Optional[float] = Field(None, ge=0, description="int8 accuracy budget on the validation split, in gate.drop_type "
                                                              "units (default: the strictest target or gate max_drop)")
    confirm_fraction: float = Field(0.5, ge=0, lt=1, description="share of the validation split that the int8 search "
                                    "(calibration and op-type retries, calibrate_method auto, the node fallback) never sees: "
                                    "when a search chose the int8 model, its targets' candidates are judged on these samples "
                                    "alone, so the winner is not judged on the samples it won on; 0 judges on the whole split")
    sensitivity_samples: Integer = Field(64, ge=16, le=100_000, description="validation samples of the fallback's ranking pass, "
                                     "which compares every activation of the int8 and float models on them")
    adapt_to_host: bool = Field(True, description="on an x86 CPU without VNNI/AMX, whose int8 kernels saturate 8-bit products, "
                                                 "quantize with 7-bit weights (reduce_range) so that accuracy measured here holds "
                                                 "on the device; false keeps the profile's recipe and warns")
    qat: QatConfig = Field(default_factory=QatConfig)

    @model_validator(mode="after")
    def _ptq_options_under_qat(self) -> QuantizeConfig:
        # QAT also calibrates (its initial activation ranges), so PTQ's calibration options would look like they
        # apply to it; refused rather than silently ignored. Only explicitly set fields count: the defaults
        # (fallback true, 6 nodes) are not "set". A qat section under method ptq or none stays allowed, so one
        # config can switch methods back and forth.
        unused = sorted(PTQ_ONLY & self.model_fields_set) if self.method == "qat" else []
        if unused:
            raise ValueError(f"{', '.join('quantize.' + f for f in unused)}: used only with quantize.method ptq, and this "
                             f"config uses qat; remove {'it' if len(unused) == 1 else 'them'}")
        return self


PTQ_ONLY = {"calibrate_method", "fallback", "max_fallback_nodes", "sensitivity_samples"}


# Every backend's decoder_methods (edgekd/runtimes/: onnxruntime's dynamic, nbits8, nbits4; OpenVINO's ov_int8, ov_int4)
# and none, spelled out for the schema; tests/pipeline/lm/test_lm_pipeline.py checks that they agree.
DecoderMethod = Literal["dynamic", "nbits8", "nbits4", "ov_int8", "ov_int4", "none"]


class DecoderOpenVinoConfig(Strict):
    int4_mode: Literal["sym", "asym"] = Field("sym", description="ov_int4: NNCF INT4_SYM or INT4_ASYM (a zero point per group)")
    group_size: OptionalInteger = Field(None, ge=8, description="ov_int4: input channels per scale; must divide the model's "
                                      "width (default: the largest of 128, 64, 32, 16 that does)")
    ratio: float = Field(1.0, gt=0, le=1, description="ov_int4: share of linear layers at 4 bits, the rest at 8 "
                                                      "(NNCF keeps the embeddings and the output layer at 8 bits)")


class DecoderQuantizeConfig(Strict):
    method: DecoderMethod = Field("dynamic", description="onnxruntime targets: dynamic int8 (MatMulInteger) or weight-only MatMulNBits "
                                                  "8/4-bit; OpenVINO targets: ov_int8 / ov_int4 (NNCF weight compression); "
                                                  "none: fp32 only. A target whose runtime the method is not for gets "
                                                  "its runtime's default (dynamic, ov_int8)")
    per_target: dict[str, DecoderMethod] = Field(default_factory=dict, description="a method per target name")
    adapt_to_host: bool = Field(True, description="7-bit weights (dynamic) where this CPU's int8 kernels saturate")
    block_size: Integer = Field(32, ge=16, description="MatMulNBits block size")
    openvino: DecoderOpenVinoConfig = Field(default_factory=DecoderOpenVinoConfig, description="options of ov_int4")

    def method_for(self, target: str, backend: str) -> str:
        """The method for `target`, whose profile's backend is `backend`: per_target's (which must be one for that
        runtime), else `method` where it is one for that runtime, else that runtime's default."""
        from edgekd.runtimes import get_backend

        family = get_backend(backend).decoder_methods
        if target in self.per_target:
            chosen = self.per_target[target]
            if chosen != "none" and chosen not in family:
                raise ConfigError(f"quantize.per_target.{target}: {chosen} is not for this target's runtime ({backend}); "
                                  f"use one of {', '.join(family)} or none")
            return chosen
        return self.method if self.method == "none" or self.method in family else family[0]

    def plan(self, targets: list[str], base_dir: Path) -> dict[str, tuple[str, Any]]:
        """Per target, its method (none where its profile lists no int8) and profile. One-line errors before any
        training: a target whose backend runs no decoder, a method for none of the targets' runtimes, OpenVINO or
        NNCF missing for an OpenVINO target."""
        import importlib.util

        from edgekd.runtimes import get_backend, load_profile
        from edgekd.runtimes.registry import decoder_backends, runtime_of

        profiles = {name: load_profile(name, base_dir) for name in targets}
        for name, profile in profiles.items():
            if not get_backend(profile.backend).decoder_methods:
                raise TargetError(f"target {name}: language models run on onnxruntime or OpenVINO here (backends "
                                  f"{', '.join(decoder_backends())}), and this profile's backend is {profile.backend}; "
                                  "use x86-cpu, arm64-cpu or intel-cpu")
        methods = {name: self.method_for(name, profile.backend) for name, profile in profiles.items()}
        if self.method != "none" and not any(self.method in get_backend(p.backend).decoder_methods for p in profiles.values()):
            offers: dict[str, tuple[str, ...]] = {}  # runtime -> its methods (ort and ort-arm64 share onnxruntime's)
            for name in decoder_backends():
                offers.setdefault(runtime_of(name), get_backend(name).decoder_methods)
            raise ConfigError(f"quantize.method {self.method}: not a method for any of the targets' runtimes "
                              f"({', '.join(sorted({p.backend for p in profiles.values()}))}); use "
                              + "; ".join(f"{', '.join(m)} for {runtime} targets" for runtime, m in offers.items()))
        openvino = [name for name, profile in profiles.items() if runtime_of(profile.backend) == "openvino"]
        if openvino:
            get_backend(profiles[openvino[0]].backend).require()
            if any(methods[name] != "none" for name in openvino) and importlib.util.find_spec("nncf") is None:
                raise TargetError("quantize: ov_int8 / ov_int4 compress weights with NNCF, which is not installed; "
                                  "pip install nncf, or use quantize.method none for the OpenVINO targets")
        return {name: (methods[name] if "int8" in profile.precisions else "none", profile) for name, profile in profiles.items()}

    def options_for(self, target: str, profile, method: str) -> tuple[Any, Optional[str]]:
        """The DecoderOptions (runtimes/decoder.py) of `target` and why they differ from its profile's recipe, if
        they do: dynamic int8 gets 7-bit weights where this host's int8 kernels saturate (quant/host.py)."""
        from edgekd.quant.host import recipe_for_host
        from edgekd.runtimes.decoder import DecoderOptions

        reduce_range, note = False, None
        if method == "dynamic":
            choice = recipe_for_host(profile.quantization, self.adapt_to_host, target)
            reduce_range, note = choice.recipe.reduce_range, choice.note
        return DecoderOptions(reduce_range, self.block_size, self.openvino.int4_mode, self.openvino.group_size,
                              self.openvino.ratio), note
