"""The quantize section: PTQ (calibration, fallback, host adaptation) or QAT fine-tuning."""
from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, model_validator

from edgekd.core.sections import Strict
from edgekd.train.config import TrainConfig


class QatConfig(Strict):
    """Quantization-aware fine-tuning of the distilled student (quantize.method: qat)."""

    # Fake-quant ops run in fp32 (no autocast); a low lr keeps the student near its fp32 optimum.
    train: TrainConfig = Field(default_factory=lambda: TrainConfig(epochs=2, lr=0.002, amp="off"))
    temperature: Optional[float] = Field(None, gt=0, le=100, description="distillation temperature (default: distill's)")
    alpha: Optional[float] = Field(None, ge=0, le=1, description="weight of the teacher loss (default: distill.alpha)")


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


class QuantizeConfig(Strict):
    method: Literal["ptq", "qat", "none"] = "ptq"
    calibration: str = Field("train-256", description="recipe name in calibration/ or a path to a recipe YAML")
    calibration_images: Optional[str] = Field(
        None, description="a folder of images (no labels needed, any depth) to calibrate int8 on instead of the recipe's split: "
                          "the recipe's count and seed pick them, decoded with data's preprocessing (data.source imagefolder)")
    calibrate_method: Optional[Literal["minmax", "moving-average", "entropy", "percentile", "auto"]] = Field(
        None, description="overrides the target recipe; auto tries each and keeps the one closest to fp32 on the validation split "
                    "(fewest nodes in float, then lowest KL divergence) unless another is significantly more accurate there")
    fallback: FallbackConfig = Field(default_factory=FallbackConfig, description="when int8 breaks max_drop on the "
                                     "validation split, keep the most sensitive nodes in float until it does not "
                                     "(`fallback: false` turns it off)")
    max_fallback_nodes: int = Field(6, ge=0, le=1000, description="the most nodes the fallback keeps in float (it bisects "
                                    "between 1 and this, 1 + log2 of it evaluations)")
    max_drop: Optional[float] = Field(None, ge=0, description="int8 accuracy budget on the validation split, in gate.drop_type "
                                                              "units (default: the strictest target or gate max_drop)")
    sensitivity_samples: int = Field(64, ge=16, le=100_000, description="validation samples of the fallback's ranking pass, "
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
