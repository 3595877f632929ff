"""Every key of a pipeline config with its default and description (`edgekd keys`), the config's JSON
Schema (`edgekd schema`) and a commented starter config (`edgekd init`).

The descriptions and defaults live once, in the section models each layer owns, composed in edgekd/pipeline/config.py; this walks them
together with a default-constructed PipelineConfig, so a nested section shows the default its parent
gives it (distill.train.epochs is 10, not TrainConfig's own 5) and the command line cannot drift from
what a run actually uses.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from edgekd.core.errors import ConfigError
from edgekd.core.sections import model_inside
from edgekd.pipeline.config import OWN_SECTIONS, PipelineConfig, sections_of


def _walk_all(model) -> list[str]:
    return list(_walk(model, _defaults() if model is PipelineConfig else model.model_construct(), ""))


def key_lines(section: str | None = None, task: str | None = None) -> list[str]:
    """`key = default  # description` for every key (under `section`, a dotted prefix such as distill.data_free);
    task "language-model" walks that task's own sections (tasks/lm.LanguageModelConfig) instead."""
    model = _task_model(task)
    lines = list(_walk(model, _defaults() if model is PipelineConfig else model.model_construct(), ""))
    if section:
        prefix = section.rstrip(".")
        lines = [line for line in lines if line.startswith((prefix + ".", prefix + "[", prefix + " ", prefix + ":"))]
        if not lines:
            import difflib

            top = sorted(model.model_fields)
            keys = sorted({line.split(" ")[0].split(":")[0] for line in _walk_all(model)})
            near = difflib.get_close_matches(prefix, keys, n=1)
            hint = f"did you mean '{near[0]}'? " if near else ""
            raise ConfigError(f"edgekd keys {section}: no such section or key; {hint}top-level sections: {', '.join(top)}")
    return lines


def _task_model(task: str | None) -> type[BaseModel]:
    if task in (None, "image"):
        return PipelineConfig
    if task in OWN_SECTIONS:
        return sections_of(task)
    raise ConfigError(f"--task {task}: unknown task; use image (the default) or {' or '.join(OWN_SECTIONS)}")


def key_defaults() -> dict[str, Any]:
    """{dotted key: default as JSON} for every leaf key, as `edgekd keys` prints them; list items (`teachers[]`)
    and optional sections (`distill.augment`) show the defaults their model gives once written."""
    out = {}
    for line in key_lines():
        if " = " in line:
            key, rest = line.split(" = ", 1)
            out[key] = rest.split("  # ", 1)[0]
    return out


def _defaults() -> PipelineConfig:
    """A config with every default filled in, default_factory sections included; `student` (required)
    stays unset, which model_construct allows without validating."""
    return PipelineConfig.model_construct()


def _walk(model: type[BaseModel], instance: BaseModel | None, prefix: str):
    keys = getattr(model, "config_keys", None)  # a section that takes only some of its model's fields (LMThresholds)
    for name, field in model.model_fields.items():
        if keys is not None and name not in keys:
            continue
        key = f"{prefix}{name}"
        inner = model_inside(field.annotation)
        value = instance.__dict__.get(name) if instance is not None else None
        if inner is not None and inner is not model:
            is_list = "list[" in str(field.annotation)
            unset = not is_list and value is None and instance is not None
            note = ("(required)" if field.is_required() else "(none by default; these are its keys once set)") if unset else ""
            text = " ".join(t for t in (field.description or inner.__doc__ or "", note) if t)
            yield f"{key}{'[]' if is_list else ''}:  # {text}".rstrip(" #")
            # A list item or an unset optional section gets its own model's defaults; a section the parent
            # builds (default_factory) gets the values the parent gave it.
            nested = value if isinstance(value, BaseModel) else None
            yield from _walk(inner, nested, f"{key}{'[]' if is_list else ''}.")
            continue
        note = f"  # {field.description}" if field.description else ""
        yield f"{key} = {_default(field, instance, name)}{note}"


