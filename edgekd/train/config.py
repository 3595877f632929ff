"""Section models of training: models (teachers, student), the training loop, distillation, ONNX export."""
from __future__ import annotations

from typing import Any, Literal, Optional, Union

from pydantic import Field, field_validator, model_serializer, model_validator

from edgekd.core.sections import MAX_SEED, Integer, OptionalInteger, Strict


class TrainConfig(Strict):
    epochs: Integer = Field(5, ge=0, le=10_000)
    batch_size: Integer = Field(64, ge=1, le=65_536)
    lr: float = Field(0.01, gt=0, le=10)
    weight_decay: float = Field(5e-4, ge=0, le=1)
    optimizer: Literal["sgd", "adamw"] = "sgd"
    amp: Literal["auto", "off", "bf16", "fp16"] = Field("auto", description="autocast: auto picks bf16 on CPUs with AMX/avx512_bf16 and on CUDA")
    channels_last: bool = Field(False, description="NHWC memory format for convolutions (faster on some CPUs and GPUs)")


class ModelConfig(Strict):
    arch: str = Field(..., description="built-in name (convnet, resnet or mlp), torchvision:NAME, module:function or file.py:function")
    width: OptionalInteger = Field(None, ge=1, le=4096, description="base channel count for built-in families")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="extra keyword arguments for the model factory")
    checkpoint: Optional[str] = Field(None, description="state_dict file, loaded with torch.load(weights_only=True); with "
                                      "data.source text, a save_pretrained folder (arch bert, safetensors, its tokenizer.json)")


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


# The kinds of teacher, one key each (edgekd/train/teacher_kinds.py fits and runs those other than arch).
TEACHER_KINDS = ("arch", "sklearn", "lightgbm", "xgboost", "onnx", "skops")
# The kinds edgekd fits itself on the training split (the others arrive trained).
FITTED_KINDS = ("sklearn", "lightgbm", "xgboost")


# The keys of a teacher that only some kinds read (the rest would accept them and do nothing).
_KIND_KEYS = {"params": ("sklearn", "lightgbm", "xgboost"), "trusted": ("skops",), "outputs": ("onnx", "torch")}


