"""The pipeline config: typed pydantic models, unknown keys refused, validated once at load.

YAML is read with yaml.safe_load only. `module:function` references in the config are resolved
only from the file the user wrote (see refs.py); nothing in a config is evaluated.
"""
from __future__ import annotations

import difflib
import hashlib
import json
import math
from pathlib import Path
from typing import Any, Literal, Optional, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ConfigError
from .yamlio import YamlRefused, safe_load

# numpy's generators take seeds >= 0 and torch.manual_seed at most 2**64 - 1; derived seeds (seed + teacher index,
# + epoch) must stay in range too, so seeds are capped well below both.
MAX_SEED = 2**31 - 1


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class NormalizeStats(Strict):
    """Explicit per-channel statistics: the model sees (pixel - mean) / std, pixels in [0, 1]."""

    mean: list[float] = Field(..., min_length=1, max_length=64)
    std: list[float] = Field(..., min_length=1, max_length=64)

    @model_validator(mode="after")
    def _same_length_positive_std(self) -> NormalizeStats:
        if len(self.mean) != len(self.std):
            raise ValueError(f"mean has {len(self.mean)} values and std {len(self.std)}; give one per channel")
        if not all(math.isfinite(v) for v in [*self.mean, *self.std]) or min(self.std) <= 0:
            raise ValueError("std values must be positive and every value finite")
        return self


# ImageNet's statistics, the convention of torchvision's pretrained models (and many checkpoints trained elsewhere).
IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
NORMALIZE_MODES = ("dataset", "none", "imagenet")


class DataConfig(Strict):
    source: str = Field("digits", description="digits | fashion-mnist | npz | imagefolder | module:function | file.py:function")
    path: Optional[str] = Field(None, description="folder or file for fashion-mnist, npz and imagefolder")
    image_size: Optional[int] = Field(None, ge=4, le=1024, description="imagefolder: squash every image to this square size "
                                                                       "(changes the aspect ratio; resize + center_crop keep it)")
    resize: Optional[int] = Field(None, ge=4, le=4096, description="imagefolder: resize the shorter side to this many pixels "
                                                                   "(bilinear), keeping the aspect ratio")
    center_crop: Optional[int] = Field(None, ge=4, le=4096, description="imagefolder: then cut the central square of this size")
    color: Literal["rgb", "bgr", "gray", "gray3"] = Field("rgb", description="imagefolder: channel order, or grayscale as one "
                                                                             "channel (gray) or repeated to three (gray3)")
    labels: Literal["auto", "none"] = Field(
        "auto", description="imagefolder, npz: none ignores class sub-folders (a folder of images at any depth) and y: the "
                            "data has no labels and a model shipped as given is judged by fidelity to its fp32 outputs")
    val_fraction: float = Field(0.15, gt=0, lt=0.5)
    test_fraction: float = Field(0.2, gt=0, lt=0.5, description="used when the source has no official test split")
    train_limit: Optional[int] = Field(None, ge=1, description="use at most this many training samples")
    test_limit: Optional[int] = Field(None, ge=1, description="use at most this many test samples")
    normalize: Union[Literal["dataset", "none", "imagenet"], NormalizeStats] = Field(
        "dataset", description="what every model sees, from pixels in [0, 1]: dataset: (x - mean) / std with the training "
                               "split's per-channel statistics; none: the [0, 1] pixels; imagenet: ImageNet's mean/std; "
                               "{mean: [...], std: [...]}: your own. A checkpoint must be given what it was trained on")

    @model_validator(mode="after")
    def _image_steps_need_a_folder(self) -> DataConfig:
        given = [k for k in ("image_size", "resize", "center_crop", "color") if k in self.model_fields_set]
        if given and self.source != "imagefolder":
            raise ValueError(f"data.{given[0]}: applies to image files (data.source imagefolder), not to '{self.source}'; "
                             "remove it")
        if self.labels == "none" and self.source not in ("imagefolder", "npz"):
            raise ValueError(f"data.labels: none applies to data.source imagefolder or npz, not to '{self.source}'; remove it")
        return self

    @field_validator("normalize", mode="before")
    @classmethod
    def _normalize_choice(cls, value: Any) -> Any:
        # Checked here so that a mistake gives one line, not one per member of the Union.
        if isinstance(value, dict):
            try:
                return NormalizeStats.model_validate(value)
            except ValidationError as exc:
                raise ValueError(describe_validation_error(exc, NormalizeStats)) from None
        if value not in NORMALIZE_MODES and not isinstance(value, NormalizeStats):
            raise ValueError(f"{value!r}: use one of {', '.join(NORMALIZE_MODES)}, or {{mean: [...], std: [...]}} per channel")
        return value


