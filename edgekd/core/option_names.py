"""An option as the caller wrote it: the commands that call the Python API (`edgekd ship` calls api.ship, `edgekd bench`
api.bench) do so inside typed_on_the_command_line(), so the checks they share name `--data 'x.npz'` or `--new-tokens 70`
there and the API's own arguments (`data='x.npz'`, `decoding.new_tokens=70`) when called from Python. core only: the
device's torch-free modules use it too."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

_COMMAND_LINE: ContextVar[bool] = ContextVar("edgekd_command_line", default=False)

# `edgekd bench`'s options as api.bench takes them: the language models' decoding flags are api.Decoding's fields.
BENCH_API_NAMES = {"--top-k": "decoding.top_k", "--temperature": "decoding.temperature", "--seed": "decoding.seed",
                   "--new-tokens": "decoding.new_tokens", "--prompts": "decoding.prompts", "--texts": "texts",
                   "--images": "images", "--threads": "threads"}


@contextmanager
def typed_on_the_command_line() -> Iterator[None]:
    """Inside: messages name the command's options (--data), as the user typed them; outside, the API's arguments."""
    token = _COMMAND_LINE.set(True)
    try:
        yield
    finally:
        _COMMAND_LINE.reset(token)


def on_the_command_line() -> bool:
    """Whether the caller is a command (inside typed_on_the_command_line), whose advice names its options."""
    return _COMMAND_LINE.get()


def option_name(option: str, api_name: str, value: Any = None, quoted: bool = False) -> str:
    """`option` (with its value, when given: "--new-tokens 70") on the command line, else `api_name` ("decoding.new_tokens=70")."""
    name, joiner = (option, " ") if on_the_command_line() else (api_name, "=")
    if value is None:
        return name
    return f"{name}{joiner}'{value}'" if quoted else f"{name}{joiner}{value}"


def bench_option(option: str, value: Any = None) -> str:
    """An `edgekd bench` option, or api.bench's argument for it (BENCH_API_NAMES)."""
    return option_name(option, BENCH_API_NAMES[option], value)
