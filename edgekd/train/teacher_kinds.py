"""Teachers that are not PyTorch networks: scikit-learn estimators and pipelines, LightGBM and XGBoost (fitted here on
the training split), and fitted models given as files: ONNX (run with onnxruntime) or skops (loaded with
skops.io, which builds only the types it trusts by default and those listed in `trusted`; nothing is unpickled).

Each sees the data in its own form: a table's raw columns (a DataFrame; trees get category codes with NaN kept, other
models imputed, standardized, one-hot columns, both fitted on the training split inside the teacher's pipeline), raw
texts for a text pipeline (TfidfVectorizer + LogisticRegression), or the named raw columns for an ONNX file. What
every kind gives is the same: (n, classes) float32 logits; for a model that outputs probabilities, their logarithm
(softmax(log p) = p, so they mix with networks' logits in the ensemble and the teacher-logit cache).
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekd.core.errors import ConfigError, DataError, ModelError
from edgekd.core.fileio import resolve_path, sha256_of
from edgekd.train.booster_params import check_booster_params

TREE_WORDS = ("Tree", "Forest", "Boosting", "LGBM", "XGB")  # preprocess auto: these get category codes, NaN kept
PROBABILITY_FLOOR = 1e-7  # log(0) would be -inf: a class a tree never predicts gets this probability instead
ONNX_OPSET = {"": 17, "ai.onnx.ml": 3}  # one opset for every converted member (onnxmltools writes ai.onnx.ml 3 at most), so they merge


@dataclass
class Teacher:
    """One teacher ready to predict: logits(x) -> (n, classes); identity: what the cache keys it by."""

    index: int
    kind: str
    name: str
    logits: Callable[[Any], np.ndarray]
    identity: str
    model: Any = None  # the fitted scikit-learn object, for the ONNX export
    onnx_path: Path | None = None  # an ONNX teacher's file
    fit: Callable[[], Any] | None = None  # fit_teacher(lazy=True): fits the model when first needed

    @property
    def where(self) -> str:
        return f"teachers[{self.index}]"

    def fitted_model(self):
        """The scikit-learn object, fitted now if it was not yet (a lazy teacher whose outputs were all cached is never
        fitted unless its ONNX file must be made)."""
        if self.model is None and self.fit is not None:
            self.model = self.fit()
        return self.model


def estimator_class(kind: str, name: str, where: str):
    """The class a config names, from the library's own list of estimators (no import of arbitrary paths)."""
    if kind == "lightgbm":
        import lightgbm

        found = {"LGBMClassifier": lightgbm.LGBMClassifier}
    elif kind == "xgboost":
        import xgboost

        found = {"XGBClassifier": xgboost.XGBClassifier}
    else:
        from sklearn.utils import all_estimators

        found = dict(all_estimators())
    if name not in found:
        close = sorted(n for n in found if n.lower().startswith(name.lower()[:4]))[:6]
        raise ConfigError(f"{where}.{kind}: unknown estimator '{name}'; " +
                          (f"did you mean {', '.join(close)}?" if close else f"use one of {', '.join(sorted(found)[:8])}, ..."))
    return found[name]


def build_estimator(spec, index: int, seed: int):
    """The configured estimator (or pipeline of steps), not fitted; random_state from the seed where it takes one."""
    where = f"teachers[{index}]"
    kind = spec.kind
    steps = spec.sklearn if isinstance(spec.sklearn, list) else [{getattr(spec, kind): spec.params}]
    if isinstance(spec.sklearn, list) and spec.params:
        raise ConfigError(f"{where}.params: a pipeline gives each step's parameters in its step ({{Step: {{...}}}}); remove params")
    made = []
    for number, step in enumerate(steps):
        if len(step) != 1:
            raise ConfigError(f"{where}.sklearn[{number}]: a step is one {{EstimatorName: {{params}}}}; got {sorted(step)}")
        (name, params), = step.items()
        cls = estimator_class(kind, name, where)
        defaults = cls().get_params()
        # YAML has lists, not tuples: a parameter whose default is a tuple (ngram_range) gets one
        params = {k: tuple(v) if isinstance(v, list) and isinstance(defaults.get(k), tuple) else v for k, v in (params or {}).items()}
        if "random_state" in defaults and "random_state" not in params:
            params["random_state"] = seed + index
        if kind in ("lightgbm", "xgboost"):
            check_booster_params(kind, cls, params, where)
        if kind == "lightgbm" and "verbose" not in params:  # else a dozen [LightGBM] [Info] lines bury the run's progress
            params["verbose"] = -1
        try:
            made.append(cls(**params))
        except TypeError as exc:
            raise ConfigError(f"{where}: {name}: {str(exc)[:160]}; see its documentation for the parameters it takes") from None
    _check_classifier(made[-1], kind, where, isinstance(spec.sklearn, list))
    if len(made) == 1:
        return made[0]
    from sklearn.pipeline import make_pipeline

    return make_pipeline(*made)


