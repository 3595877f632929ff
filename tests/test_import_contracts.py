"""The layering of edgekd, checked on the source (ast), every import counted, also those inside functions:

    core <- runtimes, data <- device        (the device path: no torch, no pipeline)
    core <- data <- train <- quant          (runtimes too, for the ONNX sessions)
    core, runtimes, train <- text, lm       (model families, plugged into the pipeline later, never the reverse)
    all of them <- pipeline <- tasks <- api, cli   (tasks: each kind of model's own steps, named by the pipeline)
and no stage module imports another one (what stages share lives in pipeline/, below stages/; the language model's
stages are edgekd/tasks/lm_*.py, named by the task). Over the whole package: no import circle, and no module
under device/ reaches a module that imports torch, following every import; onnxruntime.InferenceSession and
openvino.Core are created only under runtimes/, text/ and lm/ import no runtime (onnxruntime, openvino, nncf: their
quantizers and converters are the backends', under runtimes/), no module outside runtimes/ imports
onnxruntime.quantization or nncf, and torch.onnx.export is called only in edgekd/train/exporter.py (issue 33's
contracts).
import-linter is not installed here; these few rules need nothing but the standard library."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "edgekd"

# What each layer may import of edgekd (its own modules always).
ALLOWED = {
    "core": set(),
    "runtimes": {"core"},
    # data: `edgekd bench --images` decodes raw image files on the device with the bundle's preprocessing
    # (data/images.py: Pillow, numpy; data imports only core)
    # lang: `edgekd bench --texts` tokenizes raw text with the bundle's tokenizer.json, and on a language model's
    # bundle generates and scores perplexity (lang/: tokenizers, the generation loop over a decoder that runtimes/
    # opens, numpy; no torch: tests/pipeline/test_text_e2e.py and tests/device/test_lm_bench.py block it). Nothing of
    # the training side (issue 33).
    "device": {"core", "runtimes", "data", "lang"},
    # the torch-free parts of the text and LM tasks, which the device stands on: they stand on core alone (the
    # generation loop declares the Decoder it steps; runtimes.registry.load_decoder opens one), so the device layer
    # sits below every training layer's floor but train/'s, beside it
    "lang": {"core"},
    "data": {"core"},
    "train": {"core", "data", "runtimes"},
    "quant": {"core", "data", "runtimes", "train"},
    "pipeline": {"core", "runtimes", "device", "data", "train", "quant", "text", "lm", "tabular", "lang"},
    # text classifiers and language models (issues 15, 16): their corpus, tokenizer, models, losses and export;
    # they reuse the distillation losses and know nothing of the pipeline, the device layer or each other; they open
    # onnxruntime and OpenVINO through runtimes/ (the only door to a runtime)
    "text": {"core", "runtimes", "train", "lang"},
    "lm": {"core", "runtimes", "train", "lang"},
    # tables (issue 35): the student's preprocessing and network, the ensemble's ONNX baseline, timed with the device
    # layer's interleaved timer; like text and lm, below the pipeline
    "tabular": {"core", "data", "runtimes", "train", "device"},
    # the tasks' own steps inside the seven stages (issue 33): above the pipeline, whose context, records and shared
    # helpers they use; the pipeline names them by dotted path (pipeline/task.py) and never imports them
    "tasks": {"core", "data", "runtimes", "device", "train", "quant", "text", "lm", "tabular", "pipeline", "lang"},
}
# The front: the commands over the Python API over every layer above; no layer imports either (the sets above).
ALLOWED["api"] = set(ALLOWED)
ALLOWED["cli"] = set(ALLOWED) | {"api"}
HEAVY = ("torch", "torchvision", "matplotlib")


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in the file, relative ones resolved."""
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    package = module.rsplit(".", 1)[0] if path.name != "__init__.py" else module.removesuffix(".__init__")
    return imports_in(path.read_text(encoding="utf-8"), package)


def imports_in(source: str, package: str) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.append((node.lineno, name))
            # `from edgekd.lang import generate` imports the module edgekd.lang.generate (or a name of edgekd.lang)
            found += [(node.lineno, f"{name}.{alias.name}") for alias in node.names if name.split(".")[0] == "edgekd"]
    return found


def layer_files(layer: str) -> list[Path]:
    """The files of a layer: its folder, or the one module edgekd/<layer>.py (cli, api)."""
    single = PACKAGE / f"{layer}.py"
    return [single] if single.is_file() else sorted((PACKAGE / layer).rglob("*.py"))


