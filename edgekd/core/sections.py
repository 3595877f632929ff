"""Section models: the strict pydantic base every config section, profile and recipe derives from, and the one
loader of a YAML file into such a model, whose errors name the file, the dotted key and the nearest valid key."""
from __future__ import annotations

import difflib
import hashlib
import json
import re
from pathlib import Path
from typing import Annotated, Any, Optional, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError

from edgekd.core.errors import ConfigError
from edgekd.core.yamlio import read_yaml_mapping

# numpy's generators take seeds >= 0 and torch.manual_seed at most 2**64 - 1; derived seeds (seed + teacher index,
# + epoch) must stay in range too, so seeds are capped well below both.
MAX_SEED = 2**31 - 1


def _not_a_boolean(value: Any) -> Any:
    """pydantic takes true as 1 for an int field, and YAML 1.1 reads yes, no, on and off as booleans: `seed: yes`
    would silently be seed 1. Refused as a float field's validators refuse them (core/thresholds.py)."""
    if isinstance(value, bool):
        raise ValueError(f"must be a whole number, not {str(value).lower()} (YAML reads yes, no, on, off as true "
                         "or false); write a number")
    return value


# Every whole-number key of a config section (seeds, counts, sizes): an int that refuses booleans. Only validation
# changes: the dumped value (and so the config digest and stage keys) and the JSON schema stay those of an int.
Integer = Annotated[int, BeforeValidator(_not_a_boolean)]
# The same for a key that may be null. Not Optional[Integer]: pydantic cannot move a Field's ge/le into that nested
# form, and would write them into the JSON schema as "ge"/"le" rather than minimum/maximum.
OptionalInteger = Annotated[Optional[int], BeforeValidator(_not_a_boolean)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


Model = TypeVar("Model", bound=BaseModel)


def load_yaml_model(path: str | Path, model: type[Model], kind: str, expected: str = "keys") -> Model:
    """Read the YAML mapping in `path` (a {kind}: config file, target profile, calibration recipe) into `model`;
    a problem is one ConfigError line naming the file and the key (with a did-you-mean for an unknown key)."""
    return validate_model(read_yaml_mapping(Path(path), kind, expected), model, str(path))


def validate_model(raw: dict[str, Any], model: type[Model], source: str) -> Model:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {describe_validation_error(exc, model)}") from None


def model_digest(model: BaseModel) -> str:
    """Stable hash of a validated config (its JSON dump, keys sorted): the run manifest compares it to decide what
    to rerun. One definition for every kind of pipeline config (image and text, language model)."""
    canonical = json.dumps(model.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def describe_validation_error(exc: ValidationError, root: type[BaseModel]) -> str:
    """One line: every unknown key when there are any (a file with two typos is fixed in one go, not two runs),
    else the first problem (the dotted key, what is wrong, and a fix) and the other keys with one."""
    unknown = [error for error in exc.errors() if error["type"] == "extra_forbidden"]
    if len(unknown) == 1:
        return f"unknown key '{_dotted(unknown[0])}'; {_unknown_key_hint(unknown[0], root)}"
    if unknown:
        return _unknown_keys(unknown, root)
    return _first_problem(exc.errors()[0]) + _other_keys(exc.errors())


def _unknown_keys(unknown: list[dict[str, Any]], root: type[BaseModel]) -> str:
    """Several unknown keys: each with its did-you-mean where one is close, and the valid keys of each place where a
    key had none listed once (a recipe with `samples` and `split` printed the same seven keys twice)."""
    named, places = [], {}
    for error in unknown:
        close = _closest_key(error, root)
        named.append(f"'{_dotted(error)}'" + (f" (did you mean '{close}'?)" if close else ""))
        if not close:
            parent = tuple(error["loc"][:-1])
            places.setdefault(parent, _fields_at(root, parent))
    lists = [f"valid keys {'in ' + '.'.join(map(str, parent)) if parent else 'here'}: {', '.join(sorted(valid))}"
             for parent, valid in places.items() if valid]
    return "unknown keys " + ", ".join(named) + "".join(f"; {line}" for line in lists)


def _first_problem(error: dict[str, Any]) -> str:
    loc = [str(part) for part in error["loc"]]
    key = _dotted(error)
    if error["type"] == "value_error":
        message = error["msg"].removeprefix("Value error, ")
        return message if not loc else f"{key}: {message}"
    if error["type"] == "missing":
        return f"missing required key '{key}'"
    given = error.get("input")
    shown = repr(given)[:80] if not isinstance(given, (dict, list)) else type(given).__name__
    return f"invalid value for '{key}': {error['msg']} (got {shown}){_quote_hint(error)}"


def _quote_hint(error: dict[str, Any]) -> str:
    """A text key given a value YAML read as something else: `name: on` is the boolean True in YAML 1.1 (as are off,
    yes, no, true, false), `name: 1.10` the number 1.1; quoting keeps the text."""
    given, leaf = error.get("input"), str(error["loc"][-1]) if error["loc"] else "key"
    if error["type"] != "string_type" or not isinstance(given, (bool, int, float)):
        return ""
    if isinstance(given, bool):
        return (f"; YAML reads an unquoted on, off, yes, no, true or false as {given}: quote the value "
                f"({leaf}: \"on\")")
    return f"; YAML read it as a number: quote the value as written ({leaf}: \"...\") to keep it as text"


def _other_keys(errors: list[dict[str, Any]], shown: int = 4) -> str:
    """The other keys with a problem, named after the first one's full message: a file with two bad values is fixed
    in one go, not two runs (a key pydantic reports twice, once per type of a union, is named once)."""
    first = _dotted(errors[0])
    others = list(dict.fromkeys(key for key in (_dotted(e) for e in errors[1:]) if key != first))
    if not others:
        return ""
    more = f" and {len(others) - shown} more" if len(others) > shown else ""
    return f"; also check {', '.join(repr(k) for k in others[:shown])}{more}"


# pydantic's names for the members of a union in an error's location ('str', 'list[dict[str,any]]'): not keys.
_UNION_TAG = re.compile(r"(str|int|float|bool|none|bytes|(list|dict|tuple|set|literal|union)\[.*\]|function-\w+(\[.*\])?)")


def _dotted(error: dict[str, Any]) -> str:
    """The key's path, a control character in it escaped (a key "\n" must not break the one-line message), without
    the union members pydantic names in it (teachers.0.sklearn, not teachers.0.sklearn.str)."""
    loc = [part for part in error["loc"] if not (isinstance(part, str) and _UNION_TAG.fullmatch(part))]
    parts = [str(part) if str(part).isprintable() else repr(str(part))[1:-1] for part in loc]
    return ".".join(parts) or "(top level)"


def _unknown_key_hint(error: dict[str, Any], root: type[BaseModel]) -> str:
    close = _closest_key(error, root)
    return f"did you mean '{close}'?" if close else f"valid keys here: {', '.join(sorted(_fields_at(root, error['loc'][:-1])))}"


def _closest_key(error: dict[str, Any], root: type[BaseModel]) -> str | None:
    """The valid key an unknown one most likely meant: a spelling near it (difflib), or the key a model names for a
    word people write instead (a calibration recipe's `samples` is its `count`: a model's `key_synonyms`)."""
    valid = _fields_at(root, error["loc"][:-1])
    given = str(error["loc"][-1])
    close = difflib.get_close_matches(given, valid, n=1, cutoff=0.6)
    if close:
        return close[0]
    synonyms = getattr(_model_at(root, error["loc"][:-1]), "key_synonyms", None) or {}
    word = difflib.get_close_matches(given.lower(), list(synonyms), n=1, cutoff=0.8)  # 'sampels' too
    return synonyms[word[0]] if word and synonyms[word[0]] in valid else None


def _fields_at(model: type[BaseModel], loc: tuple) -> list[str]:
    """The keys valid at a validation location."""
    current = _model_at(model, loc)
    return list(current.model_fields) if current is not None else []


def _model_at(model: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """Walk the model classes along a validation location to the model there (None: not a model's place)."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        field = current.model_fields.get(part) if _is_model(current) else None
        if field is None:
            return None
        current = model_inside(field.annotation)
    return current if _is_model(current) else None


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
