"""Property: whatever a config file holds, loading it either succeeds or raises EdgeKDError with one line.

Three generators, 500+ examples each: the tiny config with random edits (right keys, odd values),
arbitrary YAML documents, and arbitrary text.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st

from edgekd.core.errors import EdgeKDError
from edgekd.pipeline.config import PipelineConfig, load_config, validate_config

from .helpers import TINY, merged

KEYS = sorted({"name", "seed", "data", "teachers", "student", "distill", "quantize", "export", "targets", "bench", "gate",
               "source", "path", "train_limit", "arch", "width", "checkpoint", "kwargs", "train", "epochs", "lr",
               "batch_size", "temperature", "alpha", "max_drop", "drop_type", "opset", "runs", "amp", "optimizer",
               "distil", "temprature", "Epochs", "", "__class__", "!!python/object"})

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-2**70, max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12), st.sampled_from(KEYS),
    st.sampled_from(["digits", "npz", "mlp", "convnet", "x86-cpu", "ptq", "none", "absolute", "1e3", "-1", "off"]),
)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.one_of(st.sampled_from(KEYS), st.integers(-3, 3), st.text(max_size=6)),
                                                 inner, max_size=4)), max_leaves=12)

# A path into the config: section names, then nested keys or list positions.
paths = st.lists(st.one_of(st.sampled_from(KEYS), st.integers(0, 2)), min_size=1, max_size=4)


def _set(config: dict, path: list, value) -> dict:
    """Put `value` at `path`, creating or replacing whatever is in the way."""
    node = config
    for key in path[:-1]:
        if isinstance(node, list):
            key = key if isinstance(key, int) and key < len(node) else len(node) - 1
            if key < 0:
                return config
        elif not isinstance(node, dict):
            return config
        child = node[key] if isinstance(node, list) else node.get(key)
        if not isinstance(child, (dict, list)):
            child = {}
            node[key] = child
        node = child
    last = path[-1]
    if isinstance(node, dict):
        node[last] = value
    elif isinstance(node, list) and isinstance(last, int) and last < len(node):
        node[last] = value
    return config


edited_configs = st.lists(st.tuples(paths, values), min_size=1, max_size=4).map(
    lambda edits: [_set(cfg, p, v) for cfg in [merged(TINY, {})] for p, v in edits][-1])


def _load_from_yaml_text(text: str):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "pipeline.yaml"
        path.write_text(text, encoding="utf-8")
        return load_config(path)


def _assert_loads_or_clean_error(load) -> None:
    try:
        config = load()
    except EdgeKDError as exc:
        message = str(exc)
        assert message and "\n" not in message, repr(message)
        return
    assert isinstance(config, PipelineConfig)


def _dump(raw) -> str:
    return yaml.safe_dump(raw, sort_keys=False, allow_unicode=True)


SETTINGS = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(edited_configs)
def test_edited_configs_load_or_raise_edgekd_error(raw):
    _assert_loads_or_clean_error(lambda: validate_config(raw))
    _assert_loads_or_clean_error(lambda: _load_from_yaml_text(_dump(raw)))


@SETTINGS
@given(values)
def test_arbitrary_yaml_documents_load_or_raise_edgekd_error(raw):
    _assert_loads_or_clean_error(lambda: validate_config(raw))
    _assert_loads_or_clean_error(lambda: _load_from_yaml_text(_dump(raw)))


@SETTINGS
@given(st.text(max_size=200))
def test_arbitrary_text_loads_or_raises_edgekd_error(text):
    _assert_loads_or_clean_error(lambda: _load_from_yaml_text(text))


def test_the_edit_generator_also_produces_valid_configs():
    """Otherwise the first property would only ever exercise the error path."""

    def valid(raw) -> bool:
        try:
            validate_config(raw)
        except EdgeKDError:
            return False
        return True

    # derandomize: the same search every run, so the suite cannot pass or fail by the draw (integer keys refuse
    # booleans, which made valid edits rarer)
    found = find(edited_configs, valid, settings=settings(max_examples=2000, database=None, derandomize=True))
    assert isinstance(validate_config(found), PipelineConfig)


def test_deeply_nested_yaml_is_a_clean_error(tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text("a: " + "[" * 5000 + "]" * 5000 + "\n", encoding="utf-8")
    _assert_loads_or_clean_error(lambda: load_config(path))