def module_of(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")


MODULES = {module_of(path): path for path in PACKAGE.rglob("*.py")}


def edgekd_module(name: str) -> str | None:
    """The module of the package that an imported name loads: the name itself, or the module it is taken from."""
    parts = name.split(".")
    while parts and ".".join(parts) not in MODULES:
        parts.pop()
    return ".".join(parts) or None


def import_graph() -> dict[str, set[str]]:
    """module -> the package's modules it imports, every import counted (inside functions, under TYPE_CHECKING)."""
    return {module: {m for _, name in imports_of(path) if (m := edgekd_module(name)) not in (None, module)}
            for module, path in MODULES.items()}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles: strongly connected groups of two or more modules (Tarjan's algorithm), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for target in graph.get(module, ()):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            group = []
            while not group or group[-1] != module:
                group.append(stack.pop())
            if len(group) > 1:
                found.append(sorted(group))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return sorted(found)


def imports_torch(path: Path) -> bool:
    return any(name.split(".")[0] in ("torch", "torchvision") for _, name in imports_of(path))


def chain_to(graph: dict[str, set[str]], start: str, wanted) -> list[str] | None:
    """The shortest chain of imports from `start` to a module for which `wanted(module)` holds, None if none is
    reached. Importing a module also runs its packages' __init__.py, so those count as imported too."""
    chains = {start: [start]}
    queue = [start]
    while queue:
        module = queue.pop(0)
        if wanted(module):
            return chains[module]
        parents = {".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1)}
        for target in sorted(graph.get(module, set()) | (parents & set(MODULES))):
            if target not in chains:
                chains[target] = chains[module] + [target]
                queue.append(target)
    return None


def edgekd_layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "edgekd" and len(parts) > 1 and not parts[1].startswith("_") else None


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_each_layer_imports_only_the_layers_below_it(layer):
    broken = []
    for path in layer_files(layer):
        for line, module in imports_of(path):
            target = edgekd_layer(module)
            if target is not None and target != layer and target not in ALLOWED[layer]:
                broken.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {module}")
    assert not broken, "\n".join(broken)


@pytest.mark.parametrize("layer", ["core", "runtimes", "device"])
def test_the_device_path_never_imports_torch_or_matplotlib_at_module_level_and_device_never_torch(layer):
    broken = []
    for path in layer_files(layer):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top_level = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                heavy = name.split(".")[0] in HEAVY
                # torch never, anywhere in these layers; matplotlib only lazily (report plots, when installed)
                if heavy and (name.split(".")[0] != "matplotlib" or id(node) in top_level):
                    broken.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} imports {name}")
    assert not broken, "\n".join(broken)


def defines_steps(path: Path) -> bool:
    """Does the module define a stage's work: a class deriving from a base named ...Stage or TaskStep?"""
    return any(isinstance(node, ast.ClassDef) and any((dotted(b) or "").split(".")[-1] in ("Stage", "TaskStep") for b in node.bases)
               for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))))


def stage_modules() -> dict[str, Path]:
    """Every module that holds stage classes or a task's steps: pipeline/stages/*.py and the modules under
    edgekd/tasks/ that define TaskSteps. A task module without steps (tasks/lm.py: the Task, its config and run-folder
    layout) is what its steps share, as pipeline/ is what the stages share."""
    paths = [*(PACKAGE / "pipeline" / "stages").glob("*.py"), *(p for p in (PACKAGE / "tasks").glob("*.py") if defines_steps(p))]
    return {module_of(path): path for path in sorted(paths) if path.name != "__init__.py"}


def test_a_tasks_steps_import_only_their_own_tasks_module_of_the_tasks_layer():
    """A task's step modules import only their own task's modules: lm_train.py and lm_ship.py may import tasks/lm.py
    (what they share), text.py its text_data.py and text_models.py, and none another task's."""
    stages = stage_modules()
    assert "edgekd.tasks.lm_ship" in stages and "edgekd.tasks.lm" not in stages
    broken = [f"{path.relative_to(PACKAGE.parent)}:{line} imports {module}" for own, path in stages.items()
              if own.startswith("edgekd.tasks.") for line, module in imports_of(path)
              if (edgekd_module(module) or "").startswith("edgekd.tasks.") and edgekd_module(module) != own
              and own.split(".")[-1].split("_")[0] != edgekd_module(module).split(".")[-1].split("_")[0]]
    assert not broken, "\n".join(broken)