class TeacherConfig(ModelConfig):
    """One teacher of the ensemble, of any kind: a PyTorch network (arch), a scikit-learn estimator or pipeline,
    LightGBM or XGBoost (fitted by edgekd on the training split), or a fitted model as an ONNX or skops file."""

    arch: Optional[str] = Field(None, description="kind PyTorch: built-in name (convnet, resnet or mlp), torchvision:NAME, "
                                                  "module:function or file.py:function")
    sklearn: Optional[Union[str, list[dict[str, dict[str, Any]]]]] = Field(
        None, description="kind scikit-learn, fitted on the training split: an estimator class name (HistGradientBoostingClassifier, "
                          "RandomForestClassifier, MLPClassifier, ...) with `params`, or a pipeline as a list of steps "
                          "[{TfidfVectorizer: {...}}, {LogisticRegression: {...}}]")
    lightgbm: Optional[str] = Field(None, description="kind LightGBM, fitted on the training split: LGBMClassifier, with `params`")
    xgboost: Optional[str] = Field(None, description="kind XGBoost, fitted on the training split: XGBClassifier, with `params`")
    onnx: Optional[str] = Field(None, description="kind ONNX: a fitted model of any origin (skl2onnx, onnxmltools, a network) run "
                                                  "with onnxruntime; it takes the data's raw inputs by name")
    skops: Optional[str] = Field(None, description="kind skops: a fitted scikit-learn model file, loaded with skops.io: only the "
                                                   "types skops trusts by default and those in `trusted` are built (nothing "
                                                   "is unpickled)")
    trusted: list[str] = Field(default_factory=list, description="skops: type names the file may hold beyond those skops "
                                                                 "trusts by default (scikit-learn, NumPy, SciPy); "
                                                                 "skops.io.get_untrusted_types(file=...) lists them, often none")
    params: dict[str, Any] = Field(default_factory=dict, description="sklearn/lightgbm/xgboost: the estimator's keyword arguments")
    preprocess: Literal["auto", "onehot", "ordinal", "none"] = Field(
        "auto", description="tables, fitted teachers: how they see the raw columns: ordinal (category codes; NaN kept for LightGBM and "
                            "XGBoost, the median for scikit-learn's trees), onehot (imputed, standardized, one-hot), none (the raw "
                            "columns); auto: ordinal for trees, onehot for the rest")
    outputs: Literal["auto", "probabilities", "logits"] = Field(
        "auto", description="onnx and arch: what the model's (batch, classes) output holds; auto: probabilities when rows are "
                            "non-negative and sum to 1 (a network ending in softmax); probabilities are taken as logits by their log")
    weight: float = Field(1.0, gt=0, description="weight of this teacher in the ensemble")
    train: TrainConfig = Field(default_factory=TrainConfig, description="used only when no checkpoint is given")

    @field_validator("sklearn", mode="before")
    @classmethod
    def _pipeline_steps(cls, value: Any) -> Any:
        """A pipeline's steps as {Name: {params}}: a bare name (`[StandardScaler, LogisticRegression]`) or a name with
        nothing after its colon (YAML `- StandardScaler:` is {StandardScaler: None}) are natural YAML for a step with
        its defaults, and got pydantic's raw union error; anything else is one line showing the step format."""
        if not isinstance(value, list):
            return value
        steps = []
        for number, step in enumerate(value):
            if isinstance(step, str):
                step = {step: {}}
            elif isinstance(step, dict) and len(step) == 1 and next(iter(step.values())) is None:
                step = {next(iter(step)): {}}
            if not (isinstance(step, dict) and len(step) == 1 and isinstance(next(iter(step)), str)
                    and isinstance(next(iter(step.values())), dict)):
                raise ValueError(f"step {number} ({step!r}): a pipeline step is one estimator name with its parameters, as "
                                 "in [{StandardScaler: {}}, {LogisticRegression: {C: 1}}] (a bare name takes the defaults)")
            steps.append(step)
        return steps

    @model_validator(mode="after")
    def _one_kind(self) -> TeacherConfig:
        given = [k for k in TEACHER_KINDS if getattr(self, k) is not None]
        if len(given) != 1:
            kinds = ", ".join(TEACHER_KINDS)
            raise ValueError(f"give exactly one teacher kind of {kinds}; got {', '.join(given) or 'none'}")
        if self.arch is None and self.checkpoint:
            raise ValueError(f"checkpoint: a {given[0]} teacher is fitted or given as a file, not a state_dict; remove it")
        if self.arch is None and "train" in self.model_fields_set:  # only a network (arch) is trained in epochs: ignored
            how = "fitted with their params" if given[0] in FITTED_KINDS else "given fitted, as a file"
            raise ValueError(f"train: {given[0]} teachers are {how}, not trained in epochs (train is read for arch "
                             "teachers only); remove it")
        for key, kinds in _KIND_KEYS.items():  # a key another kind reads would be taken and ignored
            if key in self.model_fields_set and self.kind not in kinds:
                named = ", ".join(kinds[:-1]) + (" and " if len(kinds) > 1 else "") + kinds[-1]
                raise ValueError(f"{key}: read for {named} teachers only, not a {self.kind} teacher; remove it")
        return self

    @property
    def kind(self) -> str:
        """torch, sklearn, lightgbm, xgboost, onnx or skops."""
        return next("torch" if k == "arch" else k for k in TEACHER_KINDS if getattr(self, k) is not None)


class HintConfig(Strict):
    """Feature (hint) distillation: a student layer learns, through a 1x1-conv adapter, to match a teacher layer."""

    student: str = Field(..., description="student module name, e.g. 'features.2' (see model.named_modules())")
    teacher: str = Field(..., description="teacher module name, e.g. 'features.3'")
    teacher_index: Integer = Field(0, ge=0, description="which entry of `teachers` provides the feature")
    weight: float = Field(1.0, gt=0, description="weight of this MSE term in the loss")