def _check_classifier(estimator, kind: str, where: str, pipeline: bool) -> None:
    """A teacher predicts data.target's classes: a regressor or a transformer in its place would fail later, deep in
    the run, on a missing classes_."""
    from sklearn.base import is_classifier

    if not is_classifier(estimator):
        name = type(estimator).__name__
        place = "the pipeline's last step " if pipeline else ""
        raise ConfigError(f"{where}.{kind}: {place}{name} is not a classifier; a teacher predicts data.target's classes: name a "
                          "classifier (RandomForestClassifier, LogisticRegression, ...)")


def table_front(estimator, schema, preprocess: str, kind: str = "sklearn"):
    """The teacher's own view of a table's raw columns, fitted with it: codes for trees, one-hot for the rest.
    LightGBM and XGBoost keep NaN (their ONNX converters route missing values as they do); scikit-learn's trees get
    the median instead, because skl2onnx's tree converter ignores the side a forest learned for missing values, and
    the ensemble's ONNX file would then disagree with it on every row with a gap."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

    if preprocess == "none":
        return estimator
    if preprocess == "auto":
        name = type(estimator[-1] if hasattr(estimator, "steps") else estimator).__name__
        preprocess = "ordinal" if any(word in name for word in TREE_WORDS) else "onehot"
    # the schema's categories (every value in the file): a value that falls in validation or test only is known
    categories = [list(c.categories) for c in schema.columns if c.name in schema.categorical]
    if preprocess == "ordinal":
        numeric = "passthrough" if kind in ("lightgbm", "xgboost") else SimpleImputer(strategy="median")
        categorical = OrdinalEncoder(categories=categories, dtype=np.float32)
    else:
        numeric = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
        categorical = OneHotEncoder(categories=categories, handle_unknown="ignore", sparse_output=False, dtype=np.float32)
    parts = [p for p in (("numeric", numeric, schema.numeric), ("categorical", categorical, schema.categorical)) if p[2]]
    return make_pipeline(ColumnTransformer(parts, sparse_threshold=0), estimator)


def fit_teacher(spec, index: int, x_train, y_train: np.ndarray, classes: int, seed: int, schema=None,
                lazy: bool = False) -> Teacher:
    """Fit a sklearn/lightgbm/xgboost teacher on the training split. x_train: a table's {column: (n, 1)} (with
    `schema`) or a sequence of raw texts. lazy: fit when its outputs or model are first asked for, so a run whose
    outputs of this teacher are all cached (--resume after another teacher changed) does not refit it."""
    estimator = build_estimator(spec, index, seed)  # config errors show before anything is fitted
    if _scores_one_vs_one(estimator):  # refused as a skops file's SVC is (load_teacher), before the fit
        raise ConfigError(f"teachers[{index}].{spec.kind}: {ONE_VS_ONE}; set params decision_function_shape: ovr "
                          "(SVC's default), one score per class")
    model = table_front(estimator, schema, spec.preprocess, spec.kind) if schema is not None else estimator
    view = _view(schema)
    refusals = (ValueError, TypeError, *_library_errors(spec.kind))

    def fit():
        from edgekd.core.progress import heartbeat

        try:
            with heartbeat(f"fitting teachers[{index}] {describe(spec)} on {len(y_train):,} rows"):
                model.fit(view(x_train), y_train)
        except refusals as exc:
            raw = (f"; with preprocess: none it gets the raw columns (categories as text: {', '.join(schema.categorical)}): "
                   "use preprocess: auto, or a pipeline that encodes them") if schema is not None and spec.preprocess == "none" else ""
            raise ModelError(f"teachers[{index}]: fitting {describe(spec)} failed: {str(exc).splitlines()[0][:200]}{raw}") from None
        return model

    teacher = Teacher(index, spec.kind, describe(spec), lambda x: _model_logits(teacher.fitted_model(), view(x), classes),
                      fitted_identity(spec, seed), fit=fit)
    if not lazy:
        teacher.fitted_model()
    return teacher


def _library_errors(kind: str) -> tuple[type[Exception], ...]:
    """The errors LightGBM and XGBoost raise for a bad parameter value (num_leaves: -3), which are neither ValueError
    nor TypeError: said as the one line a bad scikit-learn value gets, not as an internal error."""
    if kind == "lightgbm":
        from lightgbm.basic import LightGBMError

        return (LightGBMError,)
    if kind == "xgboost":
        from xgboost.core import XGBoostError

        return (XGBoostError,)
    return ()


def out_of_fold_logits(spec, index: int, x_train, y_train: np.ndarray, classes: int, seed: int, folds: int,
                       schema=None) -> np.ndarray:
    """The teacher's outputs on its own training rows, each row's from a fit on the other folds (stratified K-fold, as
    stacking makes its level-one data; distill.out_of_fold). A random forest or boosted trees fitted on a row are
    nearly certain of its label, so their in-sample outputs teach a student little beyond the label itself; held-out
    outputs carry what the teacher believes about rows it has not seen, which is what the student is to learn."""
    from sklearn.model_selection import StratifiedKFold

    y_train = np.asarray(y_train)
    counts = np.bincount(y_train, minlength=classes)
    if counts[counts > 0].min() < folds:
        raise ConfigError(f"distill.out_of_fold: {folds} folds need at least {folds} training rows of every class; one "
                          f"class has {int(counts[counts > 0].min())}; lower distill.out_of_fold or set it to null")
    out = np.empty((len(y_train), classes), dtype=np.float32)
    for rest, held in StratifiedKFold(folds, shuffle=True, random_state=seed).split(np.zeros(len(y_train)), y_train):
        fold = fit_teacher(spec, index, _rows(x_train, rest), y_train[rest], classes, seed, schema)
        out[held] = fold.logits(_rows(x_train, held))
    return out


def _rows(x, index: np.ndarray):
    """Rows `index` of a table's {column: array} or of a sequence of texts."""
    if isinstance(x, dict):
        return {name: column[index] for name, column in x.items()}
    return [x[i] for i in index]