def _default(field: Any, instance: BaseModel | None, name: str) -> str:
    if field.is_required() and (instance is None or name not in instance.__dict__):
        return "(required)"
    value = getattr(instance, name) if instance is not None else field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    return json.dumps(value)


def json_schema(task: str | None = None) -> dict[str, Any]:
    """The JSON Schema of a pipeline file, for editor completion (YAML language servers read it via
    `# yaml-language-server: $schema=edgekd.schema.json`); task "language-model" gives that task's file's schema."""
    model = _task_model(task)
    schema = model.model_json_schema(mode="validation")
    _factory_defaults(model, schema, schema)
    _only_config_keys(model, schema, schema)
    title = "edgekd pipeline" if model is PipelineConfig else f"edgekd {task} pipeline"
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema, "title": title}


def _factory_defaults(model: type[BaseModel], node: dict[str, Any], root: dict[str, Any]) -> None:
    """pydantic leaves out defaults made by default_factory, so an editor would show a nested model's own
    defaults (TrainConfig's 5 epochs) where the parent gives another (distill.train: 10): state them."""
    for name, field in model.model_fields.items():
        prop = node.get("properties", {}).get(name)
        if prop is None:
            continue
        if field.default_factory is not None:
            value = field.get_default(call_default_factory=True)
            prop["default"] = value.model_dump(mode="json") if isinstance(value, BaseModel) else value
        inner = model_inside(field.annotation)
        ref = prop.get("$ref", "")
        if inner is not None and inner is not model and ref.startswith("#/$defs/"):
            _factory_defaults(inner, root["$defs"][ref.rsplit("/", 1)[1]], root)


def _only_config_keys(model: type[BaseModel], node: dict[str, Any], root: dict[str, Any]) -> None:
    """A section that takes only some of its model's fields (LMThresholds.config_keys: a language model's gate) lists
    only those, as `edgekd keys` does (_walk); pydantic's schema would offer the keys its validator refuses."""
    keys = getattr(model, "config_keys", None)
    if keys is not None:
        node["properties"] = {name: prop for name, prop in node.get("properties", {}).items() if name in keys}
        if "required" in node:
            node["required"] = [name for name in node["required"] if name in keys]
    for name, field in model.model_fields.items():
        prop = node.get("properties", {}).get(name)
        inner = model_inside(field.annotation)
        ref = (prop or {}).get("$ref", "")
        if inner is not None and inner is not model and ref.startswith("#/$defs/"):
            _only_config_keys(inner, root["$defs"][ref.rsplit("/", 1)[1]], root)


def _relative_to(data: str, config_dir) -> str:
    """`--data` as given on the command line (from the working directory), rewritten relative to the folder of the file
    init writes, where the run will look for it: `edgekd init sub/c.yaml --data ../img` wrote ../img, which from sub/
    is another folder."""
    import os
    from pathlib import Path

    if Path(data).is_absolute():
        return data
    return Path(os.path.relpath(Path(data).resolve(), Path(config_dir).resolve())).as_posix()


def _data_section(data: str | None) -> dict[str, Any]:
    """data.source (and data.path) for `edgekd init --data X`: a built-in name, a .npz file or an image folder."""
    if data in (None, "digits"):
        return {"source": "digits"}
    if data == "fashion-mnist":
        return {"source": "fashion-mnist"}
    if ":" in data and not data.endswith(".npz"):
        return {"source": data}
    from pathlib import Path

    path = Path(data)
    if path.suffix == ".npz":
        if not path.is_file():  # refused as a missing folder is, not written into a file that cannot run
            raise ConfigError(f"--data {data}: no such .npz file; give an existing one (numpy.savez(FILE, x=..., y=...))")
        return {"source": "npz", "path": data}
    if path.is_dir():
        _refuse_folder_without_classes(path, data)
        return {"source": "imagefolder", "path": data}
    raise ConfigError(f"--data {data}: not digits, fashion-mnist, module:function, a .npz file, a .csv or .parquet table "
                      "or an existing image folder")