class AugmentConfig(Strict):
    """Random shift and flip of the transfer images, drawn per sample and epoch from a seed."""

    shift: Integer = Field(2, ge=0, le=64, description="largest shift in pixels (zero padded)")
    flip: bool = Field(True, description="random horizontal flip")
    seed: Integer = Field(0, ge=0, le=MAX_SEED, description="seed of the per-epoch augmentation draws (independent of the student seed)")
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
    steps: Integer = Field(800, ge=1, le=1_000_000, description="generator/student alternating steps")
    seconds: Optional[float] = Field(None, gt=0, description="stop after this long even if steps remain")
    batch_size: Integer = Field(128, ge=2, le=4096)
    latent_dim: Integer = Field(100, ge=2, le=4096)
    generator_width: Integer = Field(32, ge=4, le=1024, description="generator channels at full resolution (twice that at half): "
                                                                 "its convolutions dominate the cost of a step")
    generator_lr: float = Field(1e-3, gt=0, le=1)
    student_lr: float = Field(0.05, gt=0, le=10)
    student_steps: Integer = Field(5, ge=1, le=100, description="student updates per generator update")
    replay: Integer = Field(8192, ge=0, le=1_000_000, description="synthesized samples (with the teachers' soft targets) kept for "
                                                              "the student steps; 0: generate a fresh batch for each student step")
    amp: Literal["auto", "off", "bf16"] = Field("auto", description="autocast: auto picks bf16 on CPUs with AMX/avx512_bf16")
    bn_weight: float = Field(1.0, ge=0)
    oh_weight: float = Field(0.5, ge=0)
    entropy_weight: float = Field(5.0, ge=0)
    adversarial_weight: float = Field(0.5, ge=0)
    keep_samples: Integer = Field(2048, ge=16, le=1_000_000, description="synthetic images kept as an artifact (and for calibration)")


class DKDConfig(Strict):
    """Decoupled KD (Zhao et al. 2022): the soft term split into the labelled class's share (TCKD) and the ranking
    of the other classes (NCKD), each with its own weight; the loss is CE + T^2 (target_weight TCKD +
    nontarget_weight NCKD), so distill.alpha only switches the teachers on (> 0)."""

    # Defaults are the paper's target weight (1) and the non-target weight that tied best on Fashion-MNIST's 10
    # classes (the paper used 8 on CIFAR-100 and 0.5 on ImageNet). There, one seed each
    # (benchmarks/results/distill_fashion_mnist_trials.md): target_weight 2 did best (val 92.52% against 92.31% at 1;
    # 0.5 and 4 lower), and nontarget_weight 2, 4 and 8 at T 4 were 0.19-0.35 points below 1.
    target_weight: float = Field(1.0, ge=0, le=100, description="weight of TCKD, the labelled class's share (the paper's alpha)")
    nontarget_weight: float = Field(1.0, ge=0, le=100, description="weight of NCKD, the ranking of the other classes (the paper's "
                                                                    "beta): raise it for many classes")