def fitted_identity(spec, seed: int) -> str:
    """What a fitted teacher's cached outputs are keyed by (with the data's fingerprint): its config, the seed and the
    library versions; known before fitting, so a cache hit skips the fit."""
    return _digest({"kind": spec.kind, "spec": spec.model_dump(mode="json", exclude={"weight"}), "seed": seed,
                    "versions": _versions(spec.kind)})


def load_teacher(spec, index: int, classes: int, base_dir: Path, schema=None) -> Teacher:
    """A fitted model given as a file: ONNX (onnxruntime) or skops (the trusted types only)."""
    where = f"teachers[{index}].{spec.kind}"
    path = resolve_path(Path(getattr(spec, spec.kind)).expanduser(), base_dir)
    if not path.is_file():
        raise ConfigError(f"{where} '{getattr(spec, spec.kind)}': no such file ({path}); give the path, absolute or relative to "
                          "the config file")
    identity = _digest({"kind": spec.kind, "file": sha256_of(path), "outputs": spec.outputs, "trusted": spec.trusted})
    if spec.kind == "onnx":
        names = list(schema.classes) if schema is not None else None
        return Teacher(index, "onnx", path.name, onnx_logits(path, spec.outputs, classes, where, names), identity, onnx_path=path)
    model = _load_skops(path, spec.trusted, where)
    where = f"{where} '{getattr(spec, spec.kind)}'"
    view, names = _users_view(schema), list(schema.classes) if schema is not None else None
    _knows_every_class(model, classes, names, where)
    if _scores_one_vs_one(model):
        raise ModelError(f"{where}: {ONE_VS_ONE}; fit it with decision_function_shape='ovr' or probability=True")
    return Teacher(index, "skops", path.name, lambda x: _model_logits(model, _its_columns(model, view(x), where), classes,
                                                                      names, where), identity, model=model)


ONE_VS_ONE = ("its decision_function gives one-vs-one scores (decision_function_shape='ovo'), one per pair of classes, "
              "not per class")


def _scores_one_vs_one(model) -> bool:
    """Whether the teacher's scores would be an SVC's one-vs-one pair scores: with 3 classes there are 3 pairs, so they
    pass for class logits unnoticed (a trial's teacher scored 18.2%)."""
    final = model.steps[-1][1] if hasattr(model, "steps") else model  # a Pipeline's classifier
    return not hasattr(model, "predict_proba") and getattr(final, "decision_function_shape", "ovr") == "ovo"