def _refuse_folder_without_classes(path: Path, data: str) -> None:
    """The starter trains teachers on labels, which an image folder gives by its class sub-folders: a folder of images
    alone (one class's folder, a camera's dump) was written into a file that `edgekd run` then refused ("the images
    have no labels"). Read as the run reads it (data/sources.py: images in the folder itself mean no labels)."""
    from edgekd.data.sources import _images_in, class_folders

    loose = _images_in(path)
    if loose or not class_folders(path):
        what = "holds images without class sub-folders (no labels)" if loose else "has no class sub-folders"
        raise ConfigError(f"--data {data}: {what}, and the starter file trains on "
                          f"labels; give a folder with one sub-folder of images per class ({data}/<class>/<image>.png), "
                          f"or ship a model you trained: edgekd ship MODEL --data {data} --no-labels")


def _bench_section(section: dict[str, Any], defaults: dict[str, Any]) -> str:
    """The starter file's bench section: bench.eval_samples sized from the data where its test split is known (digits:
    the whole split, 359 images), so the first run does not warn that the split is smaller than asked. Elsewhere
    (an image folder of 36 test images) it is left unset, commented: the run measures the whole test split up to the
    default, without a warning about a number the user never wrote."""
    if section.get("source") != "digits":
        return (f"# bench:\n#   eval_samples: {defaults['bench.eval_samples']}   # test samples bench and gate measure "
                "(default: the test split, up to this many)")
    from edgekd.data.config import DataConfig
    from edgekd.data.datasets import test_split_size
    from edgekd.data.sources import DIGITS_SAMPLES

    sized = min(int(defaults["bench.eval_samples"]),
                test_split_size(DIGITS_SAMPLES, DataConfig.model_fields["test_fraction"].default))
    return f"bench:\n  eval_samples: {sized}"


TABLE_SUFFIXES = {".csv": "csv", ".parquet": "parquet"}
# A column of one of these names is the label; otherwise the last column is, and the file says to change it.
LABEL_NAMES = ("label", "labels", "target", "class", "y", "category")


# A text column with this many distinct values or fewer (and two at least) looks like classes.
FEW_CLASSES = 20


def _table_target(table) -> tuple[str, str]:
    """data.target for a table's starter file, and why: a column named like a label, else the last column; but where
    that column is a quantity (the run would stop: edgekd classifies), the first text column with few values. A trial's
    diamonds file named `y` (a width in mm), and its run stopped with "a quantity rather than classes"."""
    import numpy as np

    from edgekd.data.tabular import _quantity

    columns = [str(c) for c in table.columns]
    named = [c for c in columns if c.strip().lower() in LABEL_NAMES]
    target = named[0] if named else columns[-1]
    values = table[table.columns[columns.index(target)]].dropna()
    counts = values.value_counts().to_numpy()
    if not (values.dtype.kind in "biuf" and len(values) and _quantity(values.to_numpy(np.float64), counts)):
        return target, ("its name says so" if named else "the last column: change it if another column is the label")
    few = [str(c) for c in table.columns if table[c].dtype.kind in "OSU" or str(table[c].dtype) in ("category", "string")]
    few = [c for c in few if 2 <= table[c].nunique() <= FEW_CLASSES]
    if not few:
        return target, "its name says so: but it holds a quantity, and edgekd classifies: bin it, or name the label column"
    return few[0], (f"'{target}' holds a quantity, not classes: the first text column with few values; change it if "
                    "another column is the label")