class TransferSetConfig(Strict):
    """Synthetic rows the teachers label and the student learns from beside the training rows (tables only)."""

    method: Literal["munge"] = Field("munge", description="munge (Bucila et al. 2006): each training row with features "
                                     "swapped in from its nearest neighbour, numbers perturbed")
    size: Integer = Field(4, ge=1, le=50, description="synthetic rows as a multiple of the training rows")
    p: float = Field(0.5, gt=0, le=1, description="the chance that each feature takes the neighbour's value")
    s: float = Field(1.0, gt=0, le=1000, description="a swapped number gets gaussian noise of sd |a - b| / s "
                     "(a and b: the row's and the neighbour's values); larger s, less noise")
    seed: OptionalInteger = Field(None, ge=0, le=MAX_SEED, description="the draws' seed (default: the pipeline seed)")


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
    logit_standardize: bool = Field(False, description="z-score every teacher's and the student's logits per image before the temperature "
                                                       "softmax (Sun et al. 2024): the student matches the teachers' ranking and gaps, not "
                                                       "their logit scale, which a small student may not reach; pair with a temperature near 1-2")
    dkd: Optional[DKDConfig] = Field(None, description="decoupled KD instead of Hinton's loss (needs labels): {} for the "
                                                         "defaults, or target_weight / nontarget_weight")
    train: TrainConfig = Field(default_factory=lambda: TrainConfig(epochs=10))
    finetune_epochs: Integer = Field(0, ge=0, le=1000, description="last phase on labels only")
    compare_scratch: bool = Field(False, description="also train the student from scratch (labels only, same settings) and "
                                                     "report it as the reference row student_scratch: does distillation help?")
    use_labels: bool = Field(True, description="false: treat the transfer set as unlabeled (soft targets and hints only)")
    hints: list[HintConfig] = Field(default_factory=list, description="feature distillation terms")
    augment: Optional[AugmentConfig] = Field(None, description="random shift/flip of the transfer images")
    transfer_set: Optional[TransferSetConfig] = Field(None, description="tables: synthetic rows labelled by the teachers' "
                                                      "ensemble, added to the training rows ({method: munge, size: 4, p: 0.5, s: 1})")
    out_of_fold: OptionalInteger = Field(None, ge=2, le=20, description="teachers edgekd fits (scikit-learn, LightGBM, XGBoost): "
                                       "their outputs on the training rows come from K fits each on the other folds "
                                       "(stratified), as stacking does, not from the fit that saw those rows; null: that fit")
    seed: OptionalInteger = Field(None, ge=0, le=MAX_SEED, description="student init and shuffling seed (default: the pipeline seed); "
                                                  "does not change the data split, so teacher caches stay valid")
    cache_dir: Optional[str] = Field(None, description="teacher-logit cache folder shared across runs "
                                                       "(default .cache/teacher-logits beside the run folder, or $EDGEKD_CACHE_DIR)")

    @field_validator("use_labels")
    @classmethod
    def _labels_or_teachers(cls, value: bool, info) -> bool:
        if not value and info.data.get("alpha") == 0:
            raise ValueError("with alpha 0 and use_labels false the student has nothing to learn from: "
                             "set alpha > 0 (soft targets), or use_labels true")
        if not value and info.data.get("compare_scratch"):
            raise ValueError("distill.compare_scratch trains the student on labels, and use_labels is false: "
                             "set use_labels true, or remove distill.compare_scratch")
        if not value and info.data.get("dkd") is not None:
            raise ValueError("distill.dkd splits the soft term at each image's label, and use_labels is false: "
                             "set use_labels true, or remove distill.dkd")
        return value

    @model_validator(mode="after")
    def _dkd_alone(self) -> DistillConfig:
        if self.dkd is not None and self.logit_standardize:
            raise ValueError("distill.dkd and distill.logit_standardize: choose one of the two soft losses")
        if not self.use_labels and "alpha" in self.model_fields_set and self.alpha != 1:  # refused, not silently 1
            raise ValueError(f"distill.alpha {self.alpha}: with use_labels false the loss is the teachers' soft targets "
                             "alone (alpha counts as 1); remove alpha, or set use_labels true to weigh the labels in")
        unused = sorted(ONLINE_UNUSED & self.model_fields_set) if self.mode == "online" else []
        if unused:
            raise ValueError(f"{', '.join('distill.' + k for k in unused)}: not used with distill.mode online, whose peers "
                             "learn from each other at distill.online.temperature; remove "
                             f"{'it' if len(unused) == 1 else 'them'}")
        unused = sorted(DATA_FREE_UNUSED & self.model_fields_set) if self.mode == "data_free" else []
        if unused:  # refused as the offline-only options are: accepted, it ran as if distill.train had not been given
            raise ValueError(f"{', '.join('distill.' + k for k in unused)}: not used with distill.mode data_free, whose "
                             "student learns in the generator's loop: set distill.data_free.steps, student_steps, "
                             f"student_lr and batch_size instead; remove {'it' if len(unused) == 1 else 'them'}")
        return self

    @model_serializer(mode="wrap")
    def _unset_out_of_fold_left_out(self, handler) -> dict[str, Any]:
        """Left out of the dump while unset, so that every config without it dumps, and keys its stages, as before."""
        dumped = handler(self)
        return {k: v for k, v in dumped.items() if k != "out_of_fold" or v is not None}


class ExportConfig(Strict):
    opset: Integer = Field(18, ge=17, le=23, description="ONNX opset; the torch.export-based exporter needs 18 or newer for some ops")
    dynamic_batch: bool = True
    parity_samples: Integer = Field(64, ge=1, le=100_000)
    parity_atol: float = Field(1e-3, gt=0)
    min_top1_agreement: float = Field(0.99, ge=0, le=1)


# Options the online and data-free modes have no use for (QAT still reads alpha, ensemble and temperature).
OFFLINE_ONLY = {"hints", "augment", "finetune_epochs", "use_labels", "logit_standardize", "dkd", "transfer_set", "out_of_fold"}
# What online distillation has no use for beside them: its peers have no teachers' soft targets to weigh or soften.
ONLINE_UNUSED = {"alpha", "temperature"}
# What data-free distillation has no use for: its student steps are distill.data_free's (steps, student_steps,
# student_lr, batch_size, amp); no key of distill.train is read in that mode.
DATA_FREE_UNUSED = {"train"}
