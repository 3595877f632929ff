"""The one YAML reader for every file edgekd reads (pipeline configs, target profiles, calibration recipes).

yaml.SafeLoader, plus two refusals that plain yaml.safe_load lacks:
- aliases that expand past a budget ("billion laughs"): `a: &a [x, x]`, `b: &b [*a, *a]`, ... is a few hundred
  bytes that load as shared references, and grows without bound (memory, time) as soon as anything walks it
  (validation, the config digest). Anchors used the ordinary way (`<<: *defaults`) stay well within the budget.
- a key given twice in one mapping (`alpha: 0.9` ... `alpha: 0.0`): PyYAML silently keeps the last one.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from edgekd.core.errors import ConfigError

# Nodes of the document with every alias expanded. Real configs have a few hundred; the budget leaves room for
# generous use of anchors and stops an expansion long before it costs memory.
MAX_EXPANDED_NODES = 100_000
_MERGE_TAG = "tag:yaml.org,2002:merge"


class YamlRefused(yaml.YAMLError):
    """A document PyYAML would load but edgekd refuses: the message says why, with the line."""

    def __init__(self, message: str, mark: yaml.Mark | None = None):
        super().__init__(message)
        self.problem_mark = mark


class _StrictSafeLoader(yaml.SafeLoader):
    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        _refuse_duplicate_keys(self, node)
        return super().construct_mapping(node, deep=deep)


def _refuse_duplicate_keys(loader: yaml.SafeLoader, node: yaml.MappingNode) -> None:
    # Explicit keys only: a key that overrides one merged in from `<<: *defaults` is what merge keys are for.
    seen: dict[Any, yaml.Mark] = {}
    for key_node, _ in node.value:
        if key_node.tag == _MERGE_TAG:
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            first = seen.setdefault(key, key_node.start_mark)
        except TypeError:  # an unhashable key; SafeConstructor reports it itself
            continue
        if first is not key_node.start_mark:
            raise YamlRefused(f"key '{key}' appears twice in one mapping (first at line {first.line + 1}); "
                              "keep one: YAML would silently use the last", key_node.start_mark)


def _expanded_size(node: yaml.Node, sizes: dict[int, int], open_nodes: set[int]) -> int:
    """Nodes in `node` with aliases expanded; shared subtrees are counted once per reference, memoized."""
    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in open_nodes:
        raise YamlRefused("an alias refers to a node that contains it (a recursive structure); "
                          "write the values out", node.start_mark)
    if isinstance(node, yaml.ScalarNode):
        return 1
    open_nodes.add(key)
    children = [n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode) else node.value
    total = 1
    for child in children:
        total += _expanded_size(child, sizes, open_nodes)
        if total > MAX_EXPANDED_NODES:
            raise YamlRefused(f"aliases (*name) expand to more than {MAX_EXPANDED_NODES:,} values; a config is not "
                              "that large: write the values out, or use fewer nested anchors", node.start_mark)
    open_nodes.discard(key)
    sizes[key] = total
    return total


def safe_load(text: str) -> Any:
    """yaml.safe_load with the refusals above; raises yaml.YAMLError (YamlRefused for those)."""
    loader = _StrictSafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_size(node, {}, set())
        return loader.construct_document(node)
    finally:
        loader.dispose()


def read_yaml_mapping(path: Path, kind: str, expected: str = "keys") -> dict[str, Any]:
    """Read a YAML file that must hold a mapping: configs, target profiles, calibration recipes.

    yaml.safe_load only (safe_load above): tags such as !!python/object are refused, nothing in the file is run;
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


def _line(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    return f" at line {mark.line + 1}" if mark else ""