def _knows_every_class(model, classes: int, names: list[str] | None, where: str) -> None:
    """A model given as a file was fitted elsewhere, on the whole target: one that never saw a class of the data would
    teach that class never happens (a trial's 2-class model taught a 3-class student, and the run passed)."""
    missing = sorted(set(range(classes)) - set(_class_columns(model, classes, names, where).tolist()))
    if missing:
        shown = ", ".join(repr(names[i]) if names else str(i) for i in missing[:6])
        raise ModelError(f"{where}: the model knows no class {shown} of data.target; give a model fitted on every class")


def _its_columns(model, x, where: str):
    """A DataFrame's columns as the model was fitted on them (scikit-learn's feature_names_in_: by name, in its
    order), so that a model fitted on another column order or a subset reads its own; one line naming a column the
    data lacks."""
    fitted = getattr(model, "feature_names_in_", None)
    if fitted is None or not hasattr(x, "columns"):
        return x
    missing = [str(name) for name in fitted if name not in x.columns]
    if missing:
        raise ModelError(f"{where}: the model was fitted on column(s) {', '.join(missing[:6])}, which the data does not give "
                         f"({', '.join(map(str, list(x.columns)[:8]))}); add them to data.features, or give a model fitted on these")
    return x[list(fitted)]


def _users_view(schema):
    """_view for a model fitted elsewhere on the user's file: a missing category (edgekd keeps it as '', a category of
    its own for the models it fits) is NaN, as pandas read it for them (their imputer saw NaN, never '')."""
    view = _view(schema)
    if schema is None:
        return view

    def with_nan(x):
        table = view(x)
        from pandas.api.types import is_object_dtype, is_string_dtype

        text = [name for name in table.columns if is_string_dtype(table[name]) or is_object_dtype(table[name])]
        return table.assign(**{name: table[name].mask(table[name] == "") for name in text}) if text else table

    return with_nan


def _view(schema):
    """How a fitted teacher is given the data: a table as a DataFrame of its raw columns, anything else as it is."""
    if schema is None:
        return lambda x: x
    from edgekd.data.tabular import frame

    return frame


def _model_logits(model, x, classes: int, names: list[str] | None = None, where: str = "teacher") -> np.ndarray:
    """log of predict_proba spread over all `classes` (a class absent from training gets the floor), or
    decision_function for models without probabilities. `names`: the data's class names, for a model fitted
    elsewhere (skops) on the raw target, whose classes_ are those names rather than edgekd's class indices."""
    fitted = _class_columns(model, classes, names, where)
    probabilities = hasattr(model, "predict_proba")
    try:
        raw = model.predict_proba(x) if probabilities else model.decision_function(x)
    except Exception as exc:  # the user's model: any error of its own, said as one line naming the teacher
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        raise ModelError(f"{where}: its {'predict_proba' if probabilities else 'decision_function'} failed on the data's "
                         f"rows ({type(exc).__name__}: {first}); give a classifier fitted on data.path's columns as edgekd "
                         "reads them (missing values as NaN)") from None
    if probabilities:
        scores = np.log(np.clip(np.asarray(raw, dtype=np.float64), PROBABILITY_FLOOR, 1.0))
        floor = np.log(PROBABILITY_FLOOR)
    else:
        scores = np.asarray(raw, dtype=np.float64)
        scores = np.stack([-scores, scores], 1) if scores.ndim == 1 else scores
        floor = scores.min() - 10.0
    if scores.ndim != 2 or scores.shape[1] != len(fitted):
        raise ModelError(f"{where}: its {'predict_proba' if probabilities else 'decision_function'} gives {scores.shape[-1]} "
                         f"columns for its {len(fitted)} classes (a one-vs-one SVC?); fit it with "
                         "decision_function_shape='ovr' or probability=True")
    out = np.full((scores.shape[0], classes), floor, dtype=np.float32)
    out[:, fitted] = scores
    return out


def _class_columns(model, classes: int, names: list[str] | None, where: str) -> np.ndarray:
    """Where each of the model's classes_ goes among the data's classes: by name when they are the data's class
    names, else as class indices (what edgekd fits teachers on); one line when neither fits."""
    from edgekd.data.table_schema import category_text

    if not hasattr(model, "classes_"):
        raise ModelError(f"{where}: {type(model).__name__} has no classes_; a teacher must be a fitted classifier")
    given = np.asarray(model.classes_).tolist()
    if names is not None and all(category_text(c) in names for c in given):
        return np.array([names.index(category_text(c)) for c in given], dtype=np.int64)
    if all(isinstance(c, (int, np.integer)) and 0 <= c < classes for c in given):
        return np.asarray(given, dtype=np.int64)
    shown = ", ".join(map(repr, given[:6]))
    raise ModelError(f"{where}: the model's classes ({shown}) are not data.target's ({', '.join(map(repr, (names or [])[:6]))}); "
                     "give a model fitted on the same target")


