"""The data section: where the images come from, how they are split and what every model is fed."""
from __future__ import annotations

import math
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, Field, ValidationError, field_validator, model_serializer, model_validator

from edgekd.core.sections import Integer, OptionalInteger, Strict, describe_validation_error
from edgekd.core.user_code import is_reference


class NormalizeStats(Strict):
    """Explicit per-channel statistics: the model sees (pixel - mean) / std, pixels in [0, 1]; one mean and one std
    apply to every channel."""

    mean: list[float] = Field(..., min_length=1, max_length=64)
    std: list[float] = Field(..., min_length=1, max_length=64)

    @model_validator(mode="after")
    def _same_length_positive_std(self) -> NormalizeStats:
        if len(self.mean) != len(self.std):
            raise ValueError(f"mean has {len(self.mean)} values and std {len(self.std)}; give one per channel")
        if not all(math.isfinite(v) for v in [*self.mean, *self.std]) or min(self.std) <= 0:
            raise ValueError("std values must be positive and every value finite")
        return self


class FitHeight(Strict):
    """Images of any aspect (text lines): resize to `height` keeping the aspect ratio, the width capped at `max_width`,
    then zero-padded on the right to `max_width` after normalisation (PaddleOCR's recipe for its recognisers and
    direction classifier: height 48, width at most 192)."""

    height: Integer = Field(..., ge=4, le=4096, description="every image is resized to this height (bilinear)")
    max_width: Integer = Field(..., ge=4, le=16384, description="the width after resizing is at most this; narrower images "
                                                            "are padded to it")
    pad: Literal["right"] = Field("right", description="where the padding goes: right (the model input's value 0, after "
                                                       "normalisation, as PaddleOCR pads)")


# ImageNet's statistics, the convention of torchvision's pretrained models (and many checkpoints trained elsewhere).
IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
NORMALIZE_MODES = ("dataset", "none", "imagenet")
# data.scale: what an array source's values (an .npz's x, a factory's) are divided by to become the pixels data.normalize
# starts from. auto keeps what edgekd always did for 8-bit arrays; none is for a model that takes the values as they are.
SCALES = ("auto", "255", "none")
ARRAY_SOURCES = ("npz",)  # and module:function / file.py:function factories (is_reference)
TABLE_SOURCES = ("csv", "parquet")  # tables: typed columns and a target column (edgekd/data/tabular.py)