class TrainConfig(Strict):
    epochs: int = Field(5, ge=0, le=10_000)
    batch_size: int = Field(64, ge=1, le=65_536)
    lr: float = Field(0.01, gt=0, le=10)
    weight_decay: float = Field(5e-4, ge=0, le=1)
    optimizer: Literal["sgd", "adamw"] = "sgd"
    amp: Literal["auto", "off", "bf16", "fp16"] = Field("auto", description="autocast: auto picks bf16 on CPUs with AMX/avx512_bf16 and on CUDA")
    channels_last: bool = Field(False, description="NHWC memory format for convolutions (faster on some CPUs and GPUs)")


class ModelConfig(Strict):
    arch: str = Field(..., description="built-in name (convnet, resnet or mlp), torchvision:NAME, module:function or file.py:function")
    width: Optional[int] = Field(None, ge=1, le=4096, description="base channel count for built-in families")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="extra keyword arguments for the model factory")
    checkpoint: Optional[str] = Field(None, description="state_dict file, loaded with torch.load(weights_only=True)")


class StudentConfig(ModelConfig):
    """The model to ship: distilled from the teachers, or (no teachers, no distill section) shipped as given."""

    arch: Optional[str] = Field(None, description="built-in name (convnet, resnet or mlp), torchvision:NAME, module:function "
                                                  "or file.py:function; or give `onnx` instead")
    onnx: Optional[str] = Field(None, description="an ONNX file to ship as given: quantize, compile, bench and gate run "
                                                  "without torch (no teachers, no distill section)")

    @model_validator(mode="after")
    def _arch_or_onnx(self) -> StudentConfig:
        if (self.arch is None) == (self.onnx is None):
            raise ValueError("give one of student.arch (a PyTorch model, with student.checkpoint to ship it as trained) "
                             "or student.onnx (an ONNX file)")
        extra = sorted(k for k in ("width", "kwargs", "checkpoint") if k in self.model_fields_set) if self.onnx else []
        if extra:
            raise ValueError(f"student.{extra[0]}: describes a PyTorch model, and student.onnx is already a complete model; "
                             "remove it")
        return self


class TeacherConfig(ModelConfig):
    weight: float = Field(1.0, gt=0, description="weight of this teacher in the ensemble")
    train: TrainConfig = Field(default_factory=TrainConfig, description="used only when no checkpoint is given")


class HintConfig(Strict):
    """Feature (hint) distillation: a student layer learns, through a 1x1-conv adapter, to match a teacher layer."""

    student: str = Field(..., description="student module name, e.g. 'features.2' (see model.named_modules())")
    teacher: str = Field(..., description="teacher module name, e.g. 'features.3'")
    teacher_index: int = Field(0, ge=0, description="which entry of `teachers` provides the feature")
    weight: float = Field(1.0, gt=0, description="weight of this MSE term in the loss")


class AugmentConfig(Strict):
    """Random shift and flip of the transfer images, drawn per sample and epoch from a seed."""

    shift: int = Field(2, ge=0, le=64, description="largest shift in pixels (zero padded)")
    flip: bool = Field(True, description="random horizontal flip")
    seed: int = Field(0, ge=0, le=MAX_SEED, description="seed of the per-epoch augmentation draws (independent of the student seed)")
    teachers: Literal["replay", "live"] = Field(
        "replay", description="replay: cache teacher logits of each epoch's augmented images and replay the same draws; "
                              "live: run the teachers on every batch")


