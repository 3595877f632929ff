"""Every key of a pipeline config with its default and description: what `edgekd keys` prints.

The descriptions live once, in the pydantic models of edgekd/config.py; this walks them, so the
command line cannot drift from what the config accepts.
"""
from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from .config import PipelineConfig, model_inside
from .errors import ConfigError


def key_lines(section: str | None = None) -> list[str]:
    """`key = default  # description` for every key (under `section`, a dotted prefix such as distill.data_free)."""
    lines = list(_walk(PipelineConfig, ""))
    if section:
        prefix = section.rstrip(".")
        lines = [line for line in lines if line.startswith((prefix + ".", prefix + "[", prefix + " "))]
        if not lines:
            top = sorted(PipelineConfig.model_fields)
            raise ConfigError(f"edgekd keys {section}: no such section; top-level sections: {', '.join(top)}")
    return lines


def _walk(model: type[BaseModel], prefix: str):
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        inner = model_inside(field.annotation)
        is_list = "list[" in str(field.annotation)
        if inner is not None and inner is not model:
            yield f"{key}{'[]' if is_list else ''}:  # {field.description or inner.__doc__ or ''}".rstrip(" #")
            yield from _walk(inner, f"{key}{'[]' if is_list else ''}.")
            continue
        note = f"  # {field.description}" if field.description else ""
        yield f"{key} = {_default(field)}{note}"


def _default(field: Any) -> str:
    if field.is_required():
        return "(required)"
    value = field.default if field.default is not PydanticUndefined else field.default_factory()
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    return json.dumps(value)