def test_stages_never_import_each_other():
    stages = stage_modules()
    assert "edgekd.tasks.lm_ship" in stages and "edgekd.tasks.text" in stages
    broken = []
    for own, path in stages.items():
        for line, module in imports_of(path):
            if edgekd_module(module) in stages and edgekd_module(module) != own:
                broken.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {module}")
    assert not broken, "\n".join(broken)


def test_only_the_registry_names_stage_modules_and_no_module_imports_one():
    """The registry names each stage class by its dotted path (imported when asked for); what stages share lives
    below them, so no other module imports a stage module."""
    stages = stage_modules()
    broken = [f"{path.relative_to(PACKAGE.parent)}:{line} imports {module}" for own, path in MODULES.items()
              if own not in stages for line, module in imports_of(path) if edgekd_module(module) in stages]
    assert not broken, "\n".join(broken)


def registered_stage_names() -> set[str]:
    """The keys of pipeline/registry.py STAGES, read from the source."""
    tree = ast.parse((PACKAGE / "pipeline" / "registry.py").read_text(encoding="utf-8"))
    found = next(node.value for node in tree.body if isinstance(node, ast.Assign)
                 and any(isinstance(t, ast.Name) and t.id == "STAGES" for t in node.targets))
    return set(ast.literal_eval(found))


def stage_classes_outside_stages() -> list[str]:
    """Classes deriving from a stage class (a base named ...Stage) outside pipeline/stages/."""
    return [f"{path.relative_to(PACKAGE.parent)}:{node.lineno} class {node.name}" for module, path in sorted(MODULES.items())
            if not module.startswith("edgekd.pipeline.stages.") for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, ast.ClassDef) and any((dotted(b) or "").split(".")[-1].endswith("Stage") for b in node.bases)]


def test_no_module_under_pipeline_is_named_for_one_tasks_stage():
    """One pipeline for every task (issue 33): pipeline/stages/ holds the seven stages of the registry (and as_given,
    distill.mode none's distill stage), no stages_*.py sits anywhere in pipeline/ (pipeline/lm/stages_ship.py,
    stages/text.py and stages/tabular.py were such), and no class outside pipeline/stages/ derives from a stage: what a
    task does its own way is a TaskStep in its module under edgekd/tasks/, which the stage of that name hands the run to."""
    names = registered_stage_names()
    assert len(names) == 7
    stage_files = sorted(p.stem for p in (PACKAGE / "pipeline" / "stages").glob("*.py") if p.stem != "__init__")
    assert set(stage_files) <= names | {"as_given"}, stage_files
    assert sorted(p.relative_to(PACKAGE) for p in (PACKAGE / "pipeline").rglob("stages_*.py")) == []
    assert stage_classes_outside_stages() == []
    assert task_named_modules_under_pipeline() == []


def task_module_stems() -> set[str]:
    """The modules the registry's tasks live in (pipeline/task.py TASKS: image, text, tabular, lm, fidelity), read
    from the source."""
    tree = ast.parse((PACKAGE / "pipeline" / "task.py").read_text(encoding="utf-8"))
    found = next(node.value for node in ast.walk(tree) if isinstance(node, ast.AnnAssign)
                 and isinstance(node.target, ast.Name) and node.target.id == "TASKS")
    return {target.split(":")[0].split(".")[-1] for target in ast.literal_eval(found).values()}


def task_named_modules_under_pipeline() -> list[str]:
    """Modules under pipeline/ named for one task (text_data.py, tabular_teachers.py were): a task's own helpers sit
    beside its steps in edgekd/tasks/ (tasks/text_data.py), so a new task adds no module to the pipeline."""
    stems = task_module_stems()
    assert {"image", "text", "tabular", "lm", "fidelity"} <= stems
    return sorted(str(p.relative_to(PACKAGE)) for p in (PACKAGE / "pipeline").rglob("*.py")
                  if p.stem.split("_")[0] in stems)


def task_name_questions(source: str) -> list[int]:
    """Lines that compare a task's name (`ctx.task.name == "fidelity"`, `task.name in (...)`)."""
    return [node.lineno for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Compare)
            and any((dotted(side) or "").endswith("task.name") for side in [node.left, *node.comparators])]