class OnlineConfig(Strict):
    """Deep mutual learning: config.student and these peers train together."""

    peers: list[ModelConfig] = Field(default_factory=list, description="the other peers; config.student is always a peer")
    select: Literal["student", "best"] = Field("best", description="ship config.student, or the peer best on the validation split")
    # Zhang et al. use 1; on Fashion-MNIST (benchmarks/distill_modes_fashion_mnist.py) 3 helped both peers more.
    temperature: float = Field(3.0, gt=0, le=100, description="softening of the peers' predictions in the mimicry term")


class DataFreeConfig(Strict):
    """Synthesize the transfer set from the teachers alone (BN statistics, entropy, adversarial terms)."""

    # Defaults measured on Fashion-MNIST (benchmarks/distill_modes_fashion_mnist.py, 2 CPU cores): a width-32
    # generator, bf16 autocast and student steps drawn from a replay bank reach ~80% in ~600 steps, ~0.3 s each;
    # width 64 costs ~1.5 s a step, width 16 learns slower per second.
    steps: int = Field(800, ge=1, le=1_000_000, description="generator/student alternating steps")
    seconds: Optional[float] = Field(None, gt=0, description="stop after this long even if steps remain")
    batch_size: int = Field(128, ge=2, le=4096)
    latent_dim: int = Field(100, ge=2, le=4096)
    generator_width: int = Field(32, ge=4, le=1024, description="generator channels at full resolution (twice that at half): "
                                                                 "its convolutions dominate the cost of a step")
    generator_lr: float = Field(1e-3, gt=0, le=1)
    student_lr: float = Field(0.05, gt=0, le=10)
    student_steps: int = Field(5, ge=1, le=100, description="student updates per generator update")
    replay: int = Field(8192, ge=0, le=1_000_000, description="synthesized samples (with the teachers' soft targets) kept for "
                                                              "the student steps; 0: generate a fresh batch for each student step")
    amp: Literal["auto", "off", "bf16"] = Field("auto", description="autocast: auto picks bf16 on CPUs with AMX/avx512_bf16")
    bn_weight: float = Field(1.0, ge=0)
    oh_weight: float = Field(0.5, ge=0)
    entropy_weight: float = Field(5.0, ge=0)
    adversarial_weight: float = Field(0.5, ge=0)
    keep_samples: int = Field(2048, ge=16, le=1_000_000, description="synthetic images kept as an artifact (and for calibration)")


class DistillConfig(Strict):
    mode: Literal["offline", "online", "data_free", "none"] = Field(
        "offline", description="offline: fixed teachers; online: mutual learning; data_free: no real training images; none: "
                               "ship the student as given (the default when a config has neither teachers nor distill)")
    online: OnlineConfig = Field(default_factory=OnlineConfig)
    data_free: DataFreeConfig = Field(default_factory=DataFreeConfig)
    temperature: float = Field(4.0, gt=0, le=100)
    alpha: float = Field(0.7, ge=0, le=1, description="weight of the soft (teacher) loss; 1 - alpha goes to labels; "
                                                       "0 trains the student on labels alone (the scratch baseline)")
    ensemble: Literal["prob_mean", "logit_mean"] = "prob_mean"
    train: TrainConfig = Field(default_factory=lambda: TrainConfig(epochs=10))
    finetune_epochs: int = Field(0, ge=0, le=1000, description="last phase on labels only")
    use_labels: bool = Field(True, description="false: treat the transfer set as unlabeled (soft targets and hints only)")
    hints: list[HintConfig] = Field(default_factory=list, description="feature distillation terms")
    augment: Optional[AugmentConfig] = Field(None, description="random shift/flip of the transfer images")
    seed: Optional[int] = Field(None, ge=0, le=MAX_SEED, description="student init and shuffling seed (default: the pipeline seed); "
                                                  "does not change the data split, so teacher caches stay valid")
    cache_dir: Optional[str] = Field(None, description="teacher-logit cache folder shared across runs "
                                                       "(default .cache/teacher-logits beside the run folder, or $EDGEKD_CACHE_DIR)")

    @field_validator("use_labels")
    @classmethod
    def _labels_or_teachers(cls, value: bool, info) -> bool:
        if not value and info.data.get("alpha") == 0:
            raise ValueError("with alpha 0 and use_labels false the student has nothing to learn from: "
                             "set alpha > 0 (soft targets), or use_labels true")
        return value