def table_starter(name: str, data: str, filename: str, config_dir: Any) -> str:
    """The starter file for a table (`edgekd init --data wine.csv`): an ensemble of different algorithms distilled into
    a small network, as README's "Ensembles of any kind" runs it; data.target guessed from the column names."""
    from edgekd.data.tabular import read_table

    source = TABLE_SUFFIXES[Path(data).suffix.lower()]
    if not Path(data).is_file():
        raise ConfigError(f"--data {data}: no such {source} file; give an existing one")
    target, why = _table_target(read_table(source, Path(data), f"--data {data}"))
    path = _relative_to(data, config_dir) if config_dir is not None else data
    return f"""# edgekd pipeline for a table: `edgekd run {filename}`. Every key: `edgekd keys`; the README's "Ensembles of
# any kind" says what each does.
name: {name}
seed: 0
data:
  source: {source}
  path: {json.dumps(path)}
  target: {json.dumps(target)}               # {why}
  # features: [...]           # the input columns (default: every other column)
teachers:                     # different algorithms, fitted on the training split; their ensemble teaches
  - {{sklearn: RandomForestClassifier, params: {{n_estimators: 200, min_samples_leaf: 2}}}}
  - {{sklearn: HistGradientBoostingClassifier, params: {{max_iter: 200}}}}
  - {{sklearn: LogisticRegression, params: {{max_iter: 1000}}}}
  # - {{lightgbm: LGBMClassifier}}  # or {{xgboost: XGBClassifier}}, {{onnx: my-model.onnx}}, {{skops: model.skops}}
student: {{arch: resmlp, width: 32, kwargs: {{depth: 1}}}}
distill:
  out_of_fold: 5              # the teachers' outputs on the training rows from fits on the other folds
  temperature: 1
  alpha: 0.5
  train: {{epochs: 100, batch_size: 256, lr: 0.01, optimizer: adamw}}
quantize: {{max_drop: 0.5}}     # int8 may lose at most this many top-1 points against the fp32 student
targets: [x86-cpu]            # `edgekd targets` lists the profiles
gate:
  reference: teacher          # the teachers' ensemble: a student far under it fails
  max_drop: 3.0               # top-1 points under the reference
"""


def starter_config(name: str = "my-model", data: str | None = None, filename: str = "edgekd.yaml",
                   config_dir: Any = None) -> str:
    """A small, commented pipeline file; the values shown as defaults are read from the config models."""
    if data is not None and Path(data).suffix.lower() in TABLE_SUFFIXES:
        return table_starter(name, data, filename, config_dir)
    d = key_defaults()
    section = _data_section(data)
    if "path" in section and config_dir is not None:  # data.path is read relative to the config file (core.fileio.resolve_path)
        section["path"] = _relative_to(section["path"], config_dir)
    data_lines = "\n".join(f"  {k}: {json.dumps(v)}" for k, v in section.items())
    return f"""# edgekd pipeline: `edgekd run {filename}`. Every key: `edgekd keys`; editor completion:
# `edgekd schema --out edgekd.schema.json` and keep the next line.
# yaml-language-server: $schema=edgekd.schema.json
name: {name}
seed: {d['seed']}
data:
{data_lines}
  # val_fraction: {d['data.val_fraction']}        # share of the training split held out for validation
teachers:                     # one or more; a teacher without a checkpoint is trained first
  - arch: resnet              # convnet | resnet | mlp | torchvision:NAME | module:function
    width: 32
    train: {{epochs: 15, lr: 0.05}}   # defaults: epochs {d['teachers[].train.epochs']}, lr {d['teachers[].train.lr']}
    # checkpoint: teachers/resnet.pt  # a trained state_dict instead (torch.load weights_only=True)
student:
  arch: convnet
  width: 8
distill:
  temperature: {d['distill.temperature']}
  alpha: {d['distill.alpha']}                  # weight of the teacher loss; 0 = labels only
  train: {{epochs: 30, lr: 0.05}}   # defaults: epochs {d['distill.train.epochs']}, lr {d['distill.train.lr']} (too few to reach the teacher here)
quantize:
  method: {json.loads(d['quantize.method'])}                 # ptq | qat | none
  calibration: {json.loads(d['quantize.calibration'])}       # a recipe in calibration/
  max_drop: 1.0               # int8 may lose at most this many top-1 points against the fp32 student
targets: [x86-cpu]            # `edgekd targets` lists the profiles
{_bench_section(section, d)}
gate:
  reference: teacher          # the teachers' ensemble: a student far under it fails. Any report row may be named:
                              # student_fp32 (int8 against its own fp32 only), x86-cpu/fp32, student_scratch (with
                              # distill.compare_scratch: true)
  max_drop: 3.0               # top-1 points under the reference
"""