def test_the_pipeline_never_asks_which_task_it_runs():
    """The stages, the runner and what they share ask the task (its hooks and attributes: Task in pipeline/task.py),
    never its name: a new task then changes no pipeline module (issue 33)."""
    assert task_name_questions("if ctx.task.name == 'fidelity' or x.task.name in ('a',):\n    pass\n") == [1, 1]
    broken = [f"{path.relative_to(PACKAGE.parent)}:{line}" for module, path in sorted(MODULES.items())
              if module.startswith("edgekd.pipeline.") for line in task_name_questions(path.read_text(encoding="utf-8"))]
    assert broken == [], "ask a Task hook or attribute instead of its name:\n" + "\n".join(broken)


def test_no_import_circles_counting_imports_inside_functions():
    found = circles(import_graph())
    assert not found, "import circles: " + "; ".join(" <-> ".join(group) for group in found)


def test_no_device_module_reaches_a_module_that_imports_torch():
    """Every import followed, those inside functions too: a device module that reaches one importing torch would
    load torch on the board as soon as that path runs."""
    graph = import_graph()
    broken = []
    for module in sorted(m for m in MODULES if m.startswith("edgekd.device")):
        chain = chain_to(graph, module, lambda m: imports_torch(MODULES[m]))
        if chain:
            broken.append(" -> ".join(chain) + " imports torch")
    assert not broken, "\n".join(broken)


def test_the_graph_checks_see_circles_and_chains():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a", "e"}, "e": set()}
    assert circles(graph) == [["a", "b", "c"]]
    assert chain_to(graph, "d", lambda m: m == "c") == ["d", "a", "b", "c"] and chain_to(graph, "e", lambda m: m == "a") is None
    assert edgekd_module("edgekd.lang.generate.OnnxDecoder") == "edgekd.lang.generate" and edgekd_module("numpy") is None


def test_the_checker_sees_imports_inside_functions_and_relative_ones():
    source = "def f():\n    import torch\n    from ..pipeline import runner\n    from edgekd import api\n"
    assert imports_in(source, "edgekd.device") == [(2, "torch"), (3, "edgekd.pipeline"), (3, "edgekd.pipeline.runner"),
                                                   (4, "edgekd"), (4, "edgekd.api")]
    assert edgekd_layer("edgekd.pipeline.runner") == "pipeline" and edgekd_layer("torch") is None


def test_the_device_stands_below_the_training_layers():
    """The device tokenizes, reads a corpus, generates and scores perplexity with edgekd.lang (torch-free); it imports
    nothing from the training side (text/, lm/, train/, quant/, tabular/, tasks/, pipeline/), so the house draws
    device/ below them (issue 33)."""
    training = {"text", "lm", "train", "quant", "tabular", "tasks", "pipeline"}
    broken = [f"{path.relative_to(PACKAGE.parent)}:{line} imports {module}" for path in layer_files("device")
              for line, module in imports_of(path) if edgekd_layer(module) in training]
    assert not broken, "\n".join(broken)


# Calls that only one part of the package may make (issue 33): a runtime is opened only under runtimes/, and
# torch.onnx.export is called only by the one exporter, which every model family feeds an ExportSpec.
RUNTIME_DOORS = {"onnxruntime.InferenceSession", "openvino.Core", "openvino.runtime.Core"}
TORCH_EXPORTERS = {"torch.onnx.export", "torch.onnx.dynamo_export"}
THE_EXPORTER = "edgekd.train.exporter"


def import_aliases(tree: ast.AST) -> dict[str, str]:
    """Local name -> the dotted name it stands for, from every import in the file (`import onnxruntime as ort`:
    ort -> onnxruntime; `from torch import onnx`: onnx -> torch.onnx)."""
    aliases = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                # `import torch.onnx` binds `torch`; `import openvino.runtime as ov` binds ov to the submodule
                aliases[alias.asname or alias.name.split(".")[0]] = alias.name if alias.asname else alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            aliases.update({alias.asname or alias.name: f"{node.module}.{alias.name}" for alias in node.names})
    return aliases