class QatConfig(Strict):
    """Quantization-aware fine-tuning of the distilled student (quantize.method: qat)."""

    # Fake-quant ops run in fp32 (no autocast); a low lr keeps the student near its fp32 optimum.
    train: TrainConfig = Field(default_factory=lambda: TrainConfig(epochs=2, lr=0.002, amp="off"))
    temperature: Optional[float] = Field(None, gt=0, le=100, description="distillation temperature (default: distill's)")
    alpha: Optional[float] = Field(None, ge=0, le=1, description="weight of the teacher loss (default: distill.alpha)")


class QuantizeConfig(Strict):
    method: Literal["ptq", "qat", "none"] = "ptq"
    calibration: str = Field("train-256", description="recipe name in calibration/ or a path to a recipe YAML")
    calibration_images: Optional[str] = Field(
        None, description="a folder of images (no labels needed, any depth) to calibrate int8 on instead of the recipe's split: "
                          "the recipe's count and seed pick them, decoded with data's preprocessing (data.source imagefolder)")
    calibrate_method: Optional[Literal["minmax", "entropy", "percentile", "auto"]] = Field(
        None, description="overrides the target recipe; auto tries each and keeps the one closest to fp32 on the validation split "
                    "(fewest nodes in float, then lowest KL divergence) unless another is significantly more accurate there")
    fallback: bool = Field(True, description="when int8 breaks max_drop on the validation split, keep the most "
                                             "sensitive nodes in float until it does not")
    max_fallback_nodes: int = Field(6, ge=0, le=1000, description="give up after keeping this many nodes in float")
    max_drop: Optional[float] = Field(None, ge=0, description="int8 accuracy budget on the validation split, in gate.drop_type "
                                                              "units (default: the strictest target or gate max_drop)")
    sensitivity_samples: int = Field(512, ge=16, le=100_000, description="validation samples used to rank node sensitivity")
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


class ExportConfig(Strict):
    opset: int = Field(18, ge=17, le=23, description="ONNX opset; the torch.export-based exporter needs 18 or newer for some ops")
    dynamic_batch: bool = True
    parity_samples: int = Field(64, ge=1, le=100_000)
    parity_atol: float = Field(1e-3, gt=0)
    min_top1_agreement: float = Field(0.99, ge=0, le=1)


class BenchConfig(Strict):
    eval_samples: int = Field(500, ge=1, description="size of the evaluation subset shipped as eval.npz")
    warmup_runs: int = Field(10, ge=0)
    warmup_seconds: float = Field(0.2, ge=0)
    runs: int = Field(50, ge=1, description="at least this many timed runs...")
    min_seconds: float = Field(0.5, ge=0, description="...and at least this long")
    rounds: int = Field(5, ge=1, description="candidates are timed interleaved in this many rounds")
    batch_size: int = Field(8, ge=1)
    threads: Optional[int] = Field(None, ge=1, description="overrides the target profile's threads")
    memory: bool = Field(True, description="peak resident memory per artifact, from a fresh subprocess each (~1 s per artifact)")


class GateConfig(Strict):
    reference: Literal["teacher", "student_fp32"] = "student_fp32"
    max_drop: float = Field(1.0, ge=0, description="points of top-1 (absolute) or percent (relative)")
    drop_type: Literal["absolute", "relative"] = "absolute"
    min_speedup: Optional[float] = Field(None, gt=0, description="over the fp32 baseline on the same target")
    max_size_kb: Optional[float] = Field(None, gt=0)
    allow_empty: bool = Field(False, description="pass when no check could be evaluated on this machine (e.g. only "
                                                 "TensorRT targets built on a workstation); otherwise that fails the gate")