def onnx_logits(path: Path, outputs: str, classes: int, where: str, names: list[str] | None = None) -> Callable[[Any], np.ndarray]:
    """Run an ONNX teacher: the data's arrays fed to its inputs by name (one unnamed input gets the one array), its
    (batch, classes) float output taken as logits, or as probabilities (then their log). With `names` (the data's
    classes) and class labels in the graph (skl2onnx and onnxmltools write them), the columns are put in the data's
    order, or a model of other classes is refused."""
    from edgekd.core.metrics import predict
    from edgekd.runtimes.ort import OrtSession, as_declared

    session = OrtSession(path, threads=None)
    inputs = [i.name for i in session._session.get_inputs()]
    kinds = {i.name: i.type for i in session._session.get_inputs()}
    chosen = _probability_output(session._session, classes, where)
    order = _label_order(path, names, where)

    def run(batch):
        feed = batch if isinstance(batch, dict) else {inputs[0]: batch}
        columns = columns_of_inputs(inputs, list(feed), where)
        return session._session.run([chosen], {name: as_declared(feed[columns[name]], kinds[name], name, where)
                                               for name in inputs})[0]

    def logits(x):
        raw = np.asarray(predict(run, x), dtype=np.float64)
        raw = raw[:, order] if order is not None and raw.ndim == 2 and raw.shape[1] == len(order) else raw
        if raw.ndim != 2 or raw.shape[1] != classes:
            raise ConfigError(f"{where}: output '{chosen}' has shape {raw.shape}, the data has {classes} classes")
        probabilities = outputs == "probabilities" or (
            outputs == "auto" and raw.min() >= 0 and np.allclose(raw.sum(1), 1.0, atol=1e-3))
        return (np.log(np.clip(raw, PROBABILITY_FLOOR, 1.0)) if probabilities else raw).astype(np.float32)

    return logits


def skl2onnx_name(column: str) -> str:
    """The input name skl2onnx gives a DataFrame column (its Topology._generate_unique_name): every character that is
    not a letter, digit, '_' or '+' becomes '_', and a leading digit gets a '_' before it ('mean radius' ->
    'mean_radius', 'od280/od315' -> 'od280_od315')."""
    import re

    name = re.sub(r"[^\w+]", "_", str(column))
    return "_" + name if re.match(r"[0-9]", name) else name


def columns_of_inputs(inputs: list[str], columns: list[str], where: str) -> dict[str, str]:
    """The data's column each input of an ONNX teacher takes: the column of its name, else the one column skl2onnx
    would have renamed to it (a model converted from a DataFrame whose column names are not identifiers was refused,
    with advice to add 'mean_radius' to data.features, which no file has); one line when none or several fit."""
    out = {}
    for name in inputs:
        if name in columns:
            out[name] = name
            continue
        derived = [c for c in columns if skl2onnx_name(c) == name]
        if len(derived) == 1:
            out[name] = derived[0]
        elif derived:
            raise ConfigError(f"{where}: the model's input '{name}' is what skl2onnx renamed each of the columns "
                              f"{', '.join(map(repr, derived[:4]))} to; rename the columns so their names are identifiers "
                              "(letters, digits, '_'), and convert the model again")
        else:
            raise ConfigError(f"{where}: the model's input '{name}' is not among the data's columns ({', '.join(sorted(columns))}), "
                              "nor one skl2onnx would rename to it; if data.path has it, add it to data.features; else "
                              "convert the model with inputs named as the data's columns")
    return out


def _label_order(path: Path, names: list[str] | None, where: str) -> np.ndarray | None:
    """The model's output column of each of the data's classes, from the class labels a converted classifier holds
    (classlabels_strings / classlabels_int64s); None when the graph has none (a network) or they are the data's order.
    A model trained with the target coded otherwise would otherwise be scored against the wrong classes, silently."""
    import onnx

    if names is None:
        return None
    labels = None
    graph = onnx.load(str(path), load_external_data=False).graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.name == "classlabels_strings" and attr.strings:
                labels = [v.decode() for v in attr.strings]
            elif attr.name == "classlabels_int64s" and attr.ints:
                labels = [str(v) for v in attr.ints]
    if labels is None:  # skl2onnx's float64 converters keep them in an initializer `classes` (ArrayFeatureExtractor)
        labels = _classes_initializer(graph)
    indices = [str(i) for i in range(len(names))]  # a model fitted on class indices, as edgekd fits its own
    if labels is None or labels == names or (labels == indices and sorted(names) != indices):
        return None
    if sorted(labels) != sorted(names):
        raise ConfigError(f"{where}: the model's classes ({', '.join(map(repr, labels[:6]))}) are not data.target's "
                          f"({', '.join(map(repr, names[:6]))}); give a model trained on the same target")
    return np.array([labels.index(name) for name in names])