class DataConfig(Strict):
    source: str = Field("digits", description="digits | fashion-mnist | npz | imagefolder | text | csv | parquet | module:function | "
                                                  "file.py:function")
    path: Optional[str] = Field(None, description="folder or file for fashion-mnist, npz and imagefolder; for text a .jsonl or "
                                                  ".csv (optionally .gz) of text,label (optional split, group); for csv and "
                                                  "parquet the table (relative to the config file)")
    max_length: OptionalInteger = Field(None, ge=8, le=512, description="text: tokens per text the models take (cut and padded "
                                                                      "to it; default 64)")
    vocab_size: OptionalInteger = Field(None, ge=100, le=100_000, description="text: WordPiece vocabulary learned on the training "
                                                                           "split (default 2000)")
    image_size: OptionalInteger = Field(None, ge=4, le=1024, description="imagefolder: squash every image to this square size "
                                                                       "(changes the aspect ratio; resize + center_crop keep it)")
    resize: Union[None, Integer, FitHeight] = Field(
        None, description="imagefolder: resize the shorter side to this many pixels (bilinear), keeping the aspect ratio; "
                          "or {height: 48, max_width: 192, pad: right}: a fixed height keeping the aspect ratio, the width "
                          "capped and zero-padded (text lines, PaddleOCR's recipe)")
    center_crop: OptionalInteger = Field(None, ge=4, le=4096, description="imagefolder: then cut the central square of this size")
    color: Literal["rgb", "bgr", "gray", "gray3"] = Field("rgb", description="imagefolder: channel order, or grayscale as one "
                                                                             "channel (gray) or repeated to three (gray3)")
    labels: Literal["auto", "none"] = Field(
        "auto", description="imagefolder, npz: none ignores class sub-folders (a folder of images at any depth) and y: the "
                            "data has no labels and a model shipped as given is judged by fidelity to its fp32 outputs")
    target: Optional[str] = Field(None, description="csv, parquet: the column to predict (its values are the classes)")
    features: Optional[list[str]] = Field(None, min_length=1, description="csv, parquet: the input columns (default: every "
                                                                          "column but the target)")
    categorical: Optional[list[str]] = Field(None, description="csv, parquet: columns read as categories even when they hold "
                                                               "numbers (default: the columns holding text)")
    inputs: Literal["columns", "types"] = Field(
        "columns", description="csv, parquet: the bundle's ONNX inputs: columns, one (batch, 1) input per column named as it; "
                               "types, one 'numeric' (batch, k) float32 and one 'categorical' (batch, m) string input "
                               "(fewer inputs: faster at batch 1)")
    val_fraction: float = Field(0.15, gt=0, lt=0.5)
    test_fraction: float = Field(0.2, gt=0, lt=0.5, description="used when the source has no official test split")
    train_limit: OptionalInteger = Field(None, ge=1, description="use at most this many training samples")
    test_limit: OptionalInteger = Field(None, ge=1, description="use at most this many test samples")
    normalize: Union[Literal["dataset", "none", "imagenet"], NormalizeStats] = Field(
        "dataset", description="what every model sees, from pixels in [0, 1]: dataset: (x - mean) / std with the training "
                               "split's per-channel statistics; none: the [0, 1] pixels; imagenet: ImageNet's mean/std; "
                               "{mean: [...], std: [...]}: your own. A checkpoint must be given what it was trained on")

    scale: Literal["auto", "255", "none"] = Field(
        "auto", description="npz, module:function: what the array's values are divided by before data.normalize: auto "
                            "(the default): by 255 when they lie in 0..255 and some exceed 1 (8-bit pixels), else taken "
                            "as they are; 255: always; none: the values as given (with data.normalize: none the model "
                            "sees the array exactly as saved)")

    @model_validator(mode="after")
    def _image_steps_need_a_folder(self) -> DataConfig:
        if self.source in ("code", "folder"):  # a language model's corpus in a file without `task: language-model`
            raise ValueError(f"data.source '{self.source}': a language model's corpus; add task: language-model at the top "
                             "of the file (its data, teacher, student sections: configs/language_model.yaml)")
        given = [k for k in ("image_size", "resize", "center_crop", "color") if k in self.model_fields_set]
        if given and self.source != "imagefolder":
            raise ValueError(f"data.{given[0]}: applies to image files (data.source imagefolder), not to '{self.source}'; "
                             "remove it")
        pixels_only = [k for k in ("normalize", "scale") if k in self.model_fields_set]
        if pixels_only and self.source == "text":  # token ids are not scaled or normalised: the key would do nothing
            raise ValueError(f"data.{pixels_only[0]}: applies to images and arrays, not to data.source text (token ids); "
                             "remove it")
        if "normalize" in self.model_fields_set and self.source in TABLE_SOURCES:  # accepted, it did nothing
            raise ValueError(f"data.normalize: applies to images and arrays, not to a table (data.source {self.source}), "
                             "whose number columns are standardized inside the model's graph; remove it")
        text_only = [k for k in ("max_length", "vocab_size") if k in self.model_fields_set]
        if text_only and self.source != "text":
            raise ValueError(f"data.{text_only[0]}: applies to data.source text, not to '{self.source}'; remove it")
        table_only = [k for k in ("target", "features", "categorical", "inputs") if k in self.model_fields_set]
        if table_only and self.source not in TABLE_SOURCES:
            kind = "source" not in self.model_fields_set and str(self.path or "").lower().rsplit(".", 1)[-1]
            fix = (f"set data.source: {kind} (unset, it is '{self.source}')" if kind in TABLE_SOURCES
                   else "set data.source: csv or parquet for a table, or remove it")
            raise ValueError(f"data.{table_only[0]}: applies to data.source csv or parquet, not to '{self.source}'; {fix}")
        if self.source in TABLE_SOURCES and (not self.path or not self.target):
            raise ValueError(f"data.{'path' if not self.path else 'target'}: data.source {self.source} needs data.path (the "
                             "file) and data.target (the column to predict); give both")
        if self.source == "text" and not self.path:
            raise ValueError("data.path: data.source text needs a .jsonl or .csv file of text,label; give its path")
        if "scale" in self.model_fields_set and self.source not in ARRAY_SOURCES and not is_reference(self.source):
            raise ValueError(f"data.scale: applies to arrays (data.source npz or module:function), not to "
                             f"'{self.source}', whose pixels are decoded to [0, 1]; remove it")
        if self.labels == "none" and self.source not in ("imagefolder", "npz"):
            raise ValueError(f"data.labels: none applies to data.source imagefolder or npz, not to '{self.source}'; remove it")
        return self

    @model_serializer(mode="wrap")
    def _default_scale_left_out(self, handler) -> dict[str, Any]:
        """data.scale auto is left out of the dump, so that every config without it dumps, and keys its stages (and so
        an old run folder resumes), as before the key existed."""
        dumped = handler(self)
        return {k: v for k, v in dumped.items() if k != "scale" or v != "auto"}

    @field_validator("scale", mode="before")
    @classmethod
    def _scale_choice(cls, value: Any) -> Any:
        # YAML reads `scale: 255` as a number; the choice is a name either way.
        if isinstance(value, int) and not isinstance(value, bool) and str(value) in SCALES:
            return str(value)
        if value not in SCALES:
            raise ValueError(f"{value!r}: use auto (divide by 255 only 0..255 values), 255 (always divide) or none "
                             "(the values as given)")
        return value

    @field_validator("resize", mode="before")
    @classmethod
    def _resize_choice(cls, value: Any) -> Any:
        # One line for either form, not one per member of the Union.
        if isinstance(value, dict):
            return _one_line(FitHeight, value)
        if value is not None and not isinstance(value, FitHeight) and (
                isinstance(value, bool) or not isinstance(value, int) or not 4 <= value <= 4096):
            raise ValueError(f"{value!r}: give the shorter side's size in pixels (4 to 4096), or "
                             "{height: H, max_width: W, pad: right} for images of any aspect")
        return value

    @model_validator(mode="after")
    def _fit_height_alone(self) -> DataConfig:
        if isinstance(self.resize, FitHeight):
            other = [k for k in ("center_crop", "image_size") if getattr(self, k) is not None]
            if other:
                raise ValueError(f"data.{other[0]}: not with data.resize {{height, max_width}}, which already gives every "
                                 "image one shape; remove it")
        return self

    @field_validator("normalize", mode="before")
    @classmethod
    def _normalize_choice(cls, value: Any) -> Any:
        # Checked here so that a mistake gives one line, not one per member of the Union.
        if isinstance(value, dict):
            return _one_line(NormalizeStats, value)
        if value not in NORMALIZE_MODES and not isinstance(value, NormalizeStats):
            raise ValueError(f"{value!r}: use one of {', '.join(NORMALIZE_MODES)}, or {{mean: [...], std: [...]}} per channel")
        return value


def _one_line(model: type[BaseModel], value: dict) -> BaseModel:
    """`value` as `model`, its mistakes as one ValueError line (not one per member of the field's Union)."""
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise ValueError(describe_validation_error(exc, model)) from None