# Options the online and data-free modes have no use for (QAT still reads alpha, ensemble and temperature).
OFFLINE_ONLY = {"hints", "augment", "finetune_epochs", "use_labels"}


class PipelineConfig(Strict):
    name: str = Field("run", pattern=r"^[A-Za-z0-9._-]+$")
    seed: int = Field(0, ge=0, le=MAX_SEED, description="data split, initialisation and shuffling seed")
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:[0-9]+)?)$",
                        description="where teachers and distillation (every mode) train: auto (the GPU when there is one), cpu, cuda, cuda:N")
    data: DataConfig = Field(default_factory=DataConfig)
    teachers: list[TeacherConfig] = Field(default_factory=list, description="at least one, except with distill.mode: online")
    student: StudentConfig
    distill: DistillConfig = Field(default_factory=DistillConfig)
    quantize: QuantizeConfig = Field(default_factory=QuantizeConfig)
    export: ExportConfig = Field(default_factory=ExportConfig)
    targets: list[str] = Field(default_factory=lambda: ["x86-cpu"], min_length=1)
    bench: BenchConfig = Field(default_factory=BenchConfig)
    gate: GateConfig = Field(default_factory=GateConfig)

    @model_validator(mode="before")
    @classmethod
    def _no_teachers_no_distill(cls, raw: Any) -> Any:
        # "Make my model small and fast" needs no distillation: without teachers and without a distill
        # section, the student is shipped as given.
        if isinstance(raw, dict) and not raw.get("teachers") and "distill" not in raw:
            raw = {**raw, "distill": {"mode": "none"}}
        return raw

    @property
    def ships_onnx(self) -> bool:
        """The student is an ONNX file: no stage needs torch."""
        return self.student.onnx is not None

    @model_validator(mode="after")
    def _student_as_given(self) -> PipelineConfig:
        if self.distill.mode == "none":
            if self.teachers:
                raise ValueError("teachers: distill.mode none ships the student as given and uses no teacher; remove "
                                 "teachers, or set distill.mode offline to distill from them")
            if self.student.arch is not None and not self.student.checkpoint:
                raise ValueError("student.checkpoint: needed to ship a PyTorch student as given (no teachers, no distill "
                                 "section): give its trained state_dict, or add teachers to distill it")
            if self.ships_onnx and self.quantize.method == "qat":
                raise ValueError("quantize.method: qat fine-tunes a PyTorch model and student.onnx is an ONNX file; use "
                                 "quantize.method: ptq, or give student.arch and student.checkpoint")
        elif self.ships_onnx:
            raise ValueError(f"student.onnx: distill.mode {self.distill.mode} trains the student in PyTorch; give student.arch "
                             "instead, or remove teachers and the distill section to ship the ONNX file as given")
        return self

    @model_validator(mode="after")
    def _teachers_for_mode(self) -> PipelineConfig:
        if not self.teachers and self.distill.mode not in ("online", "none"):
            raise ValueError(f"teachers: at least one teacher is needed with distill.mode '{self.distill.mode}'")
        if not self.teachers and self.quantize.method == "qat" and self.distill.mode == "online":
            raise ValueError("quantize.method: qat fine-tunes on the teachers' soft targets and this config has no teachers "
                             "(distill.mode online): add a teacher, or use quantize.method: ptq")
        for index, hint in enumerate(self.distill.hints):
            if hint.teacher_index >= len(self.teachers):
                raise ValueError(f"distill.hints[{index}].teacher_index {hint.teacher_index}: there are {len(self.teachers)} "
                                 f"teachers (indices 0..{len(self.teachers) - 1}); use one of those")
        unused = sorted(OFFLINE_ONLY & self.distill.model_fields_set) if self.distill.mode != "offline" else []
        if unused:
            raise ValueError(f"{', '.join('distill.' + f for f in unused)}: used only with distill.mode offline, and this config "
                             f"uses {self.distill.mode}; remove {'it' if len(unused) == 1 else 'them'}")
        return self

    @model_validator(mode="after")
    def _calibration_for_mode(self) -> PipelineConfig:
        # Data-free means no real training image reaches the student, int8 calibration included, so the
        # default calibration set follows the mode; one set explicitly stays the user's choice.
        if self.distill.mode == "data_free" and "calibration" not in self.quantize.model_fields_set:
            self.quantize.calibration = "synthetic-512"
        return self

    @field_validator("targets")
    @classmethod
    def _unique_targets(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("each target may appear once")
        return value

    def digest(self) -> str:
        """Stable hash of the validated config: stages compare it to decide what to rerun."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def load_config(path: str | Path) -> PipelineConfig:
    path = Path(path)
    raw = read_yaml_mapping(path, "config file", "sections (data, teachers, student, ...)")
    return validate_config(raw, source=str(path))


def read_yaml_mapping(path: Path, kind: str, expected: str = "keys") -> dict[str, Any]:
    """Read a YAML file that must hold a mapping: configs, target profiles, calibration recipes.

    yaml.safe_load only (edgekd.yamlio): tags such as !!python/object are refused, nothing in the file is run;
    so are aliases that expand without bound and keys given twice.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: {kind} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the {kind} ({exc})") from None
    try:
        raw = safe_load(text)
    except YamlRefused as exc:
        raise ConfigError(f"{path}{_line(exc)}: {exc}") from None
    except yaml.constructor.ConstructorError as exc:
        raise ConfigError(f"{path}: not valid YAML{_line(exc)}: a tag such as !!python/... is refused, "
                          f"a {kind} is plain data (yaml.safe_load)") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML{_line(exc)}; check indentation and quoting") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to be a {kind}; check the brackets") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of {expected}, got {type(raw).__name__}")
    return raw