def _classes_initializer(graph) -> list[str] | None:
    from onnx import TensorProto, numpy_helper

    for init in graph.initializer:
        if init.name == "classes" and init.data_type in (TensorProto.STRING, TensorProto.INT64, TensorProto.INT32):
            return [v.decode() if isinstance(v, bytes) else str(v) for v in numpy_helper.to_array(init).reshape(-1).tolist()]
    return None


FLOAT_OUTPUTS = ("tensor(float)", "tensor(double)")  # skl2onnx writes double probabilities for a float64 DataFrame


def _probability_output(session, classes: int, where: str) -> str:
    """The output holding (batch, classes) floats: skl2onnx's 'probabilities' (zipmap off), or a network's logits."""
    for output in session.get_outputs():
        shape = output.shape or []
        fixed = len(shape) == 2 and isinstance(shape[1], int)
        if output.type in FLOAT_OUTPUTS and len(shape) == 2 and (not fixed or shape[1] == classes):
            return output.name
    other = [o for o in session.get_outputs() if o.type in FLOAT_OUTPUTS and len(o.shape or []) == 2]
    if other:
        raise ConfigError(f"{where}: output '{other[0].name}' gives {other[0].shape[1]} classes, but data.target has {classes}; "
                          "give a model trained on the same classes")
    described = ", ".join(f"{o.name} {o.type} {o.shape}" for o in session.get_outputs())
    raise ConfigError(f"{where}: no (batch, {classes}) float output among {described}; convert a classifier with "
                      "options={'zipmap': False} (skl2onnx) so it outputs a probability tensor")


def _load_skops(path: Path, trusted: list[str], where: str):
    """The model in a skops file. skops.io builds the types it trusts by default (scikit-learn's estimators, NumPy,
    SciPy, builtins) and those listed in `trusted`, and nothing else; get_untrusted_types names the rest beforehand, so
    the refusal is one line naming them rather than skops' exception."""
    from zipfile import BadZipFile

    try:
        import skops.io as sio
    except ImportError:
        raise ConfigError(f"{where}: needs skops; pip install 'edgekd[tabular]'") from None
    try:
        untrusted = sio.get_untrusted_types(file=str(path))
    except BadZipFile:  # skops.io.dump writes a zip archive
        raise ModelError(f"{where} '{path}': not a skops file (skops.io.dump writes a zip archive; a pickle or joblib file "
                         "renamed?); edgekd never unpickles: save the model with skops.io.dump, or convert it to ONNX") from None
    except Exception as exc:
        raise ModelError(f"{where} '{path}': skops cannot read it ({str(exc).splitlines()[0][:160]}); save the model again "
                         "with skops.io.dump") from None
    refused = sorted(set(untrusted) - set(trusted))
    if refused:
        raise ModelError(f"{where} '{path}': holds types skops does not trust by default and `trusted` does not list: "
                         f"{', '.join(refused[:4])}{f' and {len(refused) - 4} more' if len(refused) > 4 else ''}; add them "
                         "to `trusted` only if you trust the file's origin")
    return sio.load(str(path), trusted=list(trusted))


def describe(spec) -> str:
    """A fitted teacher's name: its estimator, or its pipeline's steps joined by ' + '."""
    if isinstance(spec.sklearn, list):
        return " + ".join(next(iter(step)) for step in spec.sklearn)
    return str(getattr(spec, spec.kind))


def _versions(kind: str) -> dict[str, str]:
    import sklearn

    out = {"sklearn": sklearn.__version__}
    if kind in ("lightgbm", "xgboost"):
        out[kind] = __import__(kind).__version__
    return out


def _digest(data: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def check_outputs(teacher: Teacher, logits: np.ndarray) -> np.ndarray:
    if not np.isfinite(logits).all():
        raise DataError(f"{teacher.where} ({teacher.name}): outputs contain NaN or Inf; check the model and the data")
    return logits
