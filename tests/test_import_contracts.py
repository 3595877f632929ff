"""The layering of edgekd, checked on the source (ast), every import counted, also those inside functions:

    core <- runtimes, data <- device        (the device path: no torch, no pipeline)
    core <- data <- train <- quant          (runtimes too, for the ONNX sessions)
    core, train <- text, lm                 (model families, plugged into the pipeline later, never the reverse)
    all of them <- pipeline <- api, cli      (lm: task language-model, pipeline/lm/)
and no stage module imports another one (what stages share lives in pipeline/, below stages/).
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
    # text: `edgekd bench --texts` tokenizes raw text on the device with the bundle's tokenizer.json (text/corpus.py,
    # text/tokenizer.py: tokenizers and numpy, no torch; tests/device/test_bench_texts.py runs it with torch blocked)
    # lm: `edgekd bench` on a language model's bundle generates and scores perplexity with onnxruntime, numpy and
    # tokenizers (lm/generate.py, bench.py, evaluate.py, tokenizer.py; tests/device/test_lm_bench.py blocks torch)
    "device": {"core", "runtimes", "data", "text", "lm"},
    "data": {"core"},
    "train": {"core", "data", "runtimes"},
    "quant": {"core", "data", "runtimes", "train"},
    "pipeline": {"core", "runtimes", "device", "data", "train", "quant", "text", "lm", "tabular"},
    # text classifiers and language models (issues 15, 16): their corpus, tokenizer, models, losses and export;
    # they reuse the distillation losses and know nothing of the pipeline, the device layer or each other
    "text": {"core", "train"},
    "lm": {"core", "train"},
    # tables (issue 35): the student's preprocessing and network, the ensemble's ONNX baseline, timed with the device
    # layer's interleaved timer; like text and lm, below the pipeline
    "tabular": {"core", "data", "runtimes", "train", "device"},
}
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
            found += [(node.lineno, f"{name}.{alias.name}") for alias in node.names if name == "edgekd"]
    return found


def layer_files(layer: str) -> list[Path]:
    return sorted((PACKAGE / layer).rglob("*.py"))


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


def test_stages_never_import_each_other():
    stages = {p.stem for p in (PACKAGE / "pipeline" / "stages").glob("*.py") if p.stem != "__init__"}
    broken = []
    for path in sorted((PACKAGE / "pipeline" / "stages").glob("*.py")):
        for line, module in imports_of(path):
            parts = module.split(".")
            if parts[:3] == ["edgekd", "pipeline", "stages"] and len(parts) > 3 and parts[3] in stages and parts[3] != path.stem:
                broken.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {module}")
    assert not broken, "\n".join(broken)


def test_the_checker_sees_imports_inside_functions_and_relative_ones():
    source = "def f():\n    import torch\n    from ..pipeline import runner\n    from edgekd import api\n"
    assert imports_in(source, "edgekd.device") == [(2, "torch"), (3, "edgekd.pipeline"), (4, "edgekd"), (4, "edgekd.api")]
    assert edgekd_layer("edgekd.pipeline.runner") == "pipeline" and edgekd_layer("torch") is None


def test_the_device_takes_only_the_torch_free_text_modules():
    """The device may read a corpus file and tokenize (edgekd.text.corpus, edgekd.text.tokenizer); the rest of
    edgekd.text (models, training, export) needs torch."""
    allowed = {"edgekd.text", "edgekd.text.corpus", "edgekd.text.tokenizer"}
    broken = [f"{path.relative_to(PACKAGE.parent)}:{line} imports {module}" for path in layer_files("device")
              for line, module in imports_of(path) if edgekd_layer(module) == "text" and module not in allowed]
    assert not broken, "\n".join(broken)


def test_the_device_takes_only_the_torch_free_lm_modules():
    """The device may generate, score perplexity and tokenize (edgekd.lm.generate, bench, evaluate, tokenizer); the
    rest of edgekd.lm (models, training, export, the logit cache) needs torch or transformers."""
    allowed = {"edgekd.lm", "edgekd.lm.generate", "edgekd.lm.bench", "edgekd.lm.evaluate", "edgekd.lm.tokenizer"}
    broken = [f"{path.relative_to(PACKAGE.parent)}:{line} imports {module}" for path in layer_files("device")
              for line, module in imports_of(path) if edgekd_layer(module) == "lm" and module not in allowed]
    assert not broken, "\n".join(broken)