def _line(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    return f" at line {mark.line + 1}" if mark else ""


def validate_config(raw: dict[str, Any], source: str = "<config>") -> PipelineConfig:
    try:
        return PipelineConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {describe_validation_error(exc, PipelineConfig)}") from None


def describe_validation_error(exc: ValidationError, root: type[BaseModel]) -> str:
    """One line for the first problem: the dotted key, what is wrong, and a fix."""
    error = exc.errors()[0]
    loc = [str(part) for part in error["loc"]]
    key = ".".join(loc) or "(top level)"
    if error["type"] == "value_error":
        message = error["msg"].removeprefix("Value error, ")
        return message if not loc else f"{key}: {message}"
    if error["type"] == "extra_forbidden":
        valid = _fields_at(root, error["loc"][:-1])
        close = difflib.get_close_matches(loc[-1], valid, n=1, cutoff=0.6)
        hint = f"did you mean '{close[0]}'?" if close else f"valid keys here: {', '.join(sorted(valid))}"
        return f"unknown key '{key}'; {hint}"
    if error["type"] == "missing":
        return f"missing required key '{key}'"
    given = error.get("input")
    shown = repr(given)[:80] if not isinstance(given, (dict, list)) else type(given).__name__
    return f"invalid value for '{key}': {error['msg']} (got {shown})"


def _fields_at(model: type[BaseModel], loc: tuple) -> list[str]:
    """Walk the model classes along a validation location to list the keys valid there."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        field = current.model_fields.get(part) if _is_model(current) else None
        if field is None:
            return []
        current = model_inside(field.annotation)
    return list(current.model_fields) if _is_model(current) else []


def _is_model(obj: Any) -> bool:
    return isinstance(obj, type) and issubclass(obj, BaseModel)


def model_inside(annotation: Any) -> Any:
    """The pydantic model class inside an annotation (Model, list[Model], Optional[Model]), or None."""
    if _is_model(annotation):
        return annotation
    if get_origin(annotation) in (list, Union, Optional) or get_args(annotation):
        for arg in get_args(annotation):
            found = model_inside(arg)
            if found is not None:
                return found
    return None