def dotted(node: ast.AST) -> str | None:
    """`a.b.c` for a Name or a chain of Attributes ending in a Name, else None."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute) and (base := dotted(node.value)) is not None:
        return f"{base}.{node.attr}"
    return None


def calls_in(source: str) -> list[tuple[int, str]]:
    """(line, full dotted name) of every call whose target is an imported name, the aliases resolved."""
    tree = ast.parse(source)
    aliases = import_aliases(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and (name := dotted(node.func)) is not None:
            head, _, rest = name.partition(".")
            if head in aliases:
                found.append((node.lineno, aliases[head] + (f".{rest}" if rest else "")))
    return found


def calls_outside(wanted: set[str], allowed) -> list[str]:
    return [f"{path.relative_to(PACKAGE.parent)}:{line} calls {name}" for module, path in sorted(MODULES.items())
            if not allowed(module) for line, name in calls_in(path.read_text(encoding="utf-8")) if name in wanted]


def test_runtime_sessions_are_opened_only_under_runtimes():
    broken = calls_outside(RUNTIME_DOORS, lambda module: module.startswith("edgekd.runtimes"))
    assert not broken, "open them through edgekd.runtimes (ort.open_session, openvino.openvino_core):\n" + "\n".join(broken)


# The model families reach a runtime only through runtimes/ (sessions, quantizers, converters): no import of these.
RUNTIME_PACKAGES = ("onnxruntime", "openvino", "nncf")


@pytest.mark.parametrize("layer", ["text", "lm"])
def test_the_model_families_never_import_a_runtime(layer):
    broken = [f"{path.relative_to(PACKAGE.parent)}:{line} imports {name}" for path in layer_files(layer)
              for line, name in imports_of(path) if name.split(".")[0] in RUNTIME_PACKAGES]
    assert broken == [], "call edgekd.runtimes (ort_quantize, openvino_convert, ort.open_session) instead:\n" + "\n".join(broken)


# The backends own their quantizers (issue 33): onnxruntime's quantization tools and NNCF are imported only under
# runtimes/ (runtimes/ptq.py, nncf_ptq.py, sensitivity.py, ort_quantize.py, openvino_convert.py); quant/ searches and
# trains over them, the families and the pipeline call them.
QUANTIZERS = ("onnxruntime.quantization", "nncf")


def full_imports_in(source: str) -> list[tuple[int, str]]:
    """(line, dotted name) of every absolute import, `from a import b` counted as a.b too (so that
    `from onnxruntime import quantization` is seen as importing onnxruntime.quantization)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found += [(node.lineno, node.module)] + [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
    return found


def is_quantizer(name: str) -> bool:
    return any(name == q or name.startswith(q + ".") for q in QUANTIZERS)


def test_quantizers_are_imported_only_under_runtimes():
    found = {f"{path.relative_to(PACKAGE.parent)}:{line}": name for module, path in sorted(MODULES.items())
             if not module.startswith("edgekd.runtimes")
             for line, name in reversed(full_imports_in(path.read_text(encoding="utf-8"))) if is_quantizer(name)}
    broken = [f"{where} imports {name}" for where, name in sorted(found.items())]
    assert broken == [], "the backend owns its quantizers: call edgekd.runtimes (ptq, nncf_ptq, ort_quantize) instead:\n" + \
        "\n".join(broken)


def test_the_quantizer_checker_sees_every_form_of_import():
    source = ("import nncf\nfrom onnxruntime import quantization\nimport onnxruntime.quantization.calibrate\n"
              "def f():\n    from nncf.quantization import advanced_parameters\n    import onnxruntime\n")
    assert [line for line, name in full_imports_in(source) if is_quantizer(name)] == [1, 2, 3, 5, 5]


def test_torch_onnx_export_is_called_only_by_the_one_exporter():
    broken = calls_outside(TORCH_EXPORTERS, lambda module: module == THE_EXPORTER)
    assert not broken, f"give {THE_EXPORTER} an ExportSpec instead:\n" + "\n".join(broken)
    assert [name for _, name in calls_in(MODULES[THE_EXPORTER].read_text(encoding="utf-8"))].count("torch.onnx.export") == 1


def test_the_call_checker_resolves_aliases():
    source = ("import onnxruntime as ort\nimport openvino as ov\nimport torch\nfrom torch import onnx\n"
              "from onnxruntime import InferenceSession as Session\n"
              "def f():\n    ort.InferenceSession('m')\n    ov.Core()\n    torch.onnx.export(1)\n    onnx.export(2)\n"
              "    Session('m')\n    other.InferenceSession('m')\n")
    assert calls_in(source) == [(7, "onnxruntime.InferenceSession"), (8, "openvino.Core"), (9, "torch.onnx.export"),
                                (10, "torch.onnx.export"), (11, "onnxruntime.InferenceSession")]
